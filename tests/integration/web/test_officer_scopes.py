"""The officer's admin APIs need the role and a whole-account token: a privacy officer's
token granted to an app for less (``user/Patient.rs``) reaches none of them, and neither
the account's sessions; each refusal changes nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from carevault.incidents import incidents_for
from carevault.web.app import create_app
from tests.integration.access.browser import bearer
from tests.support.client import FhirTestClient
from tests.support.staff import Staff, make_staff, open_token

pytestmark = pytest.mark.postgres

CLINIC = "clinic-a"
NARROW = "user/Patient.rs"


@pytest.fixture
def web(services: Services) -> Iterator[FhirTestClient]:
    with FhirTestClient(create_app(services.settings, services)) as client:
        yield client


@pytest.fixture
def officer(services: Services) -> Staff:
    return make_staff(services, Role.PRIVACY_OFFICER, [CLINIC])


def _reads() -> list[str]:
    return [
        "/admin/containment",
        "/admin/alerts",
        "/admin/incidents",
        "/admin/incidents/1",
        "/admin/incidents/1/timeline",
        "/admin/incidents/1/scope/runs",
        "/admin/exports",
        "/admin/exports/nojob",
        "/fhir/AuditEvent",
        "/audit/proof/inclusion?seq=0",
        "/audit/patients/nobody/access-report",
        "/auth/sessions",
    ]


def _writes(code: str) -> list[tuple[str, str, dict[str, str]]]:
    return [
        ("POST", "/admin/containment", {"mode": "read-only", "reason": "x", "totp": code}),
        ("POST", "/admin/containment/1/release", {"reason": "x", "totp": code}),
        ("POST", "/admin/emergency/nogrant/approve", {"totp": code}),
        ("POST", "/admin/alerts/1/ack", {"totp": code}),
        ("POST", "/admin/incidents", {"title": "x"}),
        ("POST", "/admin/incidents/1/amend", {"note": "x"}),
        ("POST", "/admin/exports/nojob/approve", {"totp": code}),
        ("POST", "/admin/exports/nojob/deny", {"totp": code, "reason": "x"}),
        ("POST", "/admin/exports/nojob/cancel", {"totp": code, "reason": "x"}),
        ("DELETE", "/auth/sessions/nosession", {}),
    ]


def test_a_narrowed_officer_token_reaches_no_officer_api(
    web: FhirTestClient, services: Services, officer: Staff
) -> None:
    narrow = bearer(open_token(services, officer.account, NARROW))
    before = services.audit_ledger.store.head()[0]
    for path in _reads():
        response = web.get(path, headers=narrow)
        assert response.status_code == 403, (path, response.text)
        assert "user/*.cruds" in response.text, path
    for method, path, body in _writes("000000"):
        response = web.request(method, path, json=body, headers=narrow)
        assert response.status_code == 403, (method, path, response.text)
    assert not services.containment.refresh().active
    assert not incidents_for(services).all()
    # The narrowed token still does what it was granted.
    assert web.get("/fhir/Patient", headers=narrow).status_code == 200
    # Refused ledger reads are recorded as such.
    assert services.audit_ledger.store.head()[0] > before


def test_the_same_officer_with_a_whole_account_token_is_served(
    web: FhirTestClient, services: Services, officer: Staff
) -> None:
    for path in ("/admin/containment", "/admin/exports", "/fhir/AuditEvent", "/auth/sessions"):
        response = web.get(path, headers=officer.headers)
        assert response.status_code in (200, 501), (path, response.text)


def test_a_narrowed_token_does_not_make_the_server_sign_a_checkpoint(
    web: FhirTestClient, services: Services, officer: Staff
) -> None:
    narrow = bearer(open_token(services, officer.account, NARROW))
    services.audit_ledger.checkpoints.make("test")
    web.get("/fhir/Patient", headers=officer.headers)  # the ledger grows past it
    signed = len(services.audit_ledger.checkpoints.all())
    assert web.get("/audit/checkpoint", headers=narrow).status_code == 200
    assert len(services.audit_ledger.checkpoints.all()) == signed
    assert web.get("/audit/checkpoint", headers=officer.headers).status_code == 200
    assert len(services.audit_ledger.checkpoints.all()) == signed + 1
