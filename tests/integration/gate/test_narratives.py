"""A narrative (``text.div``) is free text that may restate anything the record, or the
clinician who wrote it, knows: a Patient's "known HIV, on ART", an Encounter's "seen for
depression". No code in it can be judged, so a reader who may not see some category an
element of the type may hold is shown no narrative on any record of that type, and
every such record says it is a subset (SUBSETTED). Saved back, the record keeps the
narrative the reader never saw."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from tests.integration.access.group import TM, Group, build_group, encounter
from tests.support.client import FhirTestClient
from tests.support.staff import Staff, make_staff

SUBSETTED = "SUBSETTED"
TOLD = {
    "status": "generated",
    "div": '<div xmlns="http://www.w3.org/1999/xhtml">Known HIV, on ART since 2019</div>',
}


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _labels(resource: dict[str, Any]) -> list[str]:
    return [label["code"] for label in resource.get("meta", {}).get("security", [])]


def _told(group: Group, api: FhirTestClient) -> tuple[str, str]:
    """The Tuen Mun patient and a visit of theirs, each with a narrative that tells."""
    patient = group.tm_patient.id
    stored = api.get(f"/fhir/Patient/{patient}").json()
    assert api.put_json(f"/fhir/Patient/{patient}", {**stored, "text": TOLD}).status_code == 200
    visit = api.post_json("/fhir/Encounter", {**encounter(patient, TM), "text": TOLD})
    assert visit.status_code == 201, visit.text
    return patient, str(visit.json()["id"])


def _read(group: Group, who: Staff, path: str) -> dict[str, Any]:
    response = group.call(who, "GET", path)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_who_may_not_see_every_category_of_a_type_reads_none_of_its_narratives(
    group: Group, api: FhirTestClient
) -> None:
    """Hole: a front desk, a pharmacist, billing, an officer read a Patient whose every
    element they may see, narrative included, and the narrative told the diagnosis."""
    patient, visit = _told(group, api)
    readers = [
        group.desk_tm,
        group.officer,
        make_staff(group.services, Role.PHARMACIST, [TM]),
        make_staff(group.services, Role.BILLING, [TM]),
    ]
    for who in readers:
        paths = [f"/fhir/Patient/{patient}", f"/fhir/Patient?_id={patient}"]
        if who is not group.officer and who.account.role is not Role.BILLING:
            paths += [f"/fhir/Encounter/{visit}", f"/fhir/Encounter?_id={visit}"]
        for path in paths:
            body = _read(group, who, path)
            shown = body["entry"][0]["resource"] if body["resourceType"] == "Bundle" else body
            assert "text" not in shown, (who.account.role, path)
            assert SUBSETTED in _labels(shown), (who.account.role, path)
    # Every record of the type is labelled, with a narrative or without.
    plain = _read(group, group.desk_tw, f"/fhir/Patient/{group.tw_patient.id}")
    assert SUBSETTED in _labels(plain)
    # A doctor who cares for the patient may see all it may hold, and reads the narrative.
    for path in (f"/fhir/Patient/{patient}", f"/fhir/Encounter/{visit}"):
        body = _read(group, group.doctor_tm, path)
        assert body["text"] == TOLD and SUBSETTED not in _labels(body)


def test_a_record_saved_back_keeps_the_narrative_its_reader_never_saw(
    group: Group, api: FhirTestClient
) -> None:
    patient, visit = _told(group, api)
    for path in (f"/fhir/Patient/{patient}", f"/fhir/Encounter/{visit}"):
        view = _read(group, group.desk_tm, path)
        assert "text" not in view
        changed = {**view, "language": "zh-HK"}
        saved = group.call(group.desk_tm, "PUT", path, changed)
        assert saved.status_code == 200, saved.text
        assert "text" not in saved.json()

        stored = api.get(path).json()
        assert stored["text"] == TOLD and stored["language"] == "zh-HK", path
        assert SUBSETTED not in _labels(stored)
