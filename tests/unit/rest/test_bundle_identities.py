"""Two entries of a Bundle that name one thing, judged on the Bundle's text alone."""

from __future__ import annotations

import pytest

from carevault.fhir.outcome import FhirError
from carevault.rest.bundle_identities import (
    Identity,
    criteria_key,
    refuse_one_identity,
    refuse_repeated_criteria,
    refuse_repeated_full_urls,
)

MRN = "identifier=http://carevault.hk/sid/mrn|X1"


def test_criteria_in_another_order_or_repeated_are_the_same() -> None:
    assert criteria_key("Patient", f"{MRN}&family=Feed") == criteria_key(
        "Patient", f"family=Feed&{MRN}&{MRN}"
    )
    encoded = "identifier=http%3A%2F%2Fcarevault.hk%2Fsid%2Fmrn%7CX1"
    assert criteria_key("Patient", encoded) == criteria_key("Patient", MRN)


def test_other_values_or_another_type_are_other_criteria() -> None:
    assert criteria_key("Patient", MRN) != criteria_key("Patient", MRN.replace("X1", "X2"))
    assert criteria_key("Patient", MRN) != criteria_key("Practitioner", MRN)
    assert criteria_key("Patient", MRN) != criteria_key("Patient", f"{MRN}&family=Feed")


def test_a_repeated_full_url_names_the_later_entry() -> None:
    refuse_repeated_full_urls([(0, "urn:uuid:a"), (1, None), (2, None), (3, "urn:uuid:b")])
    with pytest.raises(FhirError) as refused:
        refuse_repeated_full_urls([(0, "urn:uuid:a"), (1, "urn:uuid:b"), (2, "urn:uuid:a")])
    issue = refused.value.issues[0]
    assert refused.value.status == 400
    assert (issue.code, issue.expression) == ("invalid", ("Bundle.entry[2].fullUrl",))
    assert "Bundle.entry[0]" in issue.diagnostics


def test_repeated_criteria_name_the_later_entry_and_not_the_criteria() -> None:
    key = criteria_key("Patient", MRN)
    refuse_repeated_criteria(
        [(0, "request.url", key), (1, "request.url", criteria_key("Patient", "family=Feed"))]
    )
    with pytest.raises(FhirError) as refused:
        refuse_repeated_criteria([(0, "request.ifNoneExist", key), (3, "request.url", key)])
    issue = refused.value.issues[0]
    assert refused.value.status == 400
    assert issue.expression == ("Bundle.entry[3].request.url",)
    assert "X1" not in issue.diagnostics


def test_criteria_finding_what_another_entry_writes_name_the_entry_and_no_value() -> None:
    needs = frozenset({"any|K1234567"})
    carried = frozenset({"any|K1234567", "sys|http://carevault.hk/sid/hkid|K1234567"})
    plain = Identity(0, "Patient", carried=carried)
    update = Identity(3, "Patient", "request.url", needs=needs, named=carried, carried=carried)
    with pytest.raises(FhirError) as refused:
        refuse_one_identity([plain, update])
    issue = refused.value.issues[0]
    assert refused.value.status == 400
    assert issue.expression == ("Bundle.entry[3].request.url",)
    assert "Bundle.entry[0]" in issue.diagnostics
    assert "K1234567" not in issue.diagnostics


def test_an_entry_alone_another_type_or_a_deletion_before_a_create_is_no_overlap() -> None:
    needs = frozenset({"any|K1234567"})
    held = frozenset({"any|K1234567"})
    refuse_one_identity([Identity(0, "Patient", "request.url", needs=needs, carried=held)])
    refuse_one_identity(
        [
            Identity(0, "Practitioner", carried=held),
            Identity(1, "Patient", "request.ifNoneExist", needs=needs, carried=held),
        ]
    )
    deletion = Identity(0, "Patient", "request.url", deletes=True, needs=needs, named=held)
    refuse_one_identity([deletion, Identity(1, "Patient", carried=held)])
    with pytest.raises(FhirError):
        refuse_one_identity([deletion, Identity(1, "Patient", "request.url", named=held)])
