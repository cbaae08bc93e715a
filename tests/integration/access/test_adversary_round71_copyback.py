"""Adversary round 71 (stop 57), the insider with the database: an earlier row copied
back, seal and all, on SQLite and PostgreSQL.

Found (the review of round 70 left it open): a session's and a client app's rows are
sealed, but a seal says a row is as CareVault once wrote it, not that it is the latest.
Saving a session's row before a sign-out, an officer's revocation, a refresh token's
reuse or a detector's step-up, and writing it back after (the old ``revoked_us`` or
``step_up_us`` and the old seal), the token it held read again (200); a client app's
row saved before its revocation and written back got tokens again (200).

Now each revocation, step-up asked and step-up met, and each client app's revocation,
is written inside its transaction to a register beside the keyring
(``keys.revocations``), and what the register says wins over the row: refused (401), or
the step-up still asked; a row that says less is told (``auth:session:altered`` or
``auth:client:altered`` with ``why: written back``) and raised as a critical alert."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from carevault.access.sessions import RefreshRefused, TokenPair
from carevault.access.tables import auth_session, client_app
from carevault.bootstrap import Services, build_services
from carevault.keys.anchors import anchors_path
from tests.integration.access.conftest import MovableClock
from tests.integration.access.group import TM, Group, build_group
from tests.support.client import FhirTestClient
from tests.support.insider import edit_rows
from tests.support.ledgers import altered_alerts, entries_once_written
from tests.support.staff import TEST_APP, Staff

pytestmark = pytest.mark.postgres

SESSION_ALTERED = "auth:session:altered"
CLIENT_ALTERED = "auth:client:altered"
REGISTER_FAILED = "keys:register:failed"
FEED = "tm-lab-feed"


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _session_of(services: Services, who: Staff) -> str:
    (live,) = services.sessions.list_for(who.account.account_id)
    return live.session_id


def _saved(services: Services, session_id: str) -> dict[str, Any]:
    """The session's row as it stands: what the insider keeps a copy of."""
    with services.engine.begin() as connection:
        row = connection.execute(
            select(auth_session).where(auth_session.c.session_id == session_id)
        ).one()
    return dict(row._mapping)


def _write_back(services: Services, saved: dict[str, Any]) -> None:
    """Every column of the saved row written back over the row, seal and all."""
    with services.engine.begin() as connection:
        connection.execute(
            update(auth_session)
            .where(auth_session.c.session_id == saved["session_id"])
            .values(**saved)
        )
    # What a token's session says is read again a quarter second on.
    time.sleep(services.sessions.check_seconds + 0.05)


def _reads(group: Group, who: Staff) -> int:
    status: int = group.call(who, "GET", f"/fhir/Patient/{group.tm_patient.id}").status_code
    return status


def test_a_session_signed_out_and_written_back_stays_signed_out(
    group: Group, services: Services
) -> None:
    session_id = _session_of(services, group.desk_tm)
    saved = _saved(services, session_id)
    assert services.sessions.revoke(session_id, "ended by its owner")
    assert _reads(group, group.desk_tm) == 401
    _write_back(services, saved)
    assert _saved(services, session_id)["revoked_us"] is None  # the row says live
    assert _reads(group, group.desk_tm) == 401, "the signed-out session read again"
    assert services.sessions.standing(session_id)  # an export it kicked off stops too


def test_an_officers_revocation_written_back_stays(group: Group, services: Services) -> None:
    session_id = _session_of(services, group.doctor_tm)
    saved = _saved(services, session_id)
    assert services.admin.end_session("staff:officer", session_id, reason="lost laptop")
    _write_back(services, saved)
    assert _reads(group, group.doctor_tm) == 401


def test_a_suspensions_revocations_written_back_stay(group: Group, services: Services) -> None:
    session_id = _session_of(services, group.desk_tm)
    saved = _saved(services, session_id)
    services.admin.suspend("staff:officer", group.desk_tm.account.username, reason="bulk read")
    services.admin.reinstate("staff:officer", group.desk_tm.account.username)
    _write_back(services, saved)
    assert _reads(group, group.desk_tm) == 401, "the session ended by the suspension lived"


def test_a_session_revoked_for_a_reused_refresh_token_and_written_back_stays_revoked(
    group: Group, services: Services
) -> None:
    account = group.desk_tm.account
    pair = _with_refresh(services, account.account_id)
    saved = _saved(services, pair.session_id)
    newer, _ = services.sessions.refresh(pair.refresh_token, TEST_APP)
    with pytest.raises(RefreshRefused) as reused:
        services.sessions.refresh(pair.refresh_token, TEST_APP)  # the thief's copy
    assert reused.value.reused
    _write_back(services, saved)
    held = {"authorization": f"Bearer {newer.access_token}"}
    assert group.web.get(f"/fhir/Patient/{group.tm_patient.id}", headers=held).status_code == 401
    assert newer.refresh_token is not None
    with pytest.raises(RefreshRefused):
        services.sessions.refresh(newer.refresh_token, TEST_APP)


def _alter(services: Services, session_id: str, **values: Any) -> None:
    """The insider edits the live row (its seal no longer matches)."""
    edit_rows(services, auth_session, auth_session.c.session_id == session_id, **values)


def test_a_row_marked_revoked_before_the_officer_ends_it_is_still_recorded(
    group: Group, services: Services
) -> None:
    """The insider saves the genuine row, marks the live row revoked (so the officer's
    revocation, which takes live rows only, found nothing to record), and after the
    officer has ended the session writes the saved row back: it was live (200; review of
    stop 57). A row the revocation is meant for that does not match its seal is written
    to the register all the same."""
    session_id = _session_of(services, group.doctor_tm)
    saved = _saved(services, session_id)
    _alter(services, session_id, revoked_us=1)
    services.admin.end_session("staff:officer", session_id, reason="lost laptop")
    _write_back(services, saved)
    assert _reads(group, group.doctor_tm) == 401, "the revocation was lost"


def test_a_row_made_to_look_expired_before_a_step_up_is_still_asked(
    group: Group, services: Services
) -> None:
    """The same for a detector's step-up, which takes unexpired rows only."""
    account = group.desk_tm.account.account_id
    session_id = _session_of(services, group.desk_tm)
    saved = _saved(services, session_id)
    _alter(services, session_id, expires_us=1)
    services.sessions.require_step_up(account_id=account, reason="bulk reading")
    _write_back(services, saved)
    assert _reads(group, group.desk_tm) != 200, "the step-up was dodged"


def test_a_step_up_written_back_is_still_asked(group: Group, services: Services) -> None:
    """A detector's containment of a stolen token: the row saved before the step-up was
    asked, written back after, lifted it. It stays asked until a fresh code is shown."""
    account = group.desk_tm.account.account_id
    session_id = _session_of(services, group.desk_tm)
    saved = _saved(services, session_id)
    assert services.sessions.require_step_up(account_id=account, reason="bulk reading") == 1
    assert _reads(group, group.desk_tm) != 200
    _write_back(services, saved)
    assert _saved(services, session_id)["step_up_us"] is None
    assert _reads(group, group.desk_tm) != 200, "the step-up was lifted"
    # The person shows a fresh code, as the legitimate flow asks: it is met.
    stepped = group.web.post(
        "/auth/step-up", json={"totp": group.desk_tm.totp()}, headers=group.desk_tm.headers
    )
    assert stepped.status_code == 200
    time.sleep(services.sessions.check_seconds + 0.05)
    assert _reads(group, group.desk_tm) == 200


def test_a_step_up_met_then_asked_again_is_not_lifted_by_the_met_row(
    group: Group, services: Services
) -> None:
    account = group.desk_tm.account.account_id
    session_id = _session_of(services, group.desk_tm)
    services.sessions.require_step_up(account_id=account, reason="bulk reading")
    services.sessions.stepped_up(session_id)
    met = _saved(services, session_id)  # the row once the first step-up was met
    assert services.sessions.require_step_up(account_id=account, reason="again") == 1
    _write_back(services, met)
    assert services.sessions.state(session_id, fresh=True).step_up
    assert _reads(group, group.desk_tm) != 200


def test_a_revocation_written_back_is_refused_in_another_process(
    group: Group, services: Services
) -> None:
    """``serve --workers N``: the register is shared; another process started before
    the revocation reads what was appended at its next check."""
    other = build_services(services.settings)
    try:
        session_id = _session_of(services, group.desk_tm)
        assert other.sessions.state(session_id, fresh=True).live
        saved = _saved(services, session_id)
        services.sessions.revoke(session_id, "ended by its owner")
        _write_back(services, saved)
        assert not other.sessions.state(session_id, fresh=True).live
    finally:
        other.close()


@pytest.mark.movable_clock
def test_a_row_written_back_is_told_and_raised(
    group: Group, services: Services, clock: MovableClock
) -> None:
    session_id = _session_of(services, group.desk_tm)
    saved = _saved(services, session_id)
    services.sessions.revoke(session_id, "ended by its owner")
    _write_back(services, saved)
    # Within a moment of the revocation it is refused and not told (another process may
    # be reading the row while the revocation is being committed); after, it is told.
    assert _reads(group, group.desk_tm) == 401
    clock.advance(31)
    time.sleep(services.sessions.check_seconds + 0.05)
    assert _reads(group, group.desk_tm) == 401
    (entry,) = entries_once_written(services, SESSION_ALTERED)
    assert entry.detail == {"session": session_id, "why": "written back", "lifted": "revocation"}
    assert altered_alerts(services) == ["critical"]


# --- client apps ---------------------------------------------------------------------


def _feed(group: Group) -> str:
    _, secret = group.services.admin.add_client(
        "admin:test",
        FEED,
        "Tuen Mun lab feed",
        confidential=True,
        scopes="system/Patient.rs system/Observation.rs",
        clinic_ids=[TM],
    )
    assert secret is not None
    return secret


def _token(group: Group, secret: str) -> Any:
    return group.web.post(
        "/auth/token",
        data={
            "grant_type": "client_credentials",
            "scope": "system/Patient.rs system/Observation.rs",
            "client_id": FEED,
            "client_secret": secret,
        },
    )


def _saved_app(services: Services) -> dict[str, Any]:
    with services.engine.begin() as connection:
        row = connection.execute(select(client_app).where(client_app.c.client_id == FEED)).one()
    return dict(row._mapping)


def _write_back_app(services: Services, saved: dict[str, Any]) -> None:
    with services.engine.begin() as connection:
        connection.execute(update(client_app).where(client_app.c.client_id == FEED).values(**saved))
    time.sleep(services.sessions.check_seconds + 0.05)


def test_a_client_apps_revocation_written_back_gets_no_token(
    group: Group, services: Services
) -> None:
    secret = _feed(group)
    issued = _token(group, secret)
    assert issued.status_code == 200
    saved = _saved_app(services)
    with services.engine.begin() as connection:
        (session_id,) = connection.execute(
            select(auth_session.c.session_id).where(auth_session.c.client_id == FEED)
        ).scalars()
    saved_session = _saved(services, session_id)
    services.admin.revoke_client("admin:test", FEED)
    assert _token(group, secret).status_code == 401
    _write_back_app(services, saved)
    again = _token(group, secret)
    assert again.status_code == 401, "the revoked app was given a token"
    assert services.clients.get(FEED) is None
    # Nor does a session it opened before come back, its own row written back too.
    _write_back(services, saved_session)
    held = {"authorization": f"Bearer {issued.json()['access_token']}"}
    assert group.web.get(f"/fhir/Patient/{group.tm_patient.id}", headers=held).status_code == 401


@pytest.mark.movable_clock
def test_a_client_app_written_back_is_told(
    group: Group, services: Services, clock: MovableClock
) -> None:
    secret = _feed(group)
    saved = _saved_app(services)
    services.admin.revoke_client("admin:test", FEED)
    _write_back_app(services, saved)
    clock.advance(31)
    assert _token(group, secret).status_code == 401
    (entry,) = entries_once_written(services, CLIENT_ALTERED)
    assert entry.detail == {"client": FEED, "why": "written back"}
    assert altered_alerts(services) == ["critical"]


# --- guards: the legitimate flows ------------------------------------------------------


def test_sign_out_refresh_step_up_and_revocations_work_as_before(
    group: Group, services: Services
) -> None:
    """Guard: a refresh rotates, a step-up asked and met lets the session go on, a
    sign-out ends it, a new session of the same person reads; nothing is told."""
    account = group.desk_tm.account
    pair = _with_refresh(services, account.account_id)
    newer, _ = services.sessions.refresh(pair.refresh_token, TEST_APP)
    assert services.sessions.require_step_up(account_id=account.account_id, reason="x") == 2
    assert not services.sessions.state(pair.session_id, fresh=True).live or (
        services.sessions.state(pair.session_id, fresh=True).step_up
    )
    services.sessions.stepped_up(pair.session_id)
    state = services.sessions.state(pair.session_id, fresh=True)
    assert state.live and not state.step_up
    assert services.sessions.revoke(pair.session_id, "ended by its owner")
    assert not services.sessions.state(pair.session_id, fresh=True).live
    assert newer.refresh_token is not None
    with pytest.raises(RefreshRefused):
        services.sessions.refresh(newer.refresh_token, TEST_APP)
    # The desk's other session (the group's) was asked too, and is still asked.
    assert services.sessions.state(_session_of(services, group.desk_tm), fresh=True).step_up
    assert entries_once_written(services, SESSION_ALTERED, seconds=0.5) == []
    assert entries_once_written(services, REGISTER_FAILED, seconds=0.1) == []


def test_a_revoked_client_id_is_not_registered_again(group: Group, services: Services) -> None:
    """Guard: an app is never re-enabled; a new one is registered under a new id. One
    whose row the insider deleted cannot take the old id back (it would be refused for
    good): the registration says so."""
    _feed(group)
    services.admin.revoke_client("admin:test", FEED)
    with services.engine.begin() as connection:
        connection.execute(client_app.delete().where(client_app.c.client_id == FEED))
    with pytest.raises(ValueError, match="was revoked"):
        _feed(group)


def test_revocations_from_before_the_register_are_written_to_it_once(
    group: Group, services: Services
) -> None:
    """Guard: a home upgraded with sessions already revoked or asked to step up has them
    written to the register at the first start after, once (noted beside the keyring)."""
    from carevault.keys.revocations import revocations_path  # new this round

    register = revocations_path(services.settings.resolved_keyring_path)
    anchors = anchors_path(services.settings.resolved_keyring_path)
    session_id = _session_of(services, group.desk_tm)
    saved = _saved(services, session_id)
    services.sessions.revoke(session_id, "ended by its owner")
    register.unlink()  # as before the upgrade
    kept = [line for line in anchors.read_text().split() if line != "revocations"]
    anchors.write_text("".join(f"{line}\n" for line in kept))
    build_services(services.settings).close()
    assert session_id in register.read_text()
    _write_back(services, saved)
    assert not services.sessions.state(session_id, fresh=True).live


def test_an_unwritable_register_stops_no_revocation_and_is_told(
    group: Group, services: Services, tmp_path: Path
) -> None:
    """The register cannot be written (here: its name taken by a folder): the revocation
    still stands in the database, and the failure is logged and told. While it cannot be
    read either, every session is refused (the safe side)."""
    from carevault.keys.revocations import revocations_path  # new this round

    register = revocations_path(services.settings.resolved_keyring_path)
    register.unlink(missing_ok=True)
    register.mkdir()
    session_id = _session_of(services, group.desk_tm)
    assert services.sessions.revoke(session_id, "ended by its owner")
    assert _saved(services, session_id)["revoked_us"] is not None
    told = entries_once_written(services, REGISTER_FAILED)
    assert told and told[0].detail["register"] == "revocations"
    assert not services.sessions.state(_session_of(services, group.doctor_tm), fresh=True).live
    register.rmdir()
    assert services.sessions.state(_session_of(services, group.doctor_tm), fresh=True).live


def _with_refresh(services: Services, account_id: str) -> TokenPair:
    """A session of ``account_id`` under the test app, with a refresh token."""
    pair = services.sessions.open(
        subject=account_id,
        account_id=account_id,
        client_id=TEST_APP,
        scope="user/*.cruds offline_access",
        with_refresh=True,
        source_address=None,
        user_agent=None,
    )
    assert pair.refresh_token is not None
    return pair
