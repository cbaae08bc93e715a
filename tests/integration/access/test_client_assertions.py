"""Integration apps that sign in with a signed assertion (SMART Backend Services,
``private_key_jwt``) instead of a secret: the assertions are made by PyJWT, as a
third-party client library makes them, and sent to the token endpoint over HTTP.

Every refusal is a 401 ``invalid_client`` with the same words for the client, and its
own reason in the ledger."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from typer.testing import CliRunner

from carevault.access.assertions import AssertionRefused
from carevault.access.clients import ClientError
from carevault.bootstrap import Services
from carevault.cli import app as cli_app
from carevault.ledger.events import Tag
from carevault.web.app import create_app
from tests.integration.access.audit_log import events, refused
from tests.integration.access.browser import basic, bearer
from tests.integration.access.conftest import BASE, CLINIC, MovableClock
from tests.support.client import FhirTestClient

FEED = "bulk-feed"
TOKEN_URL = f"{BASE}/auth/token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


def _public_jwk(key: Any, kid: str) -> dict[str, Any]:
    algorithm = jwt.algorithms.RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else None
    if algorithm is not None:
        made = json.loads(algorithm.to_jwk(key.public_key()))
    else:
        made = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    return {**made, "kid": kid}


@pytest.fixture
def key_set(rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    return {"keys": [_public_jwk(rsa_key, "rsa-1"), _public_jwk(ec_key, "ec-1")]}


@pytest.fixture
def feed(auth_services: Services, key_set: dict[str, Any]) -> None:
    _, secret = auth_services.admin.add_client(
        "admin:test",
        FEED,
        "Bulk feed",
        confidential=True,
        scopes="system/Observation.rs system/Patient.rs",
        clinic_ids=[CLINIC],
        jwks=json.dumps(key_set),
    )
    assert secret is None  # a client registered with keys holds no secret


Sign = Callable[..., str]


@pytest.fixture
def sign(
    rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey, clock: MovableClock
) -> Sign:
    def make(
        *,
        algorithm: str = "RS384",
        key: Any = None,
        kid: str | None = None,
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        now = int(clock().timestamp())
        body = {
            "iss": FEED,
            "sub": FEED,
            "aud": TOKEN_URL,
            "exp": now + 240,
            "jti": str(uuid.uuid4()),
            **claims,
        }
        body = {name: value for name, value in body.items() if value is not None}
        signing = key if key is not None else rsa_key if algorithm.startswith("RS") else ec_key
        default_kid = "rsa-1" if algorithm.startswith("RS") else "ec-1"
        header = {"kid": kid or default_kid, **(headers or {})}
        return jwt.encode(body, signing, algorithm=algorithm, headers=header)

    return make


def _token(web: FhirTestClient, assertion: str, **extra: str) -> Any:
    return web.post(
        "/auth/token",
        data={
            "grant_type": "client_credentials",
            "scope": "system/Observation.rs",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
            **extra,
        },
    )


@pytest.mark.parametrize("algorithm", ["RS384", "ES384"])
@pytest.mark.usefixtures("feed")
def test_a_service_signs_in_with_a_signed_assertion(
    algorithm: str, web: FhirTestClient, auth_services: Services, sign: Sign
) -> None:
    response = _token(web, sign(algorithm=algorithm))

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scope"] == "system/Observation.rs" and "refresh_token" not in body
    assert web.get("/fhir/Observation", headers=bearer(body["access_token"])).status_code == 200
    [issued] = events(auth_services.audit_ledger.store, Tag.AUTH_TOKEN_ISSUED)
    assert issued.client_id == FEED


@pytest.mark.usefixtures("feed")
def test_an_assertion_is_used_once(
    web: FhirTestClient, auth_services: Services, sign: Sign
) -> None:
    assertion = sign()
    assert _token(web, assertion).status_code == 200
    again = _token(web, assertion)
    assert again.status_code == 401
    refused(auth_services.audit_ledger.store, Tag.AUTH_TOKEN_REFUSED, "jti replayed")


def _hmac_with_the_public_key(key_set: dict[str, Any]) -> str:
    """The classic confusion: HS384 keyed with the server's copy of the public key."""
    secret = json.dumps(key_set["keys"][0]).encode()
    claims = {"iss": FEED, "sub": FEED, "aud": TOKEN_URL, "exp": 2**40, "jti": "x"}
    # By hand: PyJWT will not key an HMAC with something that looks like a JWK.
    parts = [
        _b64({"alg": "HS384", "typ": "JWT", "kid": "rsa-1"}),
        _b64(claims),
    ]
    mac = hmac.new(secret, ".".join(parts).encode(), hashlib.sha384).digest()
    return ".".join([*parts, base64.urlsafe_b64encode(mac).rstrip(b"=").decode()])


def _b64(value: dict[str, Any]) -> str:
    raw = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unsigned() -> str:
    claims = {"iss": FEED, "sub": FEED, "aud": TOKEN_URL, "exp": 2**40, "jti": "y"}
    return jwt.encode(claims, None, algorithm="none", headers={"kid": "rsa-1"})


#: (how the assertion is made, the reason the ledger records).
BAD: dict[str, tuple[Callable[[Sign, dict[str, Any], int], str], str]] = {
    "expired": (lambda s, _, now: s(exp=now - 120), "has expired"),
    "an hour ahead": (lambda s, _, now: s(exp=now + 3600), "more than five minutes ahead"),
    "another audience": (lambda s, _, now: s(aud="https://elsewhere/token"), "Audience"),
    "another subject": (lambda s, _, now: s(sub="someone-else"), "sub must be"),
    "no jti": (lambda s, _, now: s(jti=None), "jti"),
    "no exp": (lambda s, _, now: s(exp=None), "exp"),
    "issued in the future": (lambda s, _, now: s(iat=now + 600), "iat is in the future"),
    "unknown kid": (lambda s, _, now: s(kid="rsa-9"), "no registered key has that kid"),
    "RS256": (lambda s, _, now: s(algorithm="RS256"), "alg must be one of"),
    "RSA key named for ES384": (lambda s, _, now: s(algorithm="ES384", kid="rsa-1"), "signs RS384"),
    "HS384 with the public key": (lambda _s, keys, _n: _hmac_with_the_public_key(keys), "alg"),
    "unsigned": (lambda _s, _k, _n: _unsigned(), "alg"),
    "another key, same kid": (
        lambda s, _, now: s(key=rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        "signature does not verify",
    ),
    "keys from a URL": (
        lambda s, _, now: s(headers={"jku": "https://attacker.example/jwks"}),
        "jku, jwk and x5u are refused",
    ),
    "not a JWT": (lambda _s, _k, _n: "not.a.jwt", "unknown or revoked client"),
}


@pytest.mark.parametrize("case", BAD)
@pytest.mark.usefixtures("feed")
def test_a_bad_assertion_is_refused_with_its_reason_recorded(
    case: str,
    web: FhirTestClient,
    auth_services: Services,
    sign: Sign,
    key_set: dict[str, Any],
    clock: MovableClock,
) -> None:
    make, reason = BAD[case]
    response = _token(web, make(sign, key_set, int(clock().timestamp())))

    assert response.status_code == 401, response.text
    assert response.json() == {
        "error": "invalid_client",
        "error_description": "client authentication failed",
    }
    refused(auth_services.audit_ledger.store, Tag.AUTH_TOKEN_REFUSED, reason)
    assert events(auth_services.audit_ledger.store, Tag.AUTH_TOKEN_ISSUED) == []


@pytest.mark.usefixtures("feed")
def test_one_way_of_authenticating_at_a_time(web: FhirTestClient, sign: Sign) -> None:
    with_secret = _token(web, sign(), client_secret="anything")
    assert with_secret.status_code == 400
    assert with_secret.json()["error"] == "invalid_request"
    other_id = _token(web, sign(), client_id="lab-feed")
    wrong_type = web.post(
        "/auth/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:example:other",
            "client_assertion": sign(),
        },
    )
    # Refused with the words of every other refusal (the review found these two told
    # which check failed).
    for refusal in (other_id, wrong_type):
        assert refusal.status_code == 401
        assert refusal.json()["error_description"] == "client authentication failed"
    # A client registered with keys has no secret to guess.
    guessed = web.post(
        "/auth/token",
        data={"grant_type": "client_credentials", "scope": "system/Observation.rs"},
        headers=basic(FEED, "-"),
    )
    assert guessed.status_code == 401


@pytest.mark.usefixtures("feed")
def test_a_revoked_service_signs_in_no_more(
    web: FhirTestClient, auth_services: Services, sign: Sign
) -> None:
    auth_services.admin.revoke_client("admin:test", FEED)
    assert _token(web, sign()).status_code == 401
    refused(auth_services.audit_ledger.store, Tag.AUTH_TOKEN_REFUSED, "unknown or revoked")


@pytest.mark.usefixtures("feed")
def test_a_secret_client_cannot_sign_in_with_an_assertion(
    web: FhirTestClient, auth_services: Services, sign: Sign
) -> None:
    auth_services.admin.add_client(
        "admin:test",
        "lab-feed",
        "Lab",
        confidential=True,
        scopes="system/Observation.rs",
        clinic_ids=[CLINIC],
    )
    assertion = sign(iss="lab-feed", sub="lab-feed")
    assert _token(web, assertion).status_code == 401
    refused(auth_services.audit_ledger.store, Tag.AUTH_TOKEN_REFUSED, "not registered with keys")


def _add(services: Services, jwks: Any, *, confidential: bool = True) -> None:
    services.admin.add_client(
        "admin:test",
        "keyed-feed",
        "Keyed",
        confidential=confidential,
        scopes="system/Observation.rs" if confidential else "user/*.rs",
        redirect_uris=[] if confidential else ["https://app.example/cb"],
        clinic_ids=[CLINIC] if confidential else [],
        jwks=jwks if isinstance(jwks, str) else json.dumps(jwks),
    )


def test_a_key_set_that_cannot_be_trusted_is_not_registered(
    auth_services: Services, rsa_key: rsa.RSAPrivateKey
) -> None:
    public = _public_jwk(rsa_key, "k1")
    private = {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key)), "kid": "k1"}
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - refused
    small = _public_jwk(weak, "k2")
    p256 = _public_jwk(ec.generate_private_key(ec.SECP256R1()), "k3")
    refusals = {
        "holds private key material": {"keys": [private]},
        "at least 2048 bits": {"keys": [small]},
        "P-384": {"keys": [p256]},
        "used twice": {"keys": [public, public]},
        '"kid"': {"keys": [{key: value for key, value in public.items() if key != "kid"}]},
        '"kty"': {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "c2VjcmV0", "kid": "s"}]},
        '"alg"': {"keys": [{**public, "alg": "RS256"}]},
        "non-empty": {"keys": []},
        "not JSON": "{nope",
    }
    for words, jwks in refusals.items():
        with pytest.raises(ClientError, match=words):
            _add(auth_services, jwks)
    with pytest.raises(ClientError, match="only a confidential app"):
        _add(auth_services, {"keys": [public]}, confidential=False)
    assert auth_services.clients.get("keyed-feed") is None


def test_discovery_says_services_may_sign_in_with_keys(web: FhirTestClient) -> None:
    smart = web.get("/.well-known/smart-configuration").json()
    assert "private_key_jwt" in smart["token_endpoint_auth_methods_supported"]
    assert smart["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert "client-confidential-asymmetric" in smart["capabilities"]
    assert smart["token_endpoint"] == TOKEN_URL


# The CLI opens the home's own database: the home's SQLite.
@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_cli_registers_a_service_by_its_public_keys(
    auth_services: Services, key_set: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "feed.jwks.json"
    path.write_text(json.dumps(key_set))
    result = CliRunner().invoke(
        cli_app,
        [
            "client",
            "add",
            "cli-feed",
            "--name",
            "CLI feed",
            "--scope",
            "system/Observation.rs",
            "--confidential",
            "--clinic",
            CLINIC,
            "--jwks",
            str(path),
            "--home",
            str(auth_services.settings.home),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "secret" not in result.output and "signs assertions" in result.output
    added = auth_services.clients.get("cli-feed")
    assert added is not None and added.jwks is not None
    [record] = [
        event
        for event in events(auth_services.audit_ledger.store, Tag.ADMIN_CLIENT_ADDED)
        if event.reason == "cli-feed"
    ]
    assert record.detail["keys"] == ["rsa-1", "ec-1"]


# From the security review of the first version (each failed on it).


def _rs384_raw(key: rsa.RSAPrivateKey, header: dict[str, Any], payload: str) -> str:
    """An RS384 JWT whose payload is exactly ``payload`` (NaN is JSON to Python)."""
    signing_input = (
        f"{_b64(header)}.{base64.urlsafe_b64encode(payload.encode()).rstrip(b'=').decode()}"
    )
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA384())
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


@pytest.mark.usefixtures("feed")
def test_a_fractional_exp_leaves_no_second_for_a_replay(
    web: FhirTestClient, sign: Sign, clock: MovableClock
) -> None:
    """The jti was kept until int(exp) + 30 s while the assertion passed until exp + 30
    s: with exp = N.9 the same assertion was accepted again for 0.9 s."""
    clock.freeze()
    start = clock().timestamp()
    whole = int(start)
    assertion = sign(exp=whole + 240.9)
    assert _token(web, assertion).status_code == 200
    assert _token(web, assertion).status_code == 401
    clock.advance(whole + 270.5 - start)
    replay = _token(web, assertion)
    assert replay.status_code == 401, replay.text


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.usefixtures("feed")
def test_an_exp_that_is_no_finite_number_is_refused(
    value: str, auth_services: Services, rsa_key: rsa.RSAPrivateKey
) -> None:
    """NaN compared false with both bounds and passed, then int(NaN) was a 500."""
    claims = f'"iss":"{FEED}","sub":"{FEED}","aud":"{TOKEN_URL}","jti":"{uuid.uuid4()}"'
    payload = f'{{{claims},"exp":{value}}}'
    assertion = _rs384_raw(rsa_key, {"alg": "RS384", "typ": "JWT", "kid": "rsa-1"}, payload)
    app = create_app(auth_services.settings, auth_services)
    with FhirTestClient(app, raise_server_exceptions=False) as client:
        response = _token(client, assertion)
    assert response.status_code == 401, response.text
    refused(auth_services.audit_ledger.store, Tag.AUTH_TOKEN_REFUSED, "exp must be a finite")


@pytest.mark.usefixtures("feed")
def test_a_refused_client_at_revoke_is_recorded(
    web: FhirTestClient, auth_services: Services, sign: Sign
) -> None:
    forged = sign(key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    response = web.post(
        "/auth/revoke",
        data={
            "token": "whatever",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": forged,
        },
    )
    assert response.status_code == 401
    refused(auth_services.audit_ledger.store, Tag.AUTH_TOKEN_REFUSED, "revoke: the signature")


@pytest.mark.usefixtures("feed")
def test_one_assertion_presented_at_once_by_many_is_accepted_once(
    auth_services: Services, sign: Sign
) -> None:
    assertion = sign()
    found = auth_services.clients.get(FEED)
    assert found is not None
    workers = 8
    barrier = threading.Barrier(workers)
    results: list[str] = []

    def present() -> None:
        barrier.wait()
        try:
            auth_services.oauth.assertions.verify(assertion, FEED, found.jwks, TOKEN_URL)
            results.append("ok")
        except AssertionRefused as error:
            results.append(str(error))

    threads = [threading.Thread(target=present) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count("ok") == 1, results
    assert all(result == "ok" or "replayed" in result for result in results), results
