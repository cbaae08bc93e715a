"""Conditional criteria of identifiers, and a resource's identifiers, as the search reads
them (``fhir/identity.py``): which spellings find one record."""

from __future__ import annotations

from carevault.fhir.identity import carried_identifiers, named_identifiers
from carevault.fhir.registry import RESOURCE_TYPES

PATIENT = RESOURCE_TYPES["Patient"]
HKID_SYSTEM = "http://carevault.hk/sid/hkid"
MRN = "http://carevault.hk/sid/mrn"


def _needs(rt_name: str, *params: tuple[str, str]) -> frozenset[str]:
    named = named_identifiers(RESOURCE_TYPES[rt_name], list(params))
    assert named is not None
    return named.needs


def test_an_hkid_spelt_any_way_under_any_system_needs_the_same() -> None:
    spellings = [
        f"{HKID_SYSTEM}|K123456(7)",
        f"{HKID_SYSTEM}|k1234567",
        "K 123456 (7)",
        "urn:oid:2.16.344.1.9|K1234567",
        "|K1234567",
    ]
    assert len({_needs("Patient", ("identifier", spelt)) for spelt in spellings}) == 1


def test_a_resource_carrying_an_hkid_holds_what_each_spelling_needs() -> None:
    resource = {"identifier": [{"system": HKID_SYSTEM, "value": "K123456(7)"}]}
    carried = carried_identifiers(PATIENT, resource)
    for spelt in (f"{HKID_SYSTEM}|k1234567", "K1234567"):
        assert _needs("Patient", ("identifier", spelt)) <= carried


def test_other_numbers_are_asked_under_their_system() -> None:
    by_mrn = _needs("Patient", ("identifier", f"{MRN}|40017"))
    assert by_mrn != _needs("Patient", ("identifier", "http://clinic.example/n|40017"))
    other = {"identifier": [{"system": "http://clinic.example/n", "value": "40017"}]}
    assert not by_mrn <= carried_identifiers(PATIENT, other)
    assert _needs("Patient", ("identifier", "40017")) <= carried_identifiers(PATIENT, other)


def test_an_hkid_shaped_number_of_another_type_keeps_its_system() -> None:
    with_system = _needs("Practitioner", ("identifier", f"{HKID_SYSTEM}|K1234567"))
    assert with_system != _needs("Practitioner", ("identifier", "K1234567"))


def test_the_identifiers_named_are_what_their_holder_carries() -> None:
    named = named_identifiers(PATIENT, [("identifier", f"{MRN}|40017")])
    assert named is not None
    resource = {"identifier": [{"system": MRN, "value": "40017"}]}
    assert named.holds == carried_identifiers(PATIENT, resource)


def test_criteria_of_an_identifier_and_more_are_judged_by_the_identifier() -> None:
    """Review of stop 65: ``identifier=…&birthdate=…`` spelt two ways in one transaction
    made two patients; what such criteria find holds the identifier still."""
    alone = named_identifiers(PATIENT, [("identifier", "K1234567")])
    for extra in (("birthdate", "1980-05-01"), ("family", "Chan"), ("_format", "json")):
        for params in ([("identifier", "K1234567"), extra], [extra, ("identifier", "K1234567")]):
            assert named_identifiers(PATIENT, params) == alone, params


def test_criteria_of_anything_but_single_identifiers_are_not_judged() -> None:
    for params in (
        [("family", "Chan"), ("birthdate", "1980-05-01")],
        [("identifier", "K1234567"), ("identifier:not", "B1234566")],
        [("identifier", "K1234567,B1234566")],
        [("identifier:not", "K1234567")],
        [("identifier", "|")],
        [("_id", "abc")],
        [],
    ):
        assert named_identifiers(PATIENT, params) is None, params
