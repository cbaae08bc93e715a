"""Sign-in refusals: every one looks the same to the caller, whether the account exists
or not, and the audit ledger gets the real reason."""

from __future__ import annotations

import re
from typing import Any

from starlette.testclient import TestClient

from carevault.access import totp
from carevault.access.accounts import SignInFailed
from carevault.access.throttle import PAIR
from carevault.bootstrap import Services
from carevault.domain.roles import Role
from carevault.ledger.events import Outcome, Tag
from carevault.web.app import create_app
from tests.integration.access.audit_log import events, reasons, refused
from tests.integration.access.browser import AuthRequest, read_login_page, submit_login
from tests.integration.access.conftest import (
    APP,
    FHIR_BASE,
    PASSWORD,
    MovableClock,
    NewStaff,
    Staff,
)
from tests.support.client import FhirTestClient

REFUSED = {"error": "invalid_grant", "error_description": SignInFailed.PUBLIC}
WRONG_PASSWORD = "not the password at all"


def _token(web: FhirTestClient, staff: Staff, **changes: str) -> Any:
    return web.post("/auth/token", data={**staff.grant(code=changes.pop("code", None)), **changes})


def test_unknown_user_and_wrong_password_get_the_same_refusal(
    web: FhirTestClient, auth_services: Services, new_staff: NewStaff
) -> None:
    staff = new_staff()
    unknown = web.post("/auth/token", data={**staff.grant(code="123456"), "username": "nobody"})
    wrong = web.post("/auth/token", data={**staff.grant(), "password": WRONG_PASSWORD})

    assert unknown.status_code == wrong.status_code == 400
    assert unknown.content == wrong.content
    assert unknown.json() == REFUSED
    assert unknown.headers["cache-control"] == wrong.headers["cache-control"] == "no-store"
    store = auth_services.audit_ledger.store
    assert refused(store, Tag.AUTH_SIGN_IN_FAILED, "unknown username").principal is None
    failed = refused(store, Tag.AUTH_SIGN_IN_FAILED, "wrong password")
    assert failed.principal == f"staff-account:{staff.account_id}"
    assert failed.client_id == APP
    assert failed.source_address == "testclient"
    refused(store, Tag.AUTH_TOKEN_REFUSED, "password: unknown username")
    refused(store, Tag.AUTH_TOKEN_REFUSED, "password: wrong password")
    assert events(store, Tag.AUTH_SIGNED_IN) == []


def _without_csrf(html: str) -> str:
    return re.sub(r'name="csrf" value="[^"]*"', "", html)


def test_the_login_page_refuses_unknown_and_existing_users_alike(
    web: FhirTestClient, auth_services: Services, new_staff: NewStaff
) -> None:
    staff = new_staff()
    request = AuthRequest(APP, FHIR_BASE)
    pages = [
        submit_login(web, request, username, WRONG_PASSWORD, "123456")
        for username in (staff.username, "nobody")
    ]

    for page in pages:
        assert page.status_code == 401
        assert "location" not in page.headers
        assert read_login_page(page.text).alert == SignInFailed.PUBLIC
    assert _without_csrf(pages[0].text) == _without_csrf(pages[1].text)
    store = auth_services.audit_ledger.store
    assert refused(store, Tag.AUTH_SIGN_IN_FAILED, "wrong password").client_id == APP
    assert refused(store, Tag.AUTH_SIGN_IN_FAILED, "unknown username").client_id == APP


def test_an_address_that_keeps_failing_waits_longer_each_time_but_is_never_locked_out(
    web: FhirTestClient, auth_services: Services, new_staff: NewStaff, clock: MovableClock
) -> None:
    clock.freeze()
    staff = new_staff()
    same_as_unknown = web.post(
        "/auth/token", data={**staff.grant(code="123456"), "username": "nobody"}
    ).content

    def refused_alike(**changes: str) -> None:
        response = _token(web, staff, **changes)
        assert response.status_code == 400
        assert response.content == same_as_unknown

    for _ in range(PAIR.free):
        refused_alike(password=WRONG_PASSWORD, code="123456")
    # In the back-off even the right password and code are refused, and not counted.
    refused_alike()
    waits = []
    for _ in range(12):
        wait = PAIR.wait_seconds(PAIR.free + len(waits))
        waits.append(wait)
        clock.advance(wait - 0.5)
        refused_alike(password=WRONG_PASSWORD, code="123456")  # still waiting: not counted
        clock.advance(0.5)
        refused_alike(password=WRONG_PASSWORD, code="123456")
    assert waits == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900]
    # Never longer than the longest wait: then the owner's credentials work again.
    clock.advance(PAIR.max_wait_seconds)
    assert _token(web, staff).status_code == 200

    store = auth_services.audit_ledger.store
    failed = reasons(store, Tag.AUTH_SIGN_IN_FAILED)
    assert failed.count("wrong password") == PAIR.free + 12
    throttled = events(store, Tag.AUTH_SIGN_IN_THROTTLED)
    assert len(throttled) == 1 + 12
    assert {event.reason for event in throttled} == {
        "attempt during back-off on this username from this address"
    }
    assert {event.principal for event in throttled} == {f"staff-account:{staff.account_id}"}
    assert [event.detail for event in throttled] == [{"wait_seconds": 1}] * 13
    (signed_in,) = events(store, Tag.AUTH_SIGNED_IN)
    assert signed_in.principal == f"staff:{staff.username}"


def test_a_wrong_totp_code_is_refused_and_counts_towards_back_off(
    web: FhirTestClient, auth_services: Services, new_staff: NewStaff, clock: MovableClock
) -> None:
    clock.freeze()
    staff = new_staff()
    for _ in range(PAIR.free):
        response = _token(web, staff, code=staff.wrong_code())
        assert response.status_code == 400
        assert response.json() == REFUSED
    assert _token(web, staff).json() == REFUSED

    store = auth_services.audit_ledger.store
    failed = reasons(store, Tag.AUTH_SIGN_IN_FAILED)
    assert failed == ["wrong or replayed TOTP code"] * PAIR.free
    assert reasons(store, Tag.AUTH_SIGN_IN_THROTTLED) == [
        "attempt during back-off on this username from this address"
    ]


def test_a_totp_code_signs_in_once_only(
    web: FhirTestClient, auth_services: Services, new_staff: NewStaff
) -> None:
    staff = new_staff()
    assert _token(web, staff).status_code == 200
    replay = _token(web, staff, code=staff.used_code())
    earlier = _token(web, staff, code=totp.code_at(staff.totp_secret, (staff.last_step or 0) - 1))

    assert replay.status_code == earlier.status_code == 400
    assert replay.json() == earlier.json() == REFUSED
    failed = reasons(auth_services.audit_ledger.store, Tag.AUTH_SIGN_IN_FAILED)
    assert failed == ["wrong or replayed TOTP code"] * 2
    # The next step's code still works: replay protection does not lock the user out.
    assert _token(web, staff).status_code == 200


def test_a_code_typed_in_other_digits_is_refused_not_a_server_error(
    web: FhirTestClient, auth_services: Services, new_staff: NewStaff
) -> None:
    staff = new_staff()
    full_width = staff.code().translate({ord("0") + n: 0xFF10 + n for n in range(10)})
    response = _token(web, staff, code=full_width)

    assert response.status_code == 400
    assert response.json() == REFUSED
    refused(auth_services.audit_ledger.store, Tag.AUTH_SIGN_IN_FAILED, "wrong or replayed TOTP")


def test_a_suspended_account_cannot_sign_in_until_reinstated(
    web: FhirTestClient, auth_services: Services, new_staff: NewStaff
) -> None:
    staff = new_staff(Role.NURSE)
    auth_services.admin.suspend("admin:test", staff.username, reason="left the group")
    response = _token(web, staff)

    assert response.status_code == 400
    assert response.json() == REFUSED
    refused(auth_services.audit_ledger.store, Tag.AUTH_SIGN_IN_FAILED, "account suspended")
    auth_services.admin.reinstate("admin:test", staff.username)
    assert _token(web, staff).status_code == 200


def test_the_direct_grant_is_refused_when_settings_turn_it_off(services: Services) -> None:
    assert services.settings.direct_grant is False
    services.clients.add(
        APP, "App", confidential=False, scopes="user/*.cruds", redirect_uris=["https://a.example/"]
    )
    account, secret = services.accounts.add("desk1", "Desk", Role.FRONT_DESK, ["c"], PASSWORD)
    with TestClient(create_app(services.settings, services)) as client:
        config = client.get("/.well-known/smart-configuration").json()
        response = client.post(
            "/auth/token",
            data={
                "grant_type": "password",
                "client_id": APP,
                "username": account.username,
                "password": PASSWORD,
                "totp": totp.code_at(secret, int(services.clock().timestamp()) // 30),
                "scope": "user/*.cruds",
            },
        )

    assert "password" not in config["grant_types_supported"]
    assert response.status_code == 400
    assert response.json() == {
        "error": "unsupported_grant_type",
        "error_description": "this grant type is not available",
    }
    store = services.audit_ledger.store
    event = refused(store, Tag.AUTH_TOKEN_REFUSED, "password: this grant type is not available")
    assert event.outcome is Outcome.DENIED and event.client_id == APP
    # The credentials were never even checked.
    assert events(store, Tag.AUTH_SIGN_IN_FAILED) == events(store, Tag.AUTH_SIGNED_IN) == []
