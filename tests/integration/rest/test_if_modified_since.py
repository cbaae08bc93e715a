"""``If-Modified-Since`` on a read (and ``request.ifModifiedSince`` on a Bundle's GET
entry): 304 when the version read was written before the date given, never for a date
within the version's own second or ahead of the server's clock, never when
``If-None-Match`` is sent. Each read still passes the gate and is in the ledger. On
SQLite and PostgreSQL, on a clock the test moves."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from carevault.bootstrap import Services
from carevault.clock import http_date, to_micros
from carevault.gate import Caller
from carevault.web.app import create_app
from carevault.web.security import caller
from tests.integration.rest.test_interactions import create, patient
from tests.support.client import FhirTestClient
from tests.support.console import MovableClock

pytestmark = pytest.mark.movable_clock


@pytest.fixture
def api(services: Services) -> Iterator[FhirTestClient]:
    app = create_app(services.settings, services)
    app.dependency_overrides[caller] = lambda: Caller(principal="system:test")
    with FhirTestClient(app) as client:
        yield client


@pytest.fixture
def written(api: FhirTestClient, clock: MovableClock) -> dict[str, Any]:
    """A patient written, then a minute of the clock gone by."""
    made = create(api, patient())
    clock.advance(60)
    return made


def _entries(services: Services) -> int:
    return int(services.audit_ledger.store.head()[0])


def _last_updated(made: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(made["meta"]["lastUpdated"].replace("Z", "+00:00"))


def _after(made: dict[str, Any], seconds: float) -> str:
    """An HTTP date ``seconds`` after the record's ``lastUpdated``."""
    return http_date(to_micros(_last_updated(made)) + int(seconds * 1_000_000))


def test_a_record_unchanged_since_the_date_is_not_modified_and_the_read_is_recorded(
    api: FhirTestClient, services: Services, written: dict[str, Any]
) -> None:
    path = f"/fhir/Patient/{written['id']}"
    before = _entries(services)

    answer = api.get(path, headers={"If-Modified-Since": _after(written, 30)})

    assert answer.status_code == 304, answer.text
    assert answer.content == b""
    assert answer.headers["ETag"] == 'W/"1"'
    assert _entries(services) == before + 1
    head = api.head(path, headers={"If-Modified-Since": _after(written, 30)})
    assert head.status_code == 304


@pytest.mark.parametrize(
    "header",
    [
        # The record's own Last-Modified: a second write within that second is possible.
        "own",
        # Before it was written.
        "before",
        # Ahead of the server's clock (a client's clock running fast).
        "future",
        # Not an HTTP date, or a list of two: ignored (RFC 9110 13.1.3).
        "2099-01-01T00:00:00Z",
        "Tue, 01 Jan 2099 00:00:00 GMT, Wed, 02 Jan 2099 00:00:00 GMT",
        "yesterday",
    ],
)
def test_a_date_that_does_not_show_the_version_unchanged_is_answered_in_full(
    api: FhirTestClient, written: dict[str, Any], header: str
) -> None:
    path = f"/fhir/Patient/{written['id']}"
    plain = api.get(path)
    given = {
        "own": plain.headers["Last-Modified"],
        "before": _after(written, -5),
        "future": _after(written, 3600),
    }.get(header, header)

    answer = api.get(path, headers={"If-Modified-Since": given})

    assert answer.status_code == 200, answer.text
    assert answer.json() == plain.json()


def test_a_change_after_the_date_is_answered_in_full(
    api: FhirTestClient, clock: MovableClock, written: dict[str, Any]
) -> None:
    since = _after(written, 30)
    changed = api.put_json(f"/fhir/Patient/{written['id']}", {**written, "gender": "female"})
    assert changed.status_code == 200, changed.text
    clock.advance(60)

    answer = api.get(f"/fhir/Patient/{written['id']}", headers={"If-Modified-Since": since})

    assert answer.status_code == 200 and answer.json()["gender"] == "female"
    # The version held is the first: a vread of it is still unchanged since the date.
    first = api.get(
        f"/fhir/Patient/{written['id']}/_history/1", headers={"If-Modified-Since": since}
    )
    assert first.status_code == 304


def test_if_none_match_outranks_the_date(api: FhirTestClient, written: dict[str, Any]) -> None:
    path = f"/fhir/Patient/{written['id']}"
    since = _after(written, 30)

    other = api.get(path, headers={"If-Modified-Since": since, "If-None-Match": 'W/"7"'})
    same = api.get(path, headers={"If-Modified-Since": since, "If-None-Match": 'W/"1"'})

    assert other.status_code == 200 and same.status_code == 304


def _one_get(url: str, **conditions: str) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": url, **conditions}}],
    }


def test_a_bundle_entrys_if_modified_since_answers_as_the_header_does(
    api: FhirTestClient, written: dict[str, Any]
) -> None:
    """``request.ifModifiedSince`` is a FHIR instant, in any zone (here Hong Kong's)."""
    url = f"Patient/{written['id']}"
    asked = {
        "unchanged": _instant_after(written, 30),
        "own second": written["meta"]["lastUpdated"],
        "ahead": _instant_after(written, 3600),
    }

    statuses = {
        name: api.post_json("/fhir", _one_get(url, ifModifiedSince=since)).json()["entry"][0][
            "response"
        ]["status"]
        for name, since in asked.items()
    }

    assert statuses == {"unchanged": "304 Not Modified", "own second": "200 OK", "ahead": "200 OK"}
    metadata = api.get("/fhir/metadata").json()
    assert metadata["rest"][0]["resource"][0]["conditionalRead"] == "full-support"


def _instant_after(made: dict[str, Any], seconds: int) -> str:
    """A FHIR instant ``seconds`` after the record's ``lastUpdated``, in Hong Kong time."""
    at = _last_updated(made) + timedelta(seconds=seconds)
    return at.astimezone(timezone(timedelta(hours=8))).isoformat()


@pytest.mark.parametrize("since", ["yesterday", "2026-12-05", "2026-12-05T10:00:00", 20261205])
def test_a_bundle_entrys_if_modified_since_that_is_not_an_instant_is_refused(
    api: FhirTestClient, services: Services, written: dict[str, Any], since: Any
) -> None:
    before = _entries(services)

    answer = api.post_json("/fhir", _one_get(f"Patient/{written['id']}", ifModifiedSince=since))

    assert answer.status_code == 400, answer.text
    [issue] = answer.json()["issue"]
    assert "Bundle.entry[0]" in issue["diagnostics"] and "ifModifiedSince" in issue["diagnostics"]
    assert _entries(services) == before
