"""Browser SMART apps calling from their own origin: real preflight (OPTIONS) and actual
requests, in-process, as a browser sends them (Origin, Access-Control-Request-*)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from carevault.bootstrap import Services, build_services
from carevault.config import Settings
from carevault.web.app import create_app
from tests.conftest import make_settings
from tests.integration.access.browser import REDIRECT_URI
from tests.support.client import FhirTestClient

APP_ORIGIN = "http://127.0.0.1:8765"  # the origin of REDIRECT_URI
OTHER_APP_ORIGIN = "https://other-app.example.hk"
CONFIGURED = "https://portal.example.hk"
STRANGER = "https://evil.example.com"


@pytest.fixture
def cors_services(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Services]:
    url = request.getfixturevalue("pg_schema") if backend == "postgres" else None
    settings = make_settings(
        tmp_path / "home",
        url,
        direct_grant=True,
        cors_origins=CONFIGURED,
        cors_refresh_seconds=0.001,
    )
    built = build_services(settings, create_keys=True, migrate=True)
    built.clients.add(
        "browser-app",
        "Browser app",
        confidential=False,
        scopes="user/*.rs",
        redirect_uris=[REDIRECT_URI],
    )
    built.clients.add(
        "other-app",
        "Other app",
        confidential=False,
        scopes="user/*.rs",
        redirect_uris=[f"{OTHER_APP_ORIGIN}/smart/callback"],
    )
    yield built
    built.close()


@pytest.fixture
def web(cors_services: Services) -> Iterator[FhirTestClient]:
    with FhirTestClient(create_app(cors_services.settings, cors_services)) as client:
        yield client


def _preflight(
    web: FhirTestClient, path: str, origin: str, method: str = "POST", headers: str = ""
) -> object:
    asked = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        asked["Access-Control-Request-Headers"] = headers
    return web.options(path, headers=asked)


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("path", "method", "headers"),
    [
        ("/auth/token", "POST", "content-type"),
        ("/auth/revoke", "POST", "content-type"),
        ("/fhir/Patient", "GET", "authorization"),
        ("/fhir/Observation/abc", "PUT", "authorization, content-type, if-match"),
        ("/fhir", "POST", "authorization, content-type, prefer"),
        ("/fhir/metadata", "GET", ""),
        ("/.well-known/smart-configuration", "GET", ""),
        ("/.well-known/openid-configuration", "GET", ""),
        ("/.well-known/jwks.json", "GET", ""),
    ],
)
def test_a_registered_apps_origin_gets_its_preflight_answered(
    web: FhirTestClient, path: str, method: str, headers: str
) -> None:
    response = _preflight(web, path, APP_ORIGIN, method, headers)

    assert response.status_code == 204  # type: ignore[attr-defined]
    answered = response.headers  # type: ignore[attr-defined]
    assert answered["access-control-allow-origin"] == APP_ORIGIN
    assert method in answered["access-control-allow-methods"]
    allowed_headers = {h.strip() for h in answered["access-control-allow-headers"].split(",")}
    assert {h.strip() for h in headers.split(",") if h.strip()} <= allowed_headers
    assert "access-control-allow-credentials" not in answered
    assert "Origin" in answered["vary"]


def test_every_registered_public_app_and_the_configured_origins_are_answered(
    web: FhirTestClient,
) -> None:
    for origin in (APP_ORIGIN, OTHER_APP_ORIGIN, CONFIGURED):
        response = _preflight(web, "/auth/token", origin)
        assert response.status_code == 204, origin  # type: ignore[attr-defined]
        assert response.headers["access-control-allow-origin"] == origin  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "origin", [STRANGER, "null", "http://127.0.0.1:8766", "https://127.0.0.1:8765", "*"]
)
def test_any_other_origin_gets_a_refused_preflight_and_no_cors_headers(
    web: FhirTestClient, origin: str
) -> None:
    response = _preflight(web, "/auth/token", origin, "POST", "content-type")

    assert response.status_code == 403  # type: ignore[attr-defined]
    assert not any(
        name.startswith("access-control-")
        for name in response.headers  # type: ignore[attr-defined]
    )
    actual = web.get("/fhir/metadata", headers={"Origin": origin})
    assert actual.status_code == 200
    assert "access-control-allow-origin" not in actual.headers


@pytest.mark.parametrize(
    ("method", "headers"), [("POST", "content-type, x-forward-me"), ("TRACE", ""), ("CONNECT", "")]
)
def test_a_preflight_asking_for_an_unlisted_method_or_header_is_refused(
    web: FhirTestClient, method: str, headers: str
) -> None:
    response = _preflight(web, "/fhir/Patient", APP_ORIGIN, method, headers)

    assert response.status_code == 403  # type: ignore[attr-defined]
    assert "access-control-allow-origin" not in response.headers  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "path", ["/auth/authorize", "/console/", "/admin/containment", "/audit/checkpoint"]
)
def test_pages_and_officer_tools_take_no_part_in_cors(web: FhirTestClient, path: str) -> None:
    response = _preflight(web, path, APP_ORIGIN, "GET")

    assert "access-control-allow-origin" not in response.headers  # type: ignore[attr-defined]
    assert response.status_code != 204  # type: ignore[attr-defined]


def test_actual_responses_name_the_origin_and_expose_what_apps_read(
    web: FhirTestClient,
) -> None:
    refused = web.get("/fhir/Patient", headers={"Origin": APP_ORIGIN})
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == APP_ORIGIN
    exposed = refused.headers["access-control-expose-headers"]
    assert "WWW-Authenticate" in exposed and "Location" in exposed and "ETag" in exposed
    assert "X-Request-ID" in exposed and refused.headers["x-request-id"]
    assert "Origin" in refused.headers["vary"]
    assert "access-control-allow-credentials" not in refused.headers

    token = web.post(
        "/auth/token",
        data={"grant_type": "authorization_code", "code": "nope", "client_id": "browser-app"},
        headers={"Origin": APP_ORIGIN},
    )
    assert token.status_code == 400
    assert token.headers["access-control-allow-origin"] == APP_ORIGIN
    discovery = web.get("/.well-known/smart-configuration", headers={"Origin": APP_ORIGIN})
    assert discovery.headers["access-control-allow-origin"] == APP_ORIGIN


def test_a_revoked_apps_origin_is_refused_from_then_on(
    web: FhirTestClient, cors_services: Services
) -> None:
    assert _preflight(web, "/auth/token", OTHER_APP_ORIGIN).status_code == 204  # type: ignore[attr-defined]

    cors_services.clients.revoke("other-app")

    assert _preflight(web, "/auth/token", OTHER_APP_ORIGIN).status_code == 403  # type: ignore[attr-defined]
    assert _preflight(web, "/auth/token", APP_ORIGIN).status_code == 204  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "value",
    [
        "*",
        "https://portal.example.hk/",
        "https://portal.example.hk/app",
        "ftp://x.hk",
        "https://user@portal.example.hk",
    ],
)
def test_a_configured_origin_must_be_an_origin(tmp_path: Path, value: str) -> None:
    with pytest.raises(ValueError, match="CAREVAULT_CORS_ORIGINS"):
        Settings(home=tmp_path, cors_origins=value)
