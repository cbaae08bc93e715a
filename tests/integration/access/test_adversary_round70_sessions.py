"""Adversary round 70, the insider with the database: sessions edited in the database,
on SQLite and PostgreSQL.

Found: ``auth_session`` rows were bound to nothing, and a token is only a signed name
for its session: whom the session acts for is read from its row at every request (at
most a quarter second stale). Setting the front desk's session's ``account_id`` to Tsuen
Wan's doctor, the token the desk held read Tsuen Wan's patient's observation as that
doctor (200). The same row says whether the session is revoked, until when it lives and
whether it must step up first (the detectors' containment of a stolen token).

Now each session is sealed (an HMAC of whom it acts for, its client, scopes, patient,
creation and expiry, whether revoked and whether waiting for a step-up, under a key
derived from the index key: ``Sessions``, records_0036); sessions from before sealed
once at the first start after the upgrade. A session whose row does not match is
refused (401), and reported: an ``auth:session:altered`` entry and a critical alert."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import update

from carevault.access.tables import auth_session
from carevault.bootstrap import Services, build_services
from tests.integration.access.group import Group, build_group
from tests.support.client import FhirTestClient
from tests.support.insider import edit_rows
from tests.support.ledgers import altered_alerts, entries_once_written
from tests.support.staff import Staff

pytestmark = pytest.mark.postgres

ALTERED = "auth:session:altered"


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _edit_sessions(services: Services, who: Staff, **values: object) -> int:
    changed = edit_rows(
        services, auth_session, auth_session.c.account_id == who.account.account_id, **values
    )
    # What a token's session says is read again a quarter second on.
    time.sleep(services.sessions.check_seconds + 0.05)
    return changed


def test_a_session_moved_to_another_account_acts_for_no_one(
    group: Group, services: Services
) -> None:
    theirs = f"/fhir/Observation/{group.tw_patient.observation}"
    assert group.call(group.desk_tm, "GET", theirs).status_code == 403
    assert _edit_sessions(services, group.desk_tm, account_id=group.doctor_tw.account.account_id)
    answered = group.call(group.desk_tm, "GET", theirs)
    assert answered.status_code == 401, "the desk's token read as Tsuen Wan's doctor"
    assert "HbA1c" not in answered.text
    (entry,) = entries_once_written(services, ALTERED)
    assert set(entry.detail) == {"session"}
    severities = altered_alerts(services)
    assert severities and set(severities) == {"critical"}
    # Tsuen Wan's doctor's own session is untouched.
    assert group.call(group.doctor_tw, "GET", theirs).status_code == 200


def test_a_revoked_session_is_not_revived_in_the_database(group: Group, services: Services) -> None:
    mine = f"/fhir/Patient/{group.tm_patient.id}"
    assert group.call(group.desk_tm, "GET", mine).status_code == 200
    assert services.sessions.revoke_all(
        account_id=group.desk_tm.account.account_id, reason="officer ended it"
    )
    assert group.call(group.desk_tm, "GET", mine).status_code == 401
    _edit_sessions(services, group.desk_tm, revoked_us=None, revoke_reason=None)
    assert group.call(group.desk_tm, "GET", mine).status_code == 401
    assert len(entries_once_written(services, ALTERED)) == 1


def test_a_step_up_is_not_cleared_in_the_database(group: Group, services: Services) -> None:
    """A detector's response to a stolen token: every live session of the account must
    present a fresh TOTP code. Clearing ``step_up_us`` does not lift it."""
    mine = f"/fhir/Patient/{group.tm_patient.id}"
    account = group.desk_tm.account.account_id
    assert services.sessions.require_step_up(account_id=account, reason="bulk reading") == 1
    stepped = group.call(group.desk_tm, "GET", mine)
    assert stepped.status_code != 200
    _edit_sessions(services, group.desk_tm, step_up_us=None)
    assert group.call(group.desk_tm, "GET", mine).status_code == 401


def test_a_session_lengthened_in_the_database_is_refused(group: Group, services: Services) -> None:
    mine = f"/fhir/Patient/{group.tm_patient.id}"
    _edit_sessions(services, group.desk_tm, expires_us=auth_session.c.expires_us + 86_400_000_000)
    assert group.call(group.desk_tm, "GET", mine).status_code == 401


def test_a_step_up_presented_and_a_revocation_keep_the_session_genuine(
    group: Group, services: Services
) -> None:
    """Guard: the session's own changes (a step-up asked and met, a revocation) are
    sealed as they are made: no alert, and the session does what its state says."""
    mine = f"/fhir/Patient/{group.tm_patient.id}"
    account = group.desk_tm.account.account_id
    services.sessions.require_step_up(account_id=account, reason="bulk reading")
    (live,) = services.sessions.list_for(account)
    services.sessions.stepped_up(live.session_id)
    assert group.call(group.desk_tm, "GET", mine).status_code == 200
    services.sessions.revoke(live.session_id, "signed out")
    assert group.call(group.desk_tm, "GET", mine).status_code == 401
    assert services.sessions.state(live.session_id, fresh=True).reason.startswith("session revoked")
    assert entries_once_written(services, ALTERED, seconds=0.5) == []


def test_sessions_from_before_the_seal_are_sealed_once_as_they_stand(
    group: Group, services: Services
) -> None:
    from carevault.keys.anchors import SealAnchors, anchors_path

    mine = f"/fhir/Patient/{group.tm_patient.id}"
    anchors = anchors_path(services.settings.resolved_keyring_path)
    kept = [line for line in anchors.read_text().split() if line != "auth_session"]
    anchors.write_text("".join(f"{line}\n" for line in kept))  # as before the upgrade
    with services.engine.begin() as connection:
        connection.execute(update(auth_session).values(seal=None))
    restarted = build_services(services.settings)
    restarted.close()
    assert SealAnchors(anchors).holds("auth_session")
    assert group.call(group.desk_tm, "GET", mine).status_code == 200
    _edit_sessions(services, group.desk_tm, seal=None)
    assert group.call(group.desk_tm, "GET", mine).status_code == 401
