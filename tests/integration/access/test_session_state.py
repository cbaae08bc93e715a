"""Session state under concurrent requests: read once when it goes stale, never older than
``check_seconds``, and a suspension still refuses the next request once it is read."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jwt

from carevault.access.sessions import SessionState
from carevault.bootstrap import Services
from tests.integration.access.conftest import NewStaff
from tests.support.client import FhirTestClient

READERS = 8


def _session_of(web: FhirTestClient, staff: Any) -> str:
    response = web.post("/auth/token", data=staff.grant())
    assert response.status_code == 200, response.text
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    return str(claims["sid"])


def _at_once(ask: Any) -> list[SessionState]:
    """``READERS`` threads asking at the same moment."""
    start = threading.Barrier(READERS)

    def one(_: int) -> SessionState:
        start.wait()
        state: SessionState = ask()
        return state

    with ThreadPoolExecutor(READERS) as pool:
        return list(pool.map(one, range(READERS)))


def test_requests_that_find_a_session_state_stale_together_read_it_once(
    web: FhirTestClient, auth_services: Services, new_staff: NewStaff
) -> None:
    sessions = auth_services.access.sessions
    session_id = _session_of(web, new_staff())
    # Long enough that every reader takes the first one's answer, however slow the machine.
    sessions.check_seconds = 600
    reads: list[str] = []
    load = sessions._load

    def counted(wanted: str) -> SessionState:
        reads.append(wanted)
        return load(wanted)

    sessions._load = counted  # type: ignore[method-assign]
    sessions._forget(session_id)

    states = _at_once(lambda: sessions.state(session_id))

    assert reads == [session_id]
    assert all(state.live for state in states)


def test_a_suspension_is_seen_by_every_request_once_the_state_is_read_again(
    web: FhirTestClient, auth_services: Services, new_staff: NewStaff
) -> None:
    sessions = auth_services.access.sessions
    staff = new_staff()
    session_id = _session_of(web, staff)
    assert sessions.state(session_id).live

    # Another process suspends the account: only the database changes; this process's
    # cached state is due for a read again (as after ``check_seconds``).
    auth_services.accounts.set_suspended(staff.username, True)
    sessions._forget(session_id)

    states = _at_once(lambda: sessions.state(session_id))

    assert not any(state.live for state in states)
    assert {state.reason for state in states} == {"account suspended"}


def test_a_fresh_read_is_never_taken_from_the_cache(
    web: FhirTestClient, auth_services: Services, new_staff: NewStaff
) -> None:
    sessions = auth_services.access.sessions
    staff = new_staff()
    session_id = _session_of(web, staff)
    sessions.check_seconds = 600
    assert sessions.state(session_id).live

    auth_services.accounts.set_suspended(staff.username, True)

    assert sessions.state(session_id).live  # cached, as allowed for ``check_seconds``
    assert not sessions.state(session_id, fresh=True).live
