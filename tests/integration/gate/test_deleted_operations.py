"""A deletion is told only to who may read the record, by writes and operations too
(writes pass). A read of another clinic's deleted patient answers 404, as for an id never
used; a second DELETE of it, ``$break-glass`` and ``$transfer`` answered 403 or 410, and
so told any member of staff which ids had been patients. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from carevault.bootstrap import Services
from carevault.ledger.events import Outcome, Tag
from tests.integration.access.group import TM, Group, build_group, deleted_patient
from tests.support.client import FhirTestClient, transfer_body
from tests.support.staff import Staff

BREAK_GLASS = {
    "resourceType": "Parameters",
    "parameter": [
        {"name": "reason", "valueCode": "emergency-treatment"},
        {"name": "text", "valueString": "unconscious at the door, no record here"},
    ],
}


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _answer(group: Group, who: Staff, method: str, path: str, body: Any = None) -> tuple[int, str]:
    response = group.call(who, method, path, body)
    issue = response.json()["issue"][0] if response.content else {"code": ""}
    return response.status_code, issue["code"]


@pytest.mark.parametrize(
    ("who", "method", "operation", "body"),
    [
        ("desk_tm", "DELETE", "", None),
        ("doctor_tm", "DELETE", "", None),
        ("doctor_tm", "POST", "/$break-glass", BREAK_GLASS),
        ("desk_tm", "POST", "/$transfer", transfer_body(TM)),
        ("doctor_tm", "POST", "/$transfer", transfer_body(TM)),
    ],
    ids=["desk-delete", "doctor-delete", "break-glass", "desk-transfer", "doctor-transfer"],
)
def test_another_clinics_deleted_patient_is_unknown_to_writes_and_operations(
    group: Group, api: FhirTestClient, who: str, method: str, operation: str, body: Any
) -> None:
    patient = deleted_patient(group, api)
    caller: Staff = getattr(group, who)
    assert _answer(group, caller, "GET", f"/fhir/Patient/{patient}") == (404, "not-found")
    unknown = _answer(group, caller, method, f"/fhir/Patient/no-such-patient{operation}", body)

    answer = _answer(group, caller, method, f"/fhir/Patient/{patient}{operation}", body)

    assert answer == unknown
    # A DELETE of what the caller does not know of deletes nothing (R4: 204), the rest 404.
    assert answer[0] == (204 if method == "DELETE" else 404)
    # Refused all the same, and recorded.
    assert api.get(f"/fhir/Patient/{patient}").status_code == 410
    last = group.events()[-1]
    assert last.outcome is not Outcome.SUCCESS and last.resource_id == patient


def test_the_clinic_that_may_read_a_deleted_patient_is_told_it_was_deleted(
    group: Group, api: FhirTestClient
) -> None:
    patient = deleted_patient(group, api)
    path = f"/fhir/Patient/{patient}"

    assert group.call(group.desk_tw, "DELETE", path).status_code == 204
    assert _answer(group, group.doctor_tw, "POST", f"{path}/$break-glass", BREAK_GLASS)[0] == 410
    assert _answer(group, group.officer, "POST", f"{path}/$transfer", transfer_body(TM))[0] == 410
    refused = [e for e in group.events(Tag.PATIENT_TRANSFERRED) if e.resource_id == patient]
    assert [e.outcome for e in refused] != [Outcome.SUCCESS]
