"""Adversary round 69, the insider with the database: someone who may write to the database
but holds no key widens a member of staff's reach by editing their account's row, on
SQLite and PostgreSQL.

Found: ``staff_account.clinic_ids`` (and ``role``) were clear columns bound to nothing,
and a session's state (who it acts for, with which role and clinics) is read from them
at every request, at most a quarter second stale (``Sessions.state``). Adding Tsuen Wan
to Tuen Mun's front desk's clinics, the token the desk held read Tsuen Wan's patient
within that quarter second (200: name, telephone, birth date), and so did a session
opened after.

Now each account is sealed (an HMAC of its id, username, role, clinics and practitioner
under a key derived from the index key: ``StaffAccounts``, records_0033); the accounts
from before were sealed once, as they stood, at the first start after the upgrade, noted
beside the keyring (``keys.anchors``) where the database cannot take it back. An account
whose row does not match is refused: its sessions (401), its sign-in and its step-up; an
``auth:account:altered`` entry and a critical alert tell an officer."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import update

from carevault.access.accounts import SignInFailed
from carevault.access.tables import staff_account
from carevault.bootstrap import Services, build_services
from carevault.domain.roles import Role
from tests.integration.access.group import TM, TW, Group, build_group
from tests.support.client import FhirTestClient
from tests.support.insider import edit_rows
from tests.support.ledgers import altered_alerts, entries_once_written
from tests.support.staff import PASSWORD, make_staff, open_token

pytestmark = pytest.mark.postgres

ALTERED = "auth:account:altered"
#: Why an altered account is refused, for the audit (``accounts.ACCOUNT_ALTERED``).
ACCOUNT_ALTERED = "account record altered in the database"


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _widened(services: Services, account_id: str, **values: str) -> None:
    edit_rows(services, staff_account, staff_account.c.account_id == account_id, **values)


def test_clinics_added_to_an_account_in_the_database_open_nothing(
    group: Group, services: Services
) -> None:
    theirs = f"/fhir/Patient/{group.tw_patient.id}"
    assert group.call(group.desk_tm, "GET", theirs).status_code == 403
    _widened(services, group.desk_tm.account.account_id, clinic_ids=f"{TM},{TW}")
    # The token it holds, once its session's state is read again (a quarter second).
    time.sleep(services.sessions.check_seconds + 0.05)
    held = group.call(group.desk_tm, "GET", theirs)
    token = open_token(services, group.desk_tm.account, "user/*.cruds")
    opened = group.web.get(theirs, headers={"authorization": f"Bearer {token}"})
    assert held.status_code != 200, "Tsuen Wan's patient read by Tuen Mun's desk"
    assert opened.status_code != 200, "Tsuen Wan's patient read by Tuen Mun's desk"
    assert held.status_code == opened.status_code == 401
    assert "Lee" not in held.text + opened.text
    (entry,) = entries_once_written(services, ALTERED)
    assert entry.detail == {"account": group.desk_tm.account.account_id}
    # Critical: on the system's entry, and on the account's case for its refused requests.
    severities = altered_alerts(services)
    assert severities and set(severities) == {"critical"}


def test_a_role_raised_in_the_database_signs_in_to_nothing(
    group: Group, services: Services
) -> None:
    """The desk made a privacy officer: neither a sign-in nor an officer's step-up
    (which every containment and alert decision asks) passes."""
    desk = group.desk_tm
    _widened(services, desk.account.account_id, role="privacy_officer")
    with pytest.raises(SignInFailed) as signed_in:
        services.accounts.authenticate(desk.login.username, PASSWORD, desk.totp())
    assert signed_in.value.reason == ACCOUNT_ALTERED
    with pytest.raises(SignInFailed) as stepped_up:
        services.accounts.confirm_officer(desk.login.username, desk.totp())
    assert stepped_up.value.reason == ACCOUNT_ALTERED


def test_accounts_from_before_the_seal_are_sealed_once_as_they_stand(
    services: Services,
) -> None:
    """Guard: an account without a seal (written before records_0033) is sealed at the
    first start after the upgrade and works as before; stripped of its seal after that
    (the note beside the keyring says sealing was done), it is refused."""
    from carevault.keys.anchors import anchors_path  # here: the code before has none

    nurse = make_staff(services, Role.NURSE, [TM])
    anchors = anchors_path(services.settings.resolved_keyring_path)
    anchors.unlink()  # as before the upgrade: no account sealed yet
    with services.engine.begin() as connection:
        connection.execute(update(staff_account).values(seal=None))
    restarted = build_services(services.settings)
    try:
        assert restarted.accounts.authenticate(nurse.login.username, PASSWORD, nurse.totp())
    finally:
        restarted.close()
    with services.engine.begin() as connection:
        connection.execute(update(staff_account).values(seal=None))
    restarted = build_services(services.settings)
    try:
        with pytest.raises(SignInFailed) as refused:
            restarted.accounts.authenticate(nurse.login.username, PASSWORD, nurse.totp())
        assert refused.value.reason == ACCOUNT_ALTERED
    finally:
        restarted.close()


def test_a_suspension_cleared_in_the_database_lets_no_one_back_in(
    group: Group, services: Services
) -> None:
    """Review of round 69: the seal did not cover the suspension, so a database writer who
    cleared ``suspended_us`` of a suspended desk let it sign in again and read. It does
    now: the cleared row no longer matches, and is refused; reinstating through CareVault
    seals the row anew, and suspending a row already altered does not make it genuine."""
    desk = group.desk_tm
    services.admin.suspend("admin:test", desk.login.username, reason="")
    with services.engine.begin() as connection:
        connection.execute(
            update(staff_account)
            .where(staff_account.c.account_id == desk.account.account_id)
            .values(suspended_us=None)
        )
    with pytest.raises(SignInFailed) as refused:
        services.accounts.authenticate(desk.login.username, PASSWORD, desk.totp())
    assert refused.value.reason == ACCOUNT_ALTERED

    nurse = make_staff(services, Role.NURSE, [TM])
    services.admin.suspend("admin:test", nurse.login.username, reason="")
    services.admin.reinstate("admin:test", nurse.login.username)
    assert services.accounts.authenticate(nurse.login.username, PASSWORD, nurse.totp())

    _widened(services, nurse.account.account_id, clinic_ids=f"{TM},{TW}")
    services.admin.suspend("admin:test", nurse.login.username, reason="")
    services.admin.reinstate("admin:test", nurse.login.username)
    with pytest.raises(SignInFailed) as widened:
        services.accounts.authenticate(nurse.login.username, PASSWORD, nurse.totp())
    assert widened.value.reason == ACCOUNT_ALTERED
