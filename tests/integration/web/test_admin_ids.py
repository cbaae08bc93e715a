"""The officer's admin API under ids no row can have (past a signed 64-bit integer):
not found or malformed, never a 500 whose log line is the only trace; nothing changes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from carevault.incidents import incidents_for
from carevault.web.app import create_app
from tests.support.client import FhirTestClient
from tests.support.staff import make_staff

pytestmark = pytest.mark.postgres

HUGE = "99999999999999999999"


@pytest.fixture
def web(services: Services) -> Iterator[FhirTestClient]:
    with FhirTestClient(create_app(services.settings, services)) as client:
        yield client


def test_an_id_no_row_can_have_is_not_found_or_malformed(
    web: FhirTestClient, services: Services
) -> None:
    officer = make_staff(services, Role.PRIVACY_OFFICER, ["clinic-a"])
    for path in [
        f"/admin/alerts/{HUGE}",
        f"/admin/incidents/{HUGE}",
        f"/admin/incidents/{HUGE}/timeline",
        f"/admin/incidents/{HUGE}/scope",
        f"/admin/incidents/{HUGE}/scope/runs",
    ]:
        answer = web.get(path, headers=officer.headers)
        assert answer.status_code in (400, 404), (path, answer.status_code)
        assert answer.json()["resourceType"] == "OperationOutcome"
    for path, body in [
        (f"/admin/alerts/{HUGE}/ack", {"totp": officer.totp()}),
        (f"/admin/alerts/{HUGE}/dismiss", {"totp": officer.totp(), "reason": "x"}),
        (f"/admin/incidents/{HUGE}/amend", {"note": "x"}),
        (f"/admin/containment/{HUGE}/release", {"reason": "x", "totp": officer.totp()}),
    ]:
        answer = web.post(path, json=body, headers=officer.headers)
        assert answer.status_code in (400, 404), (path, answer.status_code, answer.text)
    assert not incidents_for(services).all()
    assert not services.containment.refresh().active
