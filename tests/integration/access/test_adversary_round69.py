"""Adversary round 69, the insider with the database: someone who may write to the database
but holds no key widens a member of staff's reach by editing their account's row, on
SQLite and PostgreSQL.

Open (strict ``xfail``): ``staff_account.clinic_ids`` (and ``role``) are clear columns
bound to nothing. Adding Tsuen Wan to Tuen Mun's front desk's clinics, the next session
opened for the account reads Tsuen Wan's patient (200: name, telephone, birth date; the
token it held was still refused, 403, in the probe). The fix this needs is the
containment table's (round 69): a seal of the account's policy columns (account id,
username, role, clinics, practitioner) under a key derived from the index key, written
where an account is made (``StaffAccounts.add``, the simulator's loader) and checked
where a session is opened or refreshed and at every sign-in and step-up, refusing with a
clear error, a ledger entry and an alert; rows written before sealed at their next sign-
in. The same holds for the other rows of policy state in the clear: client apps (scopes,
clinics, the bound account), sessions (scopes, the patient in context), break-the-glass
grants, registrations and care relationships, detection flags and alerts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import update

from carevault.access.tables import staff_account
from carevault.bootstrap import Services
from tests.integration.access.group import TM, TW, Group, build_group
from tests.support.client import FhirTestClient
from tests.support.staff import open_token

pytestmark = pytest.mark.postgres


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


@pytest.mark.xfail(
    strict=True,
    reason="adversary round 69, open: a staff account's clinics and role are clear columns "
    "bound to nothing; a session opened after the edit reads as the edit says",
)
def test_clinics_added_to_an_account_in_the_database_open_nothing(
    group: Group, services: Services
) -> None:
    theirs = f"/fhir/Patient/{group.tw_patient.id}"
    assert group.call(group.desk_tm, "GET", theirs).status_code == 403
    with services.engine.begin() as connection:
        connection.execute(
            update(staff_account)
            .where(staff_account.c.account_id == group.desk_tm.account.account_id)
            .values(clinic_ids=f"{TM},{TW}")
        )
    token = open_token(services, group.desk_tm.account, "user/*.cruds")
    read = group.web.get(theirs, headers={"authorization": f"Bearer {token}"})
    assert read.status_code != 200, "Tsuen Wan's patient read by Tuen Mun's desk"
