"""The privacy officer's correction of a patient's identifiers, as pure rules: which
identifier a removal takes (as the index reads the number), what it keeps, and how the
identifiers are listed (stop 63)."""

from __future__ import annotations

from typing import Any

from carevault.fhir.normalise import HKID_SYSTEM
from carevault.gate.correction import ListedIdentifier, listed, without

MRN = "urn:carevault:mrn"
HIV_DISEASE = {"coding": [{"system": "http://snomed.info/sct", "code": "86406008"}]}


def _patient(*identifiers: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Patient", "identifier": list(identifiers)}


def test_a_removal_takes_the_number_in_any_spelling_the_index_reads_as_it() -> None:
    own = {"system": HKID_SYSTEM, "value": "A123456(3)"}
    patient = _patient(own, {"system": HKID_SYSTEM, "value": "K654321(9)"})

    taken = without(patient, HKID_SYSTEM, "ｋ６５４３２１（９）")

    assert taken == 1
    assert patient["identifier"] == [own]


def test_a_removal_takes_only_the_system_named() -> None:
    patient = _patient({"system": MRN, "value": "K654321(9)"})

    assert without(patient, HKID_SYSTEM, "K654321(9)") == 0
    assert patient["identifier"] == [{"system": MRN, "value": "K654321(9)"}]


def test_a_removal_never_takes_a_number_typed_with_a_sensitive_code() -> None:
    hidden = {"system": MRN, "value": "HIV-1", "type": HIV_DISEASE}
    patient = _patient(hidden)

    assert without(patient, MRN, "HIV-1") == 0
    assert patient["identifier"] == [hidden]


def test_the_last_identifier_taken_leaves_no_empty_list() -> None:
    patient = _patient({"system": HKID_SYSTEM, "value": "K654321(9)"})

    assert without(patient, HKID_SYSTEM, "K6543219") == 1
    assert "identifier" not in patient


def test_identifiers_are_listed_with_their_system_value_and_type() -> None:
    patient = _patient(
        {"system": HKID_SYSTEM, "value": "A123456(3)", "type": {"text": "HKID"}},
        {"system": MRN, "value": "M-1", "type": {"coding": [{"code": "MR"}]}},
        {"value": "loose"},
        "not an identifier",  # type: ignore[arg-type]
    )

    assert listed(patient) == [
        ListedIdentifier(HKID_SYSTEM, "A123456(3)", "HKID"),
        ListedIdentifier(MRN, "M-1", "MR"),
        ListedIdentifier("-", "loose", "-"),
    ]
