"""Client apps: user-facing apps (public, PKCE) and integration services (confidential).

An integration service signs in only with the client-credentials grant of a
confidential app. Such an app may be bound to an integration account: it then acts
for that account, reaches only the clinics both are limited to, and stops when the
account is suspended. Integration accounts cannot sign in through user apps at all.

An app's revocation is written, inside its transaction, to the register beside the
keyring too (``keys.revocations``): a row saved before the revocation and written back
after, seal and all, got tokens again (review of round 70). An app the register names as
revoked is refused whatever its row says, and told once (``written_back``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Engine, insert, select, update

from carevault.access import scopes as smart
from carevault.access.assertions import KeySetError, checked_key_set
from carevault.access.tables import client_app
from carevault.clock import Clock, to_micros, utc_now
from carevault.config import browser_origin
from carevault.db import read_transaction, write_transaction
from carevault.keys.anchors import seal_fields, seal_matches, seal_unsealed
from carevault.keys.revocations import WRITTEN_BACK_AFTER_US, RevocationRegister, client_line

log = logging.getLogger("carevault.access")

_CLIENT_ID = re.compile(r"^[a-z0-9][a-z0-9\-_.]{2,63}$")


class ClientError(ValueError):
    pass


#: Why a client app whose row does not match its seal is refused (a session's state).
CLIENT_ALTERED = "client app record altered in the database"

#: The columns a client app's seal covers, in order: all but ``created_us`` and the seal.
SEALED_COLUMNS = (
    "client_id",
    "name",
    "kind",
    "secret_hash",
    "redirect_uris",
    "scopes",
    "clinic_ids",
    "account_id",
    "jwks",
)


def client_seal(key: bytes, columns: Mapping[Any, Any], revoked: bool) -> bytes:
    """The seal of a ``client_app`` row whose ``SEALED_COLUMNS`` are ``columns`` (as
    stored), and whether it is revoked."""
    fields: list[object] = [*(columns[name] for name in SEALED_COLUMNS), revoked]
    return seal_fields(key, "carevault-client/1", fields)


#: A session's row (``Sessions._row``) names the app's columns so.
SESSION_LABELS = {name: f"client_{name}" for name in SEALED_COLUMNS} | {
    "client_id": "client_id",
    "clinic_ids": "client_clinics",
    "account_id": "bound_account_id",
}


@dataclass(frozen=True)
class ClientApp:
    client_id: str
    name: str
    confidential: bool
    redirect_uris: tuple[str, ...]
    scopes: smart.Scopes
    clinic_ids: frozenset[str]
    revoked: bool
    account_id: str | None = None
    #: The public JWK Set of a confidential client that authenticates by signed
    #: assertion (``access/assertions.py``) rather than by secret.
    jwks: str | None = None


def redirect_uri_refusal(uri: str) -> str | None:
    """Why ``uri`` may not be registered as a redirect URI, or None: https to a host, or
    plain http to a loopback address (development), as a whole URL. A prefix test took
    ``http://localhost.evil.example/cb`` and ``http://127.0.0.1@evil.example/cb`` for
    loopback, where a code would travel in the clear to another host; a fragment is
    refused as RFC 6749 (3.1.2) asks, user info because it hides the real host."""
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return "a redirect URI must be a URL"
    if "#" in uri:
        return "a redirect URI has no fragment"
    if "@" in parts.netloc:
        return "a redirect URI names no user"
    host = parts.hostname
    if host and (parts.scheme == "https" or (parts.scheme == "http" and _loopback(host))):
        return None
    return "redirect URIs must be https (or http on loopback for development)"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def _hash_secret(secret: str) -> str:
    # Client secrets are 256-bit random values, so a fast hash is enough to store them.
    return hashlib.sha256(secret.encode()).hexdigest()


def _client(row: object) -> ClientApp:
    m = row._mapping  # type: ignore[attr-defined]
    contexts = frozenset({"system"} if m["kind"] == "confidential" else {"user", "patient"})
    return ClientApp(
        client_id=m["client_id"],
        name=m["name"],
        confidential=m["kind"] == "confidential",
        redirect_uris=tuple(json.loads(m["redirect_uris"])),
        scopes=smart.parse(m["scopes"], allowed_contexts=contexts),
        clinic_ids=frozenset(filter(None, m["clinic_ids"].split(","))),
        revoked=m["revoked_us"] is not None,
        account_id=m["account_id"],
        jwks=m["jwks"],
    )


class ClientApps:
    def __init__(self, engine: Engine, clock: Clock = utc_now) -> None:
        self.engine = engine
        self.clock = clock
        #: The key apps are sealed with (None with encryption off) and whether every app
        #: has been sealed, so that one without a seal was stripped of it; whom to tell,
        #: once a process, of an app whose row does not match. The composition root sets
        #: them (``keys.anchors``).
        self.seal_key: bytes | None = None
        self.all_sealed = False
        self.altered: Callable[[str], None] | None = None
        self._told: set[str] = set()
        #: The register of revocations beside the keyring (``keys.revocations``), whom to
        #: tell of a row written back over a revocation it holds, and of the register not
        #: written or not read; set by the composition root where rows are sealed.
        self.register: RevocationRegister | None = None
        self.written_back: Callable[[str], None] | None = None
        self.register_failed: Callable[[str], None] | None = None
        self._told_back: set[str] = set()

    # --- the app's seal --------------------------------------------------------------------

    def _seal(self, columns: Mapping[Any, Any], revoked: bool) -> bytes | None:
        return None if self.seal_key is None else client_seal(self.seal_key, columns, revoked)

    def _genuine(self, columns: Mapping[Any, Any], revoked: bool, seal: bytes | None) -> bool:
        expected = self._seal(columns, revoked)
        if expected is None:
            return True
        return seal_matches(seal, expected, self.all_sealed)

    def _checked(self, row: Any) -> bool:
        """Whether a ``client_app`` row is as CareVault wrote it; one that is not is told
        (once a process)."""
        m = row._mapping
        revoked = m["revoked_us"] is not None
        return self._told_unless(
            str(m["client_id"]), self._genuine(m, revoked, m["seal"])
        ) and self._not_revoked_in_register(str(m["client_id"]), revoked)

    def genuine_session(self, row: Any) -> bool:
        """``_checked`` for a session's row (``Sessions._row``: the app's columns
        labelled ``SESSION_LABELS``)."""
        m = row._mapping
        columns = {name: m[label] for name, label in SESSION_LABELS.items()}
        revoked = m["client_revoked_us"] is not None
        return self._told_unless(
            str(m["client_id"]), self._genuine(columns, revoked, m["client_seal"])
        ) and self._not_revoked_in_register(str(m["client_id"]), revoked)

    # --- the register beside the keyring ----------------------------------------------

    def _not_revoked_in_register(self, client_id: str, revoked_in_row: bool) -> bool:
        """False if the register names the app as revoked and its row says it is not (a
        row written back over its revocation, told once a process, and only
        ``WRITTEN_BACK_AFTER_US`` after the revocation: one being committed in another
        process is no row written back), or if the register cannot be read (the app
        is then refused: the safe side)."""
        if self.register is None or revoked_in_row:
            return True
        try:
            revoked_us = self.register.client_revoked(client_id)
        except OSError as error:
            self._failed("not read", error)
            return False
        if revoked_us is None:
            return True
        late = to_micros(self.clock()) - revoked_us >= WRITTEN_BACK_AFTER_US
        if late and client_id not in self._told_back:
            self._told_back.add(client_id)
            log.error("client app %s: its row was written back over its revocation", client_id)
            if self.written_back is not None:
                self.written_back(client_id)
        return False

    def _failed(self, what: str, error: OSError) -> None:
        log.error(
            "the revocations' register beside the keyring: %s: %s",
            what,
            error.strerror or type(error).__name__,
        )
        if self.register_failed is not None:
            self.register_failed(what)

    def record_revoked(self) -> int:
        """Write every genuine revoked app to the register (once, when the register
        begins: the revocations made before it); returns how many."""
        if self.register is None:
            return 0
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                select(client_app).where(client_app.c.revoked_us.is_not(None))
            ).all()
        lines = [
            client_line(row.client_id, row.revoked_us)
            for row in rows
            if self._genuine(row._mapping, True, row.seal)
        ]
        self.register.append(lines)
        return len(lines)

    def _told_unless(self, client_id: str, genuine: bool) -> bool:
        if not genuine and client_id not in self._told:
            self._told.add(client_id)
            if self.altered is not None:
                self.altered(client_id)
        return genuine

    def seal_unsealed(self) -> int:
        """Seal every app that has no seal, as it stands (once, when sealing begins);
        returns how many."""
        if self.seal_key is None:
            return 0
        return seal_unsealed(
            self.engine,
            client_app,
            [client_app.c.client_id],
            lambda row: self._seal(row._mapping, row.revoked_us is not None),
        )

    def add(
        self,
        client_id: str,
        name: str,
        *,
        confidential: bool,
        scopes: str,
        redirect_uris: Sequence[str] = (),
        clinic_ids: Sequence[str] = (),
        account_id: str | None = None,
        jwks: str | None = None,
    ) -> tuple[ClientApp, str | None]:
        """Register an app; a confidential one gets a secret, returned once, unless it is
        registered with ``jwks``, its public keys: it then signs assertions and holds no
        secret. ``account_id``: the integration account a confidential app acts for
        (checked by the caller)."""
        if not _CLIENT_ID.match(client_id):
            raise ClientError("a client id is 3-64 of a-z 0-9 - _ .")
        contexts = frozenset({"system"} if confidential else {"user", "patient"})
        try:
            smart.parse(scopes, allowed_contexts=contexts)
        except smart.InvalidScope as error:
            raise ClientError(str(error)) from None
        for uri in redirect_uris:
            refusal = redirect_uri_refusal(uri)
            if refusal is not None:
                raise ClientError(refusal)
        if not confidential and not redirect_uris:
            raise ClientError("a public app needs at least one redirect URI")
        if confidential and not clinic_ids:
            raise ClientError("an integration app must be limited to at least one clinic")
        if account_id is not None and not confidential:
            raise ClientError("only a confidential app can act for an integration account")
        if jwks is not None:
            if not confidential:
                raise ClientError("only a confidential app signs in with keys")
            try:
                jwks = checked_key_set(jwks)
            except KeySetError as error:
                raise ClientError(f"the key set: {error}") from None
        if self.register is not None and self.register.client_revoked(client_id) is not None:
            # Its row gone from the database, the id would be refused for good.
            raise ClientError(f"client {client_id} was revoked: register the app anew")
        secret = secrets.token_urlsafe(32) if confidential and jwks is None else None
        with write_transaction(self.engine) as connection:
            exists = connection.execute(
                select(client_app.c.client_id).where(client_app.c.client_id == client_id)
            ).first()
            if exists is not None:
                raise ClientError(f"client {client_id} exists")
            columns: dict[str, Any] = {
                "client_id": client_id,
                "name": name,
                "kind": "confidential" if confidential else "public",
                "secret_hash": _hash_secret(secret) if secret else None,
                "redirect_uris": json.dumps(list(redirect_uris)),
                "scopes": scopes,
                "clinic_ids": ",".join(sorted(clinic_ids)),
                "account_id": account_id,
                "jwks": jwks,
            }
            connection.execute(
                insert(client_app).values(
                    **columns,
                    revoked_us=None,
                    created_us=to_micros(self.clock()),
                    seal=self._seal(columns, revoked=False),
                )
            )
        found = self.get(client_id)
        assert found is not None  # noqa: S101 - just written
        return found, secret

    def get(self, client_id: str) -> ClientApp | None:
        """The app, to be granted something: None for one whose row does not match its
        seal (as for one not registered), which is told."""
        with read_transaction(self.engine) as connection:
            row = connection.execute(
                select(client_app).where(client_app.c.client_id == client_id)
            ).first()
        return None if row is None or not self._checked(row) else _client(row)

    def all(self) -> list[ClientApp]:
        with read_transaction(self.engine) as connection:
            rows = connection.execute(select(client_app).order_by(client_app.c.client_id)).all()
        return [_client(row) for row in rows]

    def browser_origins(self) -> frozenset[str]:
        """The origins of the redirect URIs of public apps that are not revoked: where a
        browser app registered here runs, so the pages it may call this server from.
        Confidential apps run on servers and get none."""
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                select(client_app).where(
                    client_app.c.kind == "public", client_app.c.revoked_us.is_(None)
                )
            ).all()
        origins = (
            browser_origin(uri)
            for row in rows
            if self._checked(row)
            for uri in json.loads(row.redirect_uris)
            if redirect_uri_refusal(uri) is None  # one stored before URLs were judged whole
        )
        return frozenset(origin for origin in origins if origin is not None)

    def revoke(self, client_id: str) -> ClientApp:
        """Revoke the app, its row sealed so. One whose row was altered keeps its old seal
        (revoking it does not make it genuine), and is revoked all the same."""
        with write_transaction(self.engine) as connection:
            row = connection.execute(
                select(client_app).where(client_app.c.client_id == client_id)
            ).first()
            if row is None:
                raise ClientError(f"no client {client_id}")
            values: dict[str, Any] = {"revoked_us": to_micros(self.clock())}
            if self.register is not None:
                # Before the commit: a crash between leaves the app revoked by the
                # register alone (the safe side), never by the database alone.
                try:
                    self.register.append([client_line(client_id, values["revoked_us"])])
                except OSError as error:
                    self._failed("not written: a client app's revocation", error)
            if self._genuine(row._mapping, row.revoked_us is not None, row.seal):
                values["seal"] = self._seal(row._mapping, revoked=True)
            connection.execute(
                update(client_app).where(client_app.c.client_id == client_id).values(**values)
            )
            row = connection.execute(
                select(client_app).where(client_app.c.client_id == client_id)
            ).one()
        return _client(row)

    def authenticate(self, client_id: str, secret: str) -> ClientApp | None:
        """The confidential client, if the secret is right and it is not revoked."""
        with read_transaction(self.engine) as connection:
            row = connection.execute(
                select(client_app).where(client_app.c.client_id == client_id)
            ).first()
        expected = row.secret_hash if row is not None and row.secret_hash else _hash_secret("-")
        matches = hmac.compare_digest(expected, _hash_secret(secret))
        if (
            row is None
            or not self._checked(row)
            # A client that holds no secret (one registered with its keys) has none to
            # match: the placeholder compared against keeps the time alike, never lets in.
            or row.secret_hash is None
            or not matches
            or row.revoked_us is not None
            or row.kind != "confidential"
        ):
            return None
        return _client(row)
