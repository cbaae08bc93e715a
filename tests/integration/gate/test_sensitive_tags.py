"""A sensitive code in a record's ``meta`` (adversary round 46): another system, or a
doctor, tags a record with the code of an HIV diagnosis (``meta.tag``, or a coding in
``meta.security`` that is no label of the sensitivity policy but a code of the lists).
Every reader was shown ``meta`` whole and a record was judged sensitive on its labels
alone: a pharmacist read a Condition tagged HIV, a front desk a booking or a patient
tagged so. Such a code marks the record as a sensitivity label does: a health record is
sensitive_clinical (withheld whole), and a visit's, booking's or patient's view goes
without it (SUBSETTED), while an update keeps what it was not shown."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from tests.integration.access.group import FLU, TM, Group, booked_today, build_group
from tests.support.client import FhirTestClient
from tests.support.staff import make_staff

#: HIV disease, as SNOMED CT codes it.
HIV_CODING = {"system": "http://snomed.info/sct", "code": "86406008", "display": "HIV"}
SUBSETTED = "SUBSETTED"


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _codes(resource: dict[str, Any], kind: str) -> list[str]:
    return [coding["code"] for coding in resource.get("meta", {}).get(kind, [])]


@pytest.mark.parametrize("kind", ["tag", "security"])
def test_a_condition_tagged_with_a_sensitive_code_is_withheld_from_a_pharmacist(
    group: Group, kind: str
) -> None:
    pharmacist = make_staff(group.services, Role.PHARMACIST, [TM])
    patient = group.tm_patient.id
    body = {
        "resourceType": "Condition",
        "meta": {kind: [HIV_CODING]},
        "code": FLU,
        "subject": {"reference": f"Patient/{patient}"},
    }
    made = group.call(group.doctor_tm, "POST", "/fhir/Condition", body)
    assert made.status_code == 201, made.text
    path = f"/fhir/Condition/{made.json()['id']}"

    read = group.call(pharmacist, "GET", path)
    listed = group.call(pharmacist, "GET", f"/fhir/Condition?patient={patient}")

    assert read.status_code == 404, read.text
    assert made.json()["id"] not in listed.text
    assert "86406008" not in listed.text
    assert _codes(group.call(group.doctor_tm, "GET", path).json(), kind) == ["86406008"]


@pytest.mark.parametrize("kind", ["tag", "security"])
def test_the_desk_is_shown_a_booking_without_a_sensitive_code_in_its_meta_and_keeps_it(
    group: Group, api: FhirTestClient, kind: str
) -> None:
    made = api.post_json(
        "/fhir/Appointment", booked_today(group.tm_patient.id, TM, meta={kind: [HIV_CODING]})
    )
    assert made.status_code == 201, made.text
    path = f"/fhir/Appointment/{made.json()['id']}"

    view = group.call(group.desk_tm, "GET", path).json()
    found = group.call(group.desk_tm, "GET", f"/fhir/Appointment?_id={made.json()['id']}")
    moved = group.call(group.desk_tm, "PUT", path, {**view, "status": "cancelled"})

    assert "86406008" not in str(view) and "86406008" not in found.text
    assert SUBSETTED in _codes(view, "security")
    assert moved.status_code == 200, moved.text
    assert "86406008" not in moved.text
    stored = api.get(path).json()
    assert (stored["status"], _codes(stored, kind)) == ("cancelled", ["86406008"])
    assert _codes(group.call(group.doctor_tm, "GET", path).json(), kind) == ["86406008"]


def test_the_desk_is_shown_a_patient_without_a_sensitive_tag(
    group: Group, api: FhirTestClient
) -> None:
    path = f"/fhir/Patient/{group.tm_patient.id}"
    stored = api.get(path).json()
    tagged = api.put_json(path, {**stored, "meta": {"tag": [HIV_CODING]}})
    assert tagged.status_code == 200, tagged.text

    view = group.call(group.desk_tm, "GET", path)
    phoned = group.call(
        group.desk_tm,
        "PUT",
        path,
        {**view.json(), "telecom": [{"system": "phone", "value": "+852 9876 5432"}]},
    )

    assert view.status_code == 200 and "86406008" not in view.text
    assert phoned.status_code == 200, phoned.text
    assert _codes(api.get(path).json(), "tag") == ["86406008"]


@pytest.mark.parametrize(
    "label",
    [
        {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSY"},
        {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"},
    ],
)
def test_a_document_labelled_sensitive_in_its_own_security_label_is_withheld_from_a_pharmacist(
    group: Group, label: dict[str, str]
) -> None:
    """Adversary round 47: a DocumentReference holds its security labels in its own
    ``securityLabel`` (R4), not in ``meta``; a note labelled psychiatry (v3 ``PSY``) or
    restricted (``R``) was read by a pharmacist, in a read, a search and
    ``$everything``."""
    pharmacist = make_staff(group.services, Role.PHARMACIST, [TM])
    patient = group.tm_patient.id
    body = {
        "resourceType": "DocumentReference",
        "status": "current",
        "securityLabel": [{"coding": [label]}],
        "subject": {"reference": f"Patient/{patient}"},
        "content": [{"attachment": {"contentType": "text/plain", "data": "c2VlbiBmb3IgUFRTRA=="}}],
    }
    made = group.call(group.doctor_tm, "POST", "/fhir/DocumentReference", body)
    assert made.status_code == 201, made.text
    document = made.json()["id"]

    read = group.call(pharmacist, "GET", f"/fhir/DocumentReference/{document}")
    listed = group.call(pharmacist, "GET", f"/fhir/DocumentReference?patient={patient}")
    counted = group.call(
        pharmacist, "GET", f"/fhir/DocumentReference?patient={patient}&_summary=count"
    )
    everything = group.call(pharmacist, "GET", f"/fhir/Patient/{patient}/$everything")

    assert read.status_code == 404, read.text
    assert listed.status_code == 200 and document not in listed.text
    assert counted.json()["total"] == 0
    assert everything.status_code == 200 and document not in everything.text
    shown = group.call(group.doctor_tm, "GET", f"/fhir/DocumentReference/{document}")
    assert shown.status_code == 200 and shown.json()["securityLabel"] == [{"coding": [label]}]
