"""A search never tells what its caller may not read: matching, or ordering, by an element
of a category the caller's role has no right to is refused (403, in the ledger), as the
record's element would be withheld from a read. On SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from carevault.domain.roles import Role
from carevault.ledger.events import Outcome, Tag
from tests.integration.access.group import HKID_SYSTEM, TM, Group
from tests.support.client import FhirTestClient
from tests.support.staff import make_staff


def _found(group: Group, role: Role, query: str) -> tuple[int, int | None]:
    """The status and how many patients the page shows (every match, here: there are
    few). Not the total, which a search by identifier of a role that may not read
    government ids does not carry (``rest/test_identifier_paging.py``)."""
    staff = make_staff(group.services, role, [TM])
    response = group.call(staff, "GET", f"/fhir/Patient?{query}")
    found = len(response.json().get("entry", [])) if response.status_code == 200 else None
    return response.status_code, found


@pytest.mark.parametrize(
    ("role", "query"),
    [
        (Role.BILLING, "birthdate=1970-03-14"),
        (Role.BILLING, "birthdate=ge1970&birthdate=lt1971"),
        (Role.BILLING, "gender=female"),
        (Role.BILLING, "phone=91234567"),
        (Role.BILLING, "_sort=birthdate"),
        (Role.PRIVACY_OFFICER, "birthdate=1970-03-14"),
    ],
)
def test_a_role_cannot_search_by_what_it_may_not_read(group: Group, role: Role, query: str) -> None:
    """Hole: billing (identity and financial only) read every patient's birth date, a
    day at a time or by halving ranges (``_id=X&birthdate=ge1970``: one match or none),
    and their phone numbers and sex, none of which a read of the patient shows them; a
    privacy officer (identity and contact) the birth dates."""
    status, _ = _found(group, role, f"_id={group.tm_patient.id}&{query}")
    assert status == 403
    refused = [e for e in group.events(Tag.FHIR_SEARCH) if e.outcome is Outcome.DENIED]
    assert refused and "may not search" in refused[-1].reason


@pytest.mark.parametrize(
    ("role", "query", "found"),
    [
        (Role.BILLING, "name=chan", 1),
        (Role.PRIVACY_OFFICER, "phone=91234567", 2),  # group-wide
        (Role.FRONT_DESK, "birthdate=1970-03-14", 1),
        (Role.FRONT_DESK, "birthdate=1999-01-01", 0),
        (Role.CLINIC_MANAGER, "_sort=birthdate&gender=male", 0),
        (Role.BILLING, "name=chan&_sort=-_lastUpdated", 1),
        # A patient found by the HKID they show (the desk registers it, the officer's
        # console finds patients so), which neither may read back.
        (Role.FRONT_DESK, f"identifier={HKID_SYSTEM}|A123456(3)", 1),
        (Role.PRIVACY_OFFICER, f"identifier={HKID_SYSTEM}|A123456(3)", 1),
    ],
)
def test_a_role_searches_by_what_it_may_read(
    group: Group, role: Role, query: str, found: int
) -> None:
    assert _found(group, role, query) == (200, found)


def test_the_system_searches_by_anything(group: Group, api: FhirTestClient) -> None:
    found = api.get(f"/fhir/Patient?birthdate={group.tm_patient.birth_date}&_sort=birthdate")
    assert found.status_code == 200 and found.json()["total"] == 1
