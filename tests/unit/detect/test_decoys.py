"""Decoy contact details on hand-made values and entries: found wherever they appear,
in any spelling; a search for one or incoming data carrying one is critical at once;
planting one in a decoy record is not."""

from __future__ import annotations

import re

import pytest

from carevault.detect.decoys import contact_terms, decoy_finding, generate
from carevault.detect.model import Access, Severity


def test_contact_terms_are_found_anywhere_in_any_spelling() -> None:
    resource = {
        "resourceType": "Patient",
        "telecom": [
            {"system": "phone", "value": "+852 9123-4567"},
            {"system": "email", "value": "Ka.Ming.Chan@Example.ORG"},
        ],
        "note": [{"text": "call (852) 6123 4567 or write to lo.wai@mail.example.com."}],
        "identifier": [{"value": "A1234563"}],
    }
    assert contact_terms([resource]) == {
        ("phone", "91234567"),
        ("email", "ka.ming.chan@example.org"),
        ("phone", "61234567"),
        ("email", "lo.wai@mail.example.com"),
    }
    assert contact_terms(["2026-03-02", "12:30", "one 1234 two"]) == set()


def test_generated_decoys_look_real_and_differ() -> None:
    emails = {generate("email", "Mail.Example.ORG") for _ in range(20)}
    assert len(emails) == 20
    assert all(re.fullmatch(r"[a-z.]+\d{6}@mail\.example\.org", e) for e in emails)
    phones = {generate("phone", "") for _ in range(20)}
    assert all(re.fullmatch(r"[5679]\d{7}", p) for p in phones) and len(phones) > 15
    with pytest.raises(ValueError, match="kind"):
        generate("fax", "")
    with pytest.raises(ValueError, match="domain"):
        generate("email", "not a domain")


def _entry(tag: str, pseudonym: str | None = "p1", **detail: object) -> Access:
    return Access(
        position=7, at_us=1_000, tag=tag, outcome="success", principal="staff:ann",
        role="front_desk", patient_pseudonym=pseudonym, detail=dict(detail),
    )  # fmt: skip


def test_a_search_for_a_decoy_is_critical() -> None:
    finding = decoy_finding(
        _entry("fhir:resource:search", None, decoy_contact=["phone"]), frozenset()
    )
    assert finding is not None
    assert (finding.detector, finding.severity) == ("decoy-contact", Severity.CRITICAL)
    assert "searched for a decoy phone number" in finding.explanation


def test_incoming_data_with_a_decoy_is_critical_but_not_when_planting_it() -> None:
    entry = _entry("fhir:resource:create", "p1", decoy_contact=["email"])
    finding = decoy_finding(entry, frozenset())
    assert finding is not None and finding.detector == "decoy-contact-data"
    assert finding.severity is Severity.CRITICAL and finding.patients == ("p1",)
    assert decoy_finding(entry, frozenset({"p1"})) is None
    assert decoy_finding(_entry("fhir:resource:create"), frozenset()) is None
