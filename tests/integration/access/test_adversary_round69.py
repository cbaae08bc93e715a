"""Adversary round 69, the insider with the database: someone who may write to the database
but holds no key widens a member of staff's reach by editing their account's row, on
SQLite and PostgreSQL.

Open (strict ``xfail``): ``staff_account.clinic_ids`` (and ``role``) are clear columns
bound to nothing, and a session's state (who it acts for, with which role and clinics)
is read from them at every request, at most a quarter second stale (``Sessions.state``).
Adding Tsuen Wan to Tuen Mun's front desk's clinics, the token the desk held read Tsuen
Wan's patient within that quarter second (200: name, telephone, birth date), and so did
a session opened after.

The fix this needs is the containment table's (round 69): a seal of the account's policy
columns (account id, username, role, clinics, practitioner) under a key derived from the
index key, written where an account is made (``StaffAccounts.add``) and checked where
the state is read (``Sessions._load``), at sign-in and at step-up, refusing (401,
"account record altered"), with a ledger entry and an alert. What keeps it from today:
the accounts written before have no seal, and every way to seal them at the upgrade (a
marker in the database, the first start after it) is one the insider can replay; it
wants an anchor outside the database (an entry in the witnessed ledger that the sealing
happened once). The same holds for the other rows of policy state in the clear: client
apps (scopes, clinics, the bound account), sessions (scopes, the patient in context),
break-the-glass grants, registrations and care relationships, detection flags and
alerts."""

from __future__ import annotations

import time
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
    "bound to nothing; its sessions read as the edit says within a quarter second",
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
    # The token it holds, once its session's state is read again (a quarter second).
    time.sleep(services.sessions.check_seconds + 0.05)
    held = group.call(group.desk_tm, "GET", theirs)
    token = open_token(services, group.desk_tm.account, "user/*.cruds")
    opened = group.web.get(theirs, headers={"authorization": f"Bearer {token}"})
    assert held.status_code != 200, "Tsuen Wan's patient read by Tuen Mun's desk"
    assert opened.status_code != 200, "Tsuen Wan's patient read by Tuen Mun's desk"
