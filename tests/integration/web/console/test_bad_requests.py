"""The console under requests no form of it sends: ids that no row can have, values
that are not one of the page's own. Each is answered with the console's own page (400
or 404, never a 500, never a FHIR JSON body an officer cannot read) and changes
nothing; a value the page cannot use is refused, not silently replaced."""

from __future__ import annotations

import pytest
from httpx import Response

from carevault.bootstrap import Services
from carevault.containment.state import Mode
from tests.integration.web.console.conftest import Browser
from tests.support.console import Person, csrf_of, ledger_events

pytestmark = pytest.mark.postgres

#: Past a signed 64-bit integer: no row of SQLite or PostgreSQL has such an id.
HUGE = "99999999999999999999"


def _console_page(response: Response, status: int) -> None:
    assert response.status_code == status, (response.request.url, response.text[:300])
    assert response.headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


def test_an_id_no_row_can_have_is_not_found_not_a_server_error(
    signed_in: Browser, console_services: Services, officer: Person
) -> None:
    client = signed_in(officer)
    token = csrf_of(client.get("/console/incidents").text)
    before = len(ledger_events(console_services))
    pages = [
        f"/console/incidents/{HUGE}",
        f"/console/incidents/{HUGE}/scope",
        f"/console/incidents/{HUGE}/scope.json",
        f"/console/incidents/{HUGE}/reports/pcpd.json",
        f"/console/containment/{HUGE}/release",
        f"/console/alerts/{HUGE}",
        f"/console/alerts/{HUGE}/evidence.json",
    ]
    for path in pages:
        answer = client.get(path)
        assert answer.status_code in (400, 404), (path, answer.status_code)
        _console_page(answer, answer.status_code)
    progress = client.get(f"/console/incidents/{HUGE}/notices", headers={"HX-Request": "true"})
    assert progress.status_code in (400, 404)
    actions = [
        (f"/console/incidents/{HUGE}/amend", {"title": "x", "totp": officer.code()}),
        (f"/console/incidents/{HUGE}/scope", {}),
        (f"/console/incidents/{HUGE}/notices", {"totp": officer.code()}),
        (f"/console/incidents/{HUGE}/decide", {"regulator": "pcpd", "decision": "filed"}),
        (f"/console/containment/{HUGE}/release", {"reason": "x", "totp": officer.code()}),
        (f"/console/alerts/{HUGE}/acknowledge", {"totp": officer.code()}),
        (f"/console/alerts/{HUGE}/dismiss", {"totp": officer.code(), "reason": "x"}),
        (f"/console/alerts/{HUGE}/declare", {"since": "2026-11-01T00:00"}),
    ]
    for path, form in actions:
        answer = client.post(path, data={**form, "csrf": token}, follow_redirects=False)
        assert answer.status_code in (400, 403, 404), (path, answer.status_code)
        assert answer.headers["content-type"].startswith("text/html"), path
    assert not console_services.containment.refresh().active
    acted = [
        e["tag"]
        for e in ledger_events(console_services)[before:]
        if e["tag"].split(":")[0] in ("incident", "detect", "notify", "contain")
        and e["outcome"] == "success"
    ]
    assert acted == []


def test_a_malformed_id_is_refused_with_the_consoles_own_page(
    signed_in: Browser, officer: Person
) -> None:
    client = signed_in(officer)
    token = csrf_of(client.get("/console/incidents").text)
    for path in [
        "/console/incidents/abc",
        "/console/incidents/1e3",
        "/console/incidents/-1/scope",
        "/console/incidents/0",
        "/console/containment/abc/release",
    ]:
        answer = client.get(path)
        _console_page(answer, 400)
        assert "OperationOutcome" not in answer.text, path
        assert "/console/sign-out" in answer.text, "the page is the console's, signed in"
    posted = client.post("/console/incidents/abc/amend", data={"csrf": token, "title": "x"})
    _console_page(posted, 400)


def test_a_scope_run_that_is_not_a_run_number_is_refused_not_replaced_by_the_latest(
    signed_in: Browser, officer: Person, front_desk_b: Person
) -> None:
    client = signed_in(officer)
    token = csrf_of(client.get("/console/incidents").text)
    declared = client.post(
        "/console/incidents",
        data={"csrf": token, "title": "t", "since": "2026-11-01T00:00", "accounts": "desk2"},
        follow_redirects=False,
    )
    assert declared.status_code == 303
    incident = declared.headers["location"].split("/")[3].split("?")[0]
    assert client.get(f"/console/incidents/{incident}/scope").status_code == 200
    for run in ("abc", "-1", "0", "1.0", " 1", HUGE, ""):
        for suffix in ("scope", "scope.json"):
            answer = client.get(f"/console/incidents/{incident}/{suffix}", params={"run": run})
            assert answer.status_code in (400, 404), (suffix, run, answer.status_code)
            _console_page(answer, answer.status_code)
    assert (
        client.get(f"/console/incidents/{incident}/scope", params={"run": "1"}).status_code == 200
    )


def test_a_containment_mode_that_is_not_one_is_refused_and_nothing_starts(
    signed_in: Browser, console_services: Services, officer: Person
) -> None:
    client = signed_in(officer)
    token = csrf_of(client.get("/console/containment").text)
    shown = client.get("/console/containment/start", params={"mode": "everything-off"})
    _console_page(shown, 400)
    started = client.post(
        "/console/containment/start",
        data={"csrf": token, "mode": "everything-off", "reason": "x", "totp": officer.code()},
        follow_redirects=False,
    )
    _console_page(started, 400)
    assert not console_services.containment.refresh().active
    assert (
        client.get("/console/containment/start", params={"mode": Mode.READ_ONLY.value}).status_code
        == 200
    )


def test_a_letter_in_a_language_the_console_does_not_write_is_refused_not_english(
    signed_in: Browser, console_services: Services, officer: Person
) -> None:
    """The letter went out in English (with the Chinese group name for ``zh``) for any
    language it did not know: a patient who asked in Chinese got an English letter."""
    client = signed_in(officer)
    before = len(ledger_events(console_services))
    for language in ("xx", "zh", "EN", ""):
        answer = client.get("/console/patients/pt-chan/letter.pdf", params={"lang": language})
        _console_page(answer, 400)
    # Refused before the report was built: no read of the ledger was made for it.
    assert len(ledger_events(console_services)) == before
