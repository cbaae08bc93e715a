"""Refused sign-ins through /auth/token (SQLite and PostgreSQL) are the sender's, not the
named account's: an outsider guessing a colleague's password (or naming usernames no one
has) from one network raises one alert on that network's case; the named account has no
case, no step-up, and reads on. Networks beyond the day's quota share one alert."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from carevault.detect import alerts_as_dicts
from tests.conftest import make_settings
from tests.integration.detect.conftest import Clinic, opened_clinic
from tests.support.staff import TEST_APP


@pytest.fixture
def clinic(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Clinic]:
    url = request.getfixturevalue("pg_schema") if backend == "postgres" else None
    # The token endpoint takes a password (as scripts do); the default responses apply.
    settings = make_settings(tmp_path / "home", url, direct_grant=True)
    patient = {
        "resourceType": "Patient",
        "name": [{"family": "Chan", "given": ["Tai Man"]}],
        "managingOrganization": {"reference": "Organization/clinic-a"},
    }
    with opened_clinic(settings, [patient]) as opened:
        yield opened


def _guess(clinic: Clinic, address: str, username: str, times: int) -> None:
    outsider = TestClient(clinic.web.app, client=(address, 40_000))
    for _ in range(times):
        response = outsider.post(
            "/auth/token",
            data={
                "grant_type": "password",
                "client_id": TEST_APP,
                "username": username,
                "password": "not the password",
                "totp": "123456",
                "scope": "user/*.cruds",
            },
        )
        assert response.status_code in (400, 429), response.text


def test_refused_sign_ins_open_cases_on_their_source_not_on_the_named_account(
    clinic: Clinic,
) -> None:
    desk = clinic.desk.account.username
    # Past the sign-in guard's limit the attempts are throttled (refused as such): 25
    # would have been ten failures and fifteen "denials" of the desk's own.
    _guess(clinic, "203.0.113.7", desk, 25)
    _guess(clinic, "198.51.100.9", "no-such-user", 12)
    alerts = alerts_as_dicts(clinic.services)
    assert sorted((a["detector"], a["case"], a["account"]) for a in alerts) == [
        ("sign-in-failures", "case:source:198.51.100.0/24", None),
        ("sign-in-failures", "case:source:203.0.113.0/24", None),
    ]
    assert all(a["action"] == "raise" for a in alerts)
    assert not [a for a in alerts if desk in (a["explanation"] or "")]
    # The desk did nothing: no step-up, no suspension.
    assert clinic.read(clinic.desk, clinic.patients[0]) == 200
