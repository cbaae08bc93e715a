"""A sensitive code in an item of an element judged item by item (adversary round 47):
a patient's identifiers (an HKID is a government id, a record number identity) and
resources contained in a record (a Location, a Practitioner or a Medication counts as
part of its container) were judged by what each item is, never for a sensitive code,
which any other element of a visit, patient or claim is. A desk, billing and an officer
read a patient's HIV clinic number typed with SNOMED's HIV disease; a desk read a visit
whose contained Location was typed so; billing a claim's contained Medication coded so.
Such an item is sensitive_clinical as well: cut (SUBSETTED), kept on an update."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from tests.integration.access.group import (
    TM,
    Group,
    build_group,
    created,
    encounter,
    self_paid_claim,
)
from tests.support.client import FhirTestClient
from tests.support.staff import make_staff

HIV_DISEASE = "86406008"
HIV_TYPE = {"coding": [{"system": "http://snomed.info/sct", "code": HIV_DISEASE}]}


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def test_a_patients_identifier_typed_with_a_sensitive_code_is_cut_and_kept(
    group: Group, api: FhirTestClient
) -> None:
    billing = make_staff(group.services, Role.BILLING, [TM])
    path = f"/fhir/Patient/{group.tm_patient.id}"
    stored = api.get(path).json()
    number = {"system": "urn:tm:hiv-clinic", "value": "HIVC-0042", "type": HIV_TYPE}
    numbered = api.put_json(path, {**stored, "identifier": [*stored["identifier"], number]})
    assert numbered.status_code == 200, numbered.text

    views = [group.call(who, "GET", path) for who in (group.desk_tm, billing, group.officer)]
    found = group.call(group.desk_tm, "GET", f"/fhir/Patient?_id={group.tm_patient.id}")
    view = views[0].json()
    phoned = group.call(
        group.desk_tm,
        "PUT",
        path,
        {**view, "telecom": [{"system": "phone", "value": "+852 9876 5432"}]},
    )

    for shown in [*views, found]:
        assert shown.status_code == 200, shown.text
        assert HIV_DISEASE not in shown.text and "HIVC-0042" not in shown.text
    assert phoned.status_code == 200, phoned.text
    assert HIV_DISEASE not in phoned.text
    assert number in api.get(path).json()["identifier"]
    assert number in group.call(group.doctor_tm, "GET", path).json()["identifier"]


#: A room typed with HIV disease, contained in a visit (``visit_in_an_hiv_room``).
HIV_ROOM = {"resourceType": "Location", "id": "room", "name": "Room 3", "type": [HIV_TYPE]}


def visit_in_an_hiv_room(group: Group, api: FhirTestClient) -> str:
    """A visit of Tuen Mun's patient at Tuen Mun whose location, ``#room``, is a contained
    Location typed with HIV disease: cut from a desk, which is shown the reference."""
    return created(
        api,
        {
            **encounter(group.tm_patient.id, TM),
            "contained": [HIV_ROOM],
            "location": [{"location": {"reference": "#room"}}],
        },
    )


def test_a_location_contained_in_a_visit_typed_with_a_sensitive_code_is_cut_from_a_desk(
    group: Group, api: FhirTestClient
) -> None:
    visit = visit_in_an_hiv_room(group, api)
    path = f"/fhir/Encounter/{visit}"

    shown = group.call(group.desk_tm, "GET", path)
    listed = group.call(group.desk_tm, "GET", f"/fhir/Encounter?_id={visit}")

    assert shown.status_code == 200 and "contained" not in shown.json()
    assert HIV_DISEASE not in shown.text and HIV_DISEASE not in listed.text
    assert group.call(group.doctor_tm, "GET", path).json()["contained"] == [HIV_ROOM]


def test_a_view_saved_back_keeps_its_reference_to_the_contained_resource_it_was_not_shown(
    group: Group, api: FhirTestClient
) -> None:
    """R4 ref-1 is judged on the visit as it will be stored: the desk's view refers to
    ``#room``, which it was not shown, and saved back (finished) it is put back, so the
    update holds; a reference of its own to nothing contained is refused, named by its
    place (400), and changes nothing."""
    visit = visit_in_an_hiv_room(group, api)
    path = f"/fhir/Encounter/{visit}"
    view = group.call(group.desk_tm, "GET", path).json()
    assert view["location"] == [{"location": {"reference": "#room"}}]
    assert "contained" not in view

    finished = group.call(group.desk_tm, "PUT", path, {**view, "status": "finished"})
    assert finished.status_code == 200, finished.text
    stored = api.get(path).json()
    assert stored["contained"] == [HIV_ROOM] and stored["status"] == "finished"

    current = group.call(group.desk_tm, "GET", path).json()
    elsewhere = [{"location": {"reference": "#hall"}}]
    dangling = group.call(group.desk_tm, "PUT", path, {**current, "location": elsewhere})
    assert dangling.status_code == 400, dangling.text
    [issue] = dangling.json()["issue"]
    assert issue["expression"] == ["Encounter.location[0].location.reference"]
    assert HIV_DISEASE not in dangling.text and "Room 3" not in dangling.text
    assert api.get(path).json() == stored


def test_a_medication_contained_in_a_claim_coded_with_a_sensitive_code_is_cut_from_billing(
    group: Group, api: FhirTestClient
) -> None:
    billing = make_staff(group.services, Role.BILLING, [TM])
    drug = {"resourceType": "Medication", "id": "drug", "code": HIV_TYPE}
    claim = created(api, self_paid_claim(group.tm_patient.id, contained=[drug]))

    shown = group.call(billing, "GET", f"/fhir/Claim/{claim}")

    assert shown.status_code == 200 and "contained" not in shown.json()
    assert HIV_DISEASE not in shown.text
