"""A SMART Backend Services client as an integration team makes one: a key pair of its
own, registered with its public key set, and a token asked for with an RS384 client
assertion made with PyJWT, as the spec's worked example makes it (integrator rounds 60
and 64)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from carevault.bootstrap import Services
from tests.integration.access.conftest import CLINIC, MovableClock
from tests.support.client import FhirTestClient

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def register(
    services: Services,
    private_key: rsa.RSAPrivateKey,
    client_id: str,
    name: str,
    scopes: str,
    kid: str,
) -> None:
    """``client_id`` registered at the test clinic with ``private_key``'s public key as
    ``kid``, granted ``scopes``."""
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private_key.public_key()))
    key_set = {"keys": [{**public, "kid": kid, "alg": "RS384", "use": "sig"}]}
    services.admin.add_client(
        "admin:test",
        client_id,
        name,
        confidential=True,
        scopes=scopes,
        clinic_ids=[CLINIC],
        jwks=json.dumps(key_set),
    )


def token(
    web: FhirTestClient,
    private_key: rsa.RSAPrivateKey,
    clock: MovableClock,
    client_id: str,
    kid: str,
    scope: str,
    discovery: str = "/.well-known/smart-configuration",
) -> Any:
    """Backend Services' "Obtaining an Access Token": the endpoint from ``discovery``
    (the root's, or the FHIR base's), an RS384 assertion, the four form parameters."""
    token_url = web.get(discovery).json()["token_endpoint"]
    now = int(clock().timestamp())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "exp": now + 300,
        "jti": str(uuid.uuid4()),
    }
    assertion = jwt.encode(
        claims, private_key, algorithm="RS384", headers={"kid": kid, "typ": "JWT"}
    )
    return web.post(
        token_url.removeprefix("http://testserver"),
        data={
            "grant_type": "client_credentials",
            "scope": scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        },
    )
