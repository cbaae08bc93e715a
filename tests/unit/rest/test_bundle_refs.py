"""A relative reference read against its entry's fullUrl (R4 bundle.html#references)."""

from __future__ import annotations

from carevault.rest.bundle_refs import absolute


def test_a_relative_reference_takes_the_base_of_a_restful_full_url() -> None:
    full = "http://example.org/fhir/Observation/o1"
    assert absolute("Patient/abc", full) == "http://example.org/fhir/Patient/abc"
    versioned = "https://example.org/r4/Observation/o1/_history/2"
    assert absolute("Patient/abc", versioned) == "https://example.org/r4/Patient/abc"


def test_other_references_and_entries_name_no_entry() -> None:
    full = "http://example.org/fhir/Observation/o1"
    assert absolute("Patient/abc", "urn:uuid:88f151c0-a954-468a-88bd-5ae15c08e059") is None
    assert absolute("Patient/abc", None) is None
    assert absolute("urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a", full) is None
    assert absolute("http://example.org/fhir/Patient/abc", full) is None
    assert absolute("#contained", full) is None
