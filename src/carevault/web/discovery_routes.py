"""Discovery: the SMART configuration, the OpenID Provider configuration and its JWKS.

What they list is what the server does (each capability is tested): a client that
reads them and follows them gets a working sign-in, and nothing here is promised that
the server would then refuse.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from carevault.access.assertions import ALGORITHMS as ASSERTION_ALGORITHMS
from carevault.access.identity import ALGORITHM
from carevault.web.auth_routes import base_url, endpoints
from carevault.web.security import ServicesDep

#: How clients authenticate at the token endpoint: a secret (HTTP Basic or form), a
#: signed assertion (SMART Backend Services, ``access/assertions.py``), or none (a
#: public app, PKCE).
_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]

router = APIRouter()

#: Discovery documents change only with a deployment: apps may cache them for an hour.
_CACHE = {"Cache-Control": "public, max-age=3600"}
SCOPES = [
    "openid",
    "fhirUser",
    "profile",
    "launch/patient",
    "offline_access",
    "online_access",
    "patient/*.rs",
    "user/*.cruds",
    "system/*.cruds",
]


def _grants(svc: Any) -> list[str]:
    grants = ["authorization_code", "client_credentials", "refresh_token"]
    if svc.settings.direct_grant:
        grants.append("password")
    return grants


@router.get("/.well-known/smart-configuration")
@router.get("/fhir/.well-known/smart-configuration")
async def smart_configuration(request: Request, svc: ServicesDep) -> JSONResponse:
    base = base_url(request, svc)
    urls = endpoints(base)
    return JSONResponse(
        {
            "issuer": base,
            "jwks_uri": urls["jwks"],
            "authorization_endpoint": urls["authorize"],
            "token_endpoint": urls["token"],
            "revocation_endpoint": urls["revoke"],
            "token_endpoint_auth_methods_supported": _AUTH_METHODS,
            "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
            "grant_types_supported": _grants(svc),
            "scopes_supported": SCOPES,
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "capabilities": [
                "launch-standalone",
                "client-public",
                "client-confidential-symmetric",
                "client-confidential-asymmetric",
                "context-standalone-patient",
                "sso-openid-connect",
                "permission-patient",
                "permission-user",
                "permission-offline",
                "permission-online",
                "permission-v1",
                "permission-v2",
            ],
        },
        headers=_CACHE,
    )


@router.get("/.well-known/openid-configuration")
async def openid_configuration(request: Request, svc: ServicesDep) -> JSONResponse:
    base = base_url(request, svc)
    urls = endpoints(base)
    return JSONResponse(
        {
            "issuer": base,
            "authorization_endpoint": urls["authorize"],
            "token_endpoint": urls["token"],
            "revocation_endpoint": urls["revoke"],
            "jwks_uri": urls["jwks"],
            "scopes_supported": ["openid", "fhirUser", "profile", "offline_access"],
            "response_types_supported": ["code"],
            "grant_types_supported": _grants(svc),
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [ALGORITHM],
            "token_endpoint_auth_methods_supported": _AUTH_METHODS,
            "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
            "claims_supported": [
                "iss",
                "sub",
                "aud",
                "azp",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "amr",
                "fhirUser",
                "name",
            ],
            "code_challenge_methods_supported": ["S256"],
            "request_parameter_supported": False,
            "claims_parameter_supported": False,
        },
        headers=_CACHE,
    )


@router.get("/.well-known/jwks.json")
async def jwks(svc: ServicesDep) -> JSONResponse:
    assert svc.id_tokens is not None  # noqa: S101 - built by build_services
    return JSONResponse(svc.id_tokens.jwks(), headers=_CACHE, media_type="application/jwk-set+json")
