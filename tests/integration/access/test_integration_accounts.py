"""Integration accounts: only through the client credentials of a confidential app bound
to them, whose clinics and scopes narrow what they reach; never through a user app.

Before: an integration account signed in through the public demo app with password and
TOTP, and read every patient's HKID and diagnoses with no care relationship.
"""

from __future__ import annotations

from typing import Any

import pytest

from carevault.access.clients import ClientError
from carevault.bootstrap import Services
from carevault.domain.roles import Role
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate import Caller
from carevault.ledger.events import Tag
from carevault.vault.writer import Put
from tests.integration.access.audit_log import events, reasons, refused
from tests.integration.access.browser import (
    AuthRequest,
    assert_refused_within,
    basic,
    bearer,
    read_login_page,
    submit_login,
)
from tests.integration.access.conftest import APP, CLINIC, FHIR_BASE, NewStaff, Staff
from tests.integration.access.test_sign_in import REFUSED
from tests.support.client import FhirTestClient

OTHER_CLINIC = "clinic-b"
HKID = "http://carevault.hk/sid/hkid"
FEED = "lab-feed"
SIGN_IN_REFUSED = "integration accounts sign in only with client credentials of their bound app"
RECORDS: list[dict[str, Any]] = [
    {"resourceType": "Organization", "id": CLINIC, "name": "Clinic A"},
    {"resourceType": "Organization", "id": OTHER_CLINIC, "name": "Clinic B"},
    *(
        {
            "resourceType": "Patient",
            "id": f"pat-{clinic}",
            "identifier": [{"system": HKID, "value": hkid}],
            "name": [{"family": "Chan", "given": ["Siu Ming"]}],
            "managingOrganization": {"reference": f"Organization/{clinic}"},
        }
        for clinic, hkid in ((CLINIC, "A1234563"), (OTHER_CLINIC, "C6789014"))
    ),
    {
        "resourceType": "Condition",
        "id": "diagnosis-b",
        "subject": {"reference": f"Patient/pat-{OTHER_CLINIC}"},
        "code": {"text": "Type 2 diabetes mellitus"},
    },
]


@pytest.fixture
def service_account(auth_services: Services, new_staff: NewStaff) -> Staff:
    """An integration account of both clinics, and their records."""
    auth_services.gate.write(
        Caller(principal="system:test", purpose="HOPERAT"),
        [Put(RESOURCE_TYPES[item["resourceType"]], item["id"], item) for item in RECORDS],
    )
    return new_staff(Role.INTEGRATION, [CLINIC, OTHER_CLINIC])


def _bound_feed(services: Services, account: Staff) -> str:
    _, secret = services.admin.add_client(
        "admin:test",
        FEED,
        "Laboratory feed",
        confidential=True,
        scopes="system/Patient.rs system/Condition.rs",
        clinic_ids=[CLINIC],
        account=account.username,
    )
    assert secret
    return secret


def _feed_token(web: FhirTestClient, secret: str) -> Any:
    return web.post(
        "/auth/token",
        data={"grant_type": "client_credentials", "scope": "system/*.cruds"},
        headers=basic(FEED, secret),
    )


def test_an_integration_account_cannot_sign_in_through_a_public_app(
    web: FhirTestClient, auth_services: Services, service_account: Staff
) -> None:
    direct = web.post("/auth/token", data=service_account.grant())
    page = submit_login(
        web,
        AuthRequest(APP, FHIR_BASE),
        service_account.username,
        service_account.password,
        service_account.code(),
    )

    assert direct.status_code == 400
    assert direct.json() == REFUSED
    assert page.status_code == 401 and "location" not in page.headers
    assert "sign-in failed" in read_login_page(page.text).alert
    store = auth_services.audit_ledger.store
    failed = [event.reason for event in events(store, Tag.AUTH_SIGN_IN_FAILED)]
    assert failed == [SIGN_IN_REFUSED] * 2
    assert events(store, Tag.AUTH_SIGNED_IN) == []


def test_a_session_it_opened_in_a_user_app_before_no_longer_works(
    web: FhirTestClient, auth_services: Services, service_account: Staff
) -> None:
    earlier = auth_services.sessions.open(
        subject=service_account.account_id,
        account_id=service_account.account_id,
        client_id=APP,
        scope="user/*.cruds",
        with_refresh=False,
        source_address="203.0.113.66",
        user_agent="attacker",
    )

    response = web.get(f"/fhir/Patient/pat-{OTHER_CLINIC}", headers=bearer(earlier.access_token))

    assert response.status_code == 401
    refused(
        auth_services.audit_ledger.store,
        Tag.AUTH_TOKEN_REFUSED,
        "integration account signed in through a user app",
    )


def test_a_bound_app_reaches_only_the_clinics_both_allow_and_only_its_scopes(
    web: FhirTestClient, auth_services: Services, service_account: Staff
) -> None:
    issued = _feed_token(web, _bound_feed(auth_services, service_account))
    assert issued.status_code == 200
    token = bearer(issued.json()["access_token"])

    own = web.get(f"/fhir/Patient/pat-{CLINIC}", headers=token)
    other = web.get(f"/fhir/Patient/pat-{OTHER_CLINIC}", headers=token)
    diagnoses = web.get("/fhir/Condition", params={"patient": f"pat-{OTHER_CLINIC}"}, headers=token)
    write = web.post_json("/fhir/Condition", RECORDS[-1], **token)

    assert own.status_code == 200
    assert own.json()["identifier"][0]["value"] == "A1234563"
    assert other.status_code == 403
    assert diagnoses.status_code == 200 and diagnoses.json()["total"] == 0
    assert write.status_code == 403
    store = auth_services.audit_ledger.store
    (grant,) = [e for e in events(store, Tag.AUTH_TOKEN_ISSUED) if e.client_id == FEED]
    assert grant.detail == {
        "scope": "system/Patient.rs system/Condition.rs",
        "clinics": [CLINIC],
        "account": service_account.account_id,
    }
    refused(store, Tag.FHIR_READ, "the patient is not at any of your clinics")
    refused(store, Tag.FHIR_CREATE, "the token's scopes do not allow 'c' on Condition")


def test_suspending_the_integration_account_stops_its_app(
    web: FhirTestClient, auth_services: Services, service_account: Staff
) -> None:
    secret = _bound_feed(auth_services, service_account)
    token = _feed_token(web, secret).json()["access_token"]
    assert web.get(f"/fhir/Patient/pat-{CLINIC}", headers=bearer(token)).status_code == 200

    auth_services.admin.suspend("admin:test", service_account.username, reason="feed retired")

    assert_refused_within(web, token)
    again = _feed_token(web, secret)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert reasons(auth_services.audit_ledger.store, Tag.AUTH_TOKEN_REFUSED) == [
        "the app's integration account is suspended",
        "client_credentials: the app's integration account is suspended or missing",
    ]


def test_an_app_is_bound_only_to_an_integration_account_within_its_clinics(
    auth_services: Services, service_account: Staff, new_staff: NewStaff
) -> None:
    doctor = new_staff(Role.PHYSICIAN)
    narrow = new_staff(Role.INTEGRATION, [CLINIC])

    def add(account: str, clinics: list[str], confidential: bool = True) -> None:
        auth_services.admin.add_client(
            "admin:test",
            "feed-x",
            "Feed",
            confidential=confidential,
            scopes="system/Patient.rs" if confidential else "user/Patient.rs",
            redirect_uris=[] if confidential else ["https://app.example/cb"],
            clinic_ids=clinics,
            account=account,
        )

    with pytest.raises(ClientError, match="is not an integration account"):
        add(doctor.username, [CLINIC])
    with pytest.raises(ClientError, match="must be among"):
        add(narrow.username, [CLINIC, OTHER_CLINIC])
    with pytest.raises(ClientError, match="only a confidential app"):
        add(service_account.username, [CLINIC], confidential=False)
    assert auth_services.clients.get("feed-x") is None
