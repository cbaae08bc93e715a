"""A page that polls does not keep its session alive: the incident page asks for its
notice panel every two seconds while the send job runs, and those requests are the
page's, not the officer's. Adversary round 61 left open that each poll counted as
activity, so an unattended screen on that page was never signed out by the idle
timeout while the job ran."""

from __future__ import annotations

import re

import pytest
from httpx import Response
from starlette.testclient import TestClient

from carevault.bootstrap import Services
from carevault.notify.store import NoticeStore
from tests.integration.web.console.conftest import Browser
from tests.support.console import MovableClock, Person, csrf_of, ledger_events

pytestmark = pytest.mark.postgres

#: What htmx sends with the panel's poll.
HTMX = {"HX-Request": "true", "Sec-Fetch-Site": "same-origin"}
DAY_US = 86_400_000_000


def _incident_sending_notices(client: TestClient, svc: Services, named: Person) -> int:
    """An incident declared on the console, whose send job another process (``carevault
    notify send``) holds the lease of for a day: the incident page polls its panel."""
    token = csrf_of(client.get("/console/incidents").text)
    declared = client.post(
        "/console/incidents",
        data={"csrf": token, "title": "desk", "since": "2026-01-01T00:00",
              "accounts": named.username},
        follow_redirects=False,
    )  # fmt: skip
    assert declared.status_code == 303, declared.text
    incident_id = int(re.findall(r"/console/incidents/(\d+)", declared.headers["location"])[0])
    started = NoticeStore(svc.engine).start_job(
        str(incident_id), ["confirmed"], 40, svc.now_us(), owner="cli:elsewhere", lease_us=DAY_US
    )
    assert started
    page = client.get(f"/console/incidents/{incident_id}")
    assert page.status_code == 200
    assert f'hx-get="/console/incidents/{incident_id}/notices" hx-trigger="every 2s"' in page.text
    return incident_id


def _signed_out_for_idling(response: Response, svc: Services, officer: Person) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["hx-redirect"] == "/console/sign-in?why=idle"
    assert "notice-progress" not in response.text
    assert svc.sessions.list_for(officer.account_id) == []
    ended = [e for e in ledger_events(svc) if e["tag"] == "console:session:ended"]
    assert ended[-1]["reason"] == "idle timeout"


def test_the_notice_panels_poll_does_not_hold_off_the_idle_timeout(
    signed_in: Browser,
    console_services: Services,
    officer: Person,
    physician: Person,
    clock: MovableClock,
) -> None:
    """The officer opens the incident page and walks away. The panel is answered while
    the officer is within the idle time; once the officer has been away for it, the poll
    gets the sign-in answer (htmx sends the browser there) and the session ends, as any
    idle session does. Before, each poll counted: the session was live after any length
    of absence, as long as the page kept asking."""
    client = signed_in(officer)
    incident_id = _incident_sending_notices(client, console_services, physician)
    panel_url = f"/console/incidents/{incident_id}/notices"
    idle = console_services.settings.console_idle_minutes * 60
    # A poll a minute stands for thirty: the session records activity at most every 15 s.
    for _ in range(idle // 60 - 1):
        clock.advance(60)
        panel = client.get(panel_url, headers=HTMX)
        assert panel.status_code == 200, panel.text
        assert 'id="notice-progress"' in panel.text and 'hx-trigger="every 2s"' in panel.text
    clock.advance(61)
    _signed_out_for_idling(
        client.get(panel_url, headers=HTMX, follow_redirects=False), console_services, officer
    )


def test_guard_the_officers_own_requests_still_hold_off_the_idle_timeout(
    signed_in: Browser,
    console_services: Services,
    officer: Person,
    physician: Person,
    clock: MovableClock,
) -> None:
    """Passed before the change too: the page the officer opens counts, so a poll after
    it is answered when more than the idle time has passed since signing in; and a poll
    once the officer has been away for the idle time gets the sign-in answer, not the
    panel."""
    client = signed_in(officer)
    incident_id = _incident_sending_notices(client, console_services, physician)
    panel_url = f"/console/incidents/{incident_id}/notices"
    idle = console_services.settings.console_idle_minutes * 60
    clock.advance(idle - 30)
    assert client.get(f"/console/incidents/{incident_id}").status_code == 200
    clock.advance(idle - 30)
    assert client.get(panel_url, headers=HTMX).status_code == 200
    clock.advance(idle + 1)
    _signed_out_for_idling(
        client.get(panel_url, headers=HTMX, follow_redirects=False), console_services, officer
    )
