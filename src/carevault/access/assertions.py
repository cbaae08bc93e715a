"""Client authentication by signed assertion (SMART Backend Services, RFC 7523).

An integration service registered with its public keys (a JWK Set: RSA of 2,048 bits
or more for RS384, or P-384 for ES384) holds no shared secret: it signs a short-lived
JWT, and the token endpoint checks it. Nothing the service holds is stored here, so a
copy of this database or of its backups signs nothing.

What is checked, each a refusal of its own (RFC 7523 §3, SMART App Launch v2
backend-services ``client-confidential-asymmetric``):

* the header: ``alg`` RS384 or ES384 and the key it names (``kid``) of that type,
  among the client's registered keys; no ``jku`` (the keys are the registered ones,
  never fetched from where a token says);
* the signature, under that key alone;
* ``iss`` and ``sub`` are the client's id, ``aud`` is this server's token endpoint;
* ``exp`` is in the future and at most five minutes ahead; ``nbf`` and ``iat``, when
  present, are not in the future;
* ``jti`` was never presented before by that client while the assertion could still be
  used (kept until its ``exp``).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import SECP384R1, EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.exc import IntegrityError

from carevault.access.tables import client_assertion
from carevault.clock import Clock, to_micros, utc_now
from carevault.db import write_transaction

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: The signing algorithms SMART Backend Services asks every server to accept.
ALGORITHMS = ("RS384", "ES384")
#: How far ahead an assertion's ``exp`` may be (SMART: "no more than five minutes").
MAX_LIFETIME_S = 300
#: Clock difference tolerated between the service and this server.
LEEWAY_S = 30
_MIN_RSA_BITS = 2048
#: Members of a JWK that only a private key has: a set holding one was pasted by
#: mistake, and must not be stored.
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
#: The largest JWK Set accepted at registration, and the most keys in it.
_MAX_JWKS_BYTES = 64 * 1024
_MAX_KEYS = 10


class KeySetError(ValueError):
    """A JWK Set that cannot be registered; the message names the rule."""


class AssertionRefused(Exception):
    """A client assertion that does not authenticate; the message is for the audit."""


@dataclass(frozen=True)
class _Key:
    kid: str
    algorithm: str
    key: RSAPublicKey | EllipticCurvePublicKey


def checked_key_set(text: str) -> str:
    """``text`` as a JWK Set a client may be registered with, written compactly;
    KeySetError naming what is wrong."""
    if len(text.encode()) > _MAX_JWKS_BYTES:
        raise KeySetError("the key set is larger than 64 KiB")
    try:
        document = json.loads(text)
    except ValueError:
        raise KeySetError("the key set is not JSON") from None
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list) or not keys:
        raise KeySetError('a JWK Set is an object with a non-empty "keys" array')
    if len(keys) > _MAX_KEYS:
        raise KeySetError(f"at most {_MAX_KEYS} keys")
    kids: set[str] = set()
    for index, member in enumerate(keys):
        found = _parse_key(member, f"keys[{index}]")
        if found.kid in kids:
            raise KeySetError(f'keys[{index}]: "kid" {found.kid!r} is used twice')
        kids.add(found.kid)
    return json.dumps({"keys": keys}, separators=(",", ":"), sort_keys=True)


def _parse_key(member: Any, where: str) -> _Key:
    if not isinstance(member, dict):
        raise KeySetError(f"{where}: not a JSON object")
    if _PRIVATE_MEMBERS & member.keys():
        raise KeySetError(f"{where}: holds private key material; register the public key only")
    kid = member.get("kid")
    if not isinstance(kid, str) or not 1 <= len(kid) <= 200:
        raise KeySetError(f'{where}: "kid" must be a string of 1-200 characters')
    kty = member.get("kty")
    algorithm = "RS384" if kty == "RSA" else "ES384" if kty == "EC" else None
    if algorithm is None:
        raise KeySetError(f'{where}: "kty" must be RSA (RS384) or EC (ES384)')
    if member.get("alg", algorithm) != algorithm:
        raise KeySetError(f'{where}: "alg" must be {algorithm} for a {kty} key')
    if member.get("use", "sig") != "sig":
        raise KeySetError(f'{where}: "use" must be sig')
    try:
        key = jwt.PyJWK(member, algorithm).key
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError) as error:
        raise KeySetError(f"{where}: not a usable {kty} public key ({error})") from None
    if isinstance(key, RSAPublicKey):
        if key.key_size < _MIN_RSA_BITS:
            raise KeySetError(f"{where}: an RSA key must have at least {_MIN_RSA_BITS} bits")
    elif isinstance(key, EllipticCurvePublicKey):
        if not isinstance(key.curve, SECP384R1):
            raise KeySetError(f"{where}: an EC key must be on P-384 (ES384)")
    else:
        raise KeySetError(f"{where}: not a public key")
    return _Key(kid, algorithm, key)


def claimed_client(assertion: str) -> str | None:
    """The client an assertion says it is from (``iss``, unverified), for the audit."""
    try:
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    issuer = claims.get("iss")
    return issuer[:64] if isinstance(issuer, str) and issuer else None


def _number(value: Any) -> TypeGuard[float]:
    """A NumericDate: a finite number (``json`` reads NaN and Infinity, which compare
    false with everything and passed as neither expired nor too far ahead)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class ClientAssertions:
    """Checks client assertions against registered key sets and remembers each ``jti``
    until its assertion expires."""

    def __init__(self, engine: Engine, clock: Clock = utc_now) -> None:
        self.engine = engine
        self.clock = clock

    def verify(
        self, assertion: str, client_id: str, key_set: str | None, audience: str | None
    ) -> None:
        """Return if ``assertion`` authenticates ``client_id`` (registered with
        ``key_set``) to ``audience`` (the token endpoint's URL); AssertionRefused
        otherwise, having used up nothing."""
        if key_set is None:
            raise AssertionRefused("the client is not registered with keys")
        if not audience:
            raise AssertionRefused("no audience to check the assertion against")
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            raise AssertionRefused("the assertion is not a signed JWT") from None
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise AssertionRefused(f"alg must be one of {', '.join(ALGORITHMS)}")
        if "jku" in header or "jwk" in header or "x5u" in header:
            raise AssertionRefused("keys are the registered ones: jku, jwk and x5u are refused")
        key = self._key(key_set, header.get("kid"), algorithm)
        try:
            claims = jwt.decode(
                assertion,
                key.key,
                algorithms=[key.algorithm],
                audience=audience,
                issuer=client_id,
                options={
                    "require": ["iss", "sub", "aud", "exp", "jti"],
                    # Checked below on this server's clock (a test's too).
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidSignatureError:
            raise AssertionRefused("the signature does not verify") from None
        except jwt.PyJWTError as error:
            raise AssertionRefused(f"the assertion is refused: {error}") from None
        self._check_claims(claims, client_id)
        self._use(client_id, claims["jti"], claims["exp"])

    @staticmethod
    def _key(key_set: str, kid: Any, algorithm: str) -> _Key:
        if not isinstance(kid, str):
            raise AssertionRefused("the header names no kid")
        for index, member in enumerate(json.loads(key_set)["keys"]):
            if member.get("kid") == kid:
                try:
                    found = _parse_key(member, f"keys[{index}]")
                except KeySetError as error:
                    raise AssertionRefused(str(error)) from None
                if found.algorithm != algorithm:
                    raise AssertionRefused(f"key {kid!r} signs {found.algorithm}, not {algorithm}")
                return found
        raise AssertionRefused("no registered key has that kid")

    def _check_claims(self, claims: Mapping[str, Any], client_id: str) -> None:
        if claims.get("sub") != client_id:
            raise AssertionRefused("sub must be the client's id")
        now = to_micros(self.clock()) / 1_000_000
        expires = claims.get("exp")
        if not _number(expires):
            raise AssertionRefused("exp must be a finite number")
        if expires <= now - LEEWAY_S:
            raise AssertionRefused("the assertion has expired")
        if expires > now + MAX_LIFETIME_S + LEEWAY_S:
            raise AssertionRefused("exp is more than five minutes ahead")
        for name in ("nbf", "iat"):
            value = claims.get(name)
            if value is None:
                continue
            if not _number(value):
                raise AssertionRefused(f"{name} must be a finite number")
            if value > now + LEEWAY_S:
                raise AssertionRefused(f"{name} is in the future")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not 1 <= len(jti) <= 1024:
            raise AssertionRefused("jti must be a string of 1-1024 characters")

    def _use(self, client_id: str, jti: str, expires_s: float) -> None:
        """Remember ``jti`` for as long as its assertion is accepted (``exp`` and the
        leeway, rounded up: a fractional ``exp`` cut down left a second in which the
        same assertion passed again); AssertionRefused if it was used."""
        digest = hashlib.sha256(jti.encode()).hexdigest()
        now_us = to_micros(self.clock())
        keep_until = (math.ceil(expires_s) + LEEWAY_S + 1) * 1_000_000
        table = client_assertion.c
        try:
            with write_transaction(self.engine) as connection:
                connection.execute(delete(client_assertion).where(table.expires_us < now_us))
                seen = connection.execute(
                    select(table.jti_hash).where(
                        table.client_id == client_id, table.jti_hash == digest
                    )
                ).first()
                if seen is not None:
                    raise AssertionRefused("the assertion was used already (jti replayed)")
                connection.execute(
                    insert(client_assertion).values(
                        client_id=client_id, jti_hash=digest, expires_us=keep_until
                    )
                )
        except IntegrityError:
            # The same assertion presented twice at once: the other one won.
            raise AssertionRefused("the assertion was used already (jti replayed)") from None
