"""Incidents as plain values: what is believed compromised, over which window.

Pure: no I/O. The CLI, the HTTP API and alert cases all build a ``Compromised`` and a
window through ``parse_case``, so a bad address or date is refused the same way
everywhere, before anything is stored.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field, replace
from datetime import datetime, tzinfo
from enum import StrEnum
from typing import Any

from carevault.clock import fhir_instant, from_micros, to_micros

MAX_ITEMS = 200
MAX_TEXT = 200
#: A scope's tiers, most certain first (DESIGN.md): a patient is listed in the first only.
TIERS = ("confirmed", "decrypted", "at_rest_only", "potentially")


class IncidentError(ValueError):
    """An incident request that cannot be used; the message says which field and why."""


class Status(StrEnum):
    OPEN = "open"
    CONTAINED = "contained"
    CLOSED = "closed"


@dataclass(frozen=True)
class Compromised:
    """What is believed compromised. Principals, clients, sessions and addresses name
    who acted; a clinic, the database, the host and the key service name what was held."""

    accounts: tuple[str, ...] = ()
    clients: tuple[str, ...] = ()
    sessions: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    clinics: tuple[str, ...] = ()
    database: bool = False
    host: bool = False
    key_service: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "accounts": list(self.accounts),
            "clients": list(self.clients),
            "sessions": list(self.sessions),
            "addresses": list(self.addresses),
            "clinics": list(self.clinics),
            "database": self.database,
            "host": self.host,
            "key_service": self.key_service,
        }

    def dumps(self) -> str:
        return json.dumps(self.as_json(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def loads(cls, text: str) -> Compromised:
        document = json.loads(text)
        return cls(
            accounts=tuple(document.get("accounts", ())),
            clients=tuple(document.get("clients", ())),
            sessions=tuple(document.get("sessions", ())),
            addresses=tuple(document.get("addresses", ())),
            clinics=tuple(document.get("clinics", ())),
            database=bool(document.get("database", False)),
            host=bool(document.get("host", False)),
            key_service=bool(document.get("key_service", False)),
        )

    def merged(self, more: Compromised) -> Compromised:
        """An amendment adds to what is believed compromised; it never silently drops."""

        def union(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(sorted(set(a) | set(b)))

        return Compromised(
            accounts=union(self.accounts, more.accounts),
            clients=union(self.clients, more.clients),
            sessions=union(self.sessions, more.sessions),
            addresses=union(self.addresses, more.addresses),
            clinics=union(self.clinics, more.clinics),
            database=self.database or more.database,
            host=self.host or more.host,
            key_service=self.key_service or more.key_service,
        )

    def is_empty(self) -> bool:
        return not (
            self.accounts
            or self.clients
            or self.sessions
            or self.addresses
            or self.clinics
            or self.database
            or self.host
            or self.key_service
        )


@dataclass(frozen=True)
class Incident:
    incident_id: int
    title: str
    status: Status
    declared_us: int
    declared_by: str
    since_us: int
    until_us: int | None
    compromised: Compromised
    alert_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.incident_id,
            "title": self.title,
            "status": self.status.value,
            "declared_at": instant(self.declared_us),
            "declared_by": self.declared_by,
            "since": instant(self.since_us),
            "until": instant(self.until_us) if self.until_us is not None else None,
            "alert": self.alert_id,
            "compromised": self.compromised.as_json(),
        }


@dataclass(frozen=True)
class Amendment:
    """What an amendment changes: a field left None stays as it is."""

    title: str | None = None
    status: Status | None = None
    since_us: int | None = None
    until_us: int | None = None
    adds: Compromised = field(default_factory=Compromised)
    note: str | None = None

    def apply(self, incident: Incident) -> Incident:
        changed = replace(
            incident,
            title=self.title or incident.title,
            status=self.status or incident.status,
            since_us=incident.since_us if self.since_us is None else self.since_us,
            until_us=incident.until_us if self.until_us is None else self.until_us,
            compromised=incident.compromised.merged(self.adds),
        )
        check_window(changed.since_us, changed.until_us)
        return changed

    def narrows(self, incident: Incident) -> bool:
        """Whether this takes anything out of ``incident``: a later start, an earlier (or
        a first) end, or closing it. The window decides the scope and the scope who gets a
        notice, so these take a privacy officer's fresh code wherever they are asked for
        (console, HTTP API, CLI); widening (an earlier start, a later end, more
        compromised) and a new title or note stay free."""
        later_start = self.since_us is not None and self.since_us > incident.since_us
        earlier_end = self.until_us is not None and (
            incident.until_us is None or self.until_us < incident.until_us
        )
        closing = self.status is Status.CLOSED and incident.status is not Status.CLOSED
        return later_start or earlier_end or closing


def instant(micros: int) -> str:
    return fhir_instant(from_micros(micros))


def instant_in(text: str, zone: tzinfo, name: str) -> int:
    """An ISO-8601 date or date-time as microseconds since the epoch. One written without
    a zone (``2026-11-30T10:00``, or a date alone) is a time in ``zone``: the group's
    (``CAREVAULT_TIMEZONE``), as an officer in its clinics means it. Every place that
    takes a time from a person parses it here (the CLI, /admin/incidents, the console,
    the audit search), so ``10:00`` is the same moment everywhere."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise IncidentError(f"{name}: {text[:40]!r} is not an ISO-8601 date or time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    if not 1970 <= moment.year <= 9999:
        raise IncidentError(f"{name}: out of range")
    try:
        return to_micros(moment)
    except (OverflowError, ValueError):
        raise IncidentError(f"{name}: out of range") from None


def check_window(since_us: int, until_us: int | None) -> None:
    if until_us is not None and until_us <= since_us:
        raise IncidentError("until must be after since")


def _texts(values: Any, name: str) -> tuple[str, ...]:
    if values is None:
        return ()
    if isinstance(values, str) or not isinstance(values, list | tuple):
        raise IncidentError(f"{name}: a list is expected")
    if len(values) > MAX_ITEMS:
        raise IncidentError(f"{name}: at most {MAX_ITEMS} items")
    found: set[str] = set()
    for value in values:
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
            raise IncidentError(f"{name}: each item is a non-empty text of at most {MAX_TEXT}")
        if any(ord(char) < 32 for char in value):
            raise IncidentError(f"{name}: control characters are not allowed")
        found.add(value.strip())
    return tuple(sorted(found))


#: The widest range an incident may hold compromised, per IP version: a /0 or /1 is a
#: slip (``10.0.0.0/0`` for /8) that makes every read by anyone the attacker's, and every
#: patient read in the window someone to notify.
WIDEST_PREFIX = {4: 8, 6: 16}


def _networks(values: Any) -> tuple[str, ...]:
    found: set[str] = set()
    for value in _texts(values, "addresses"):
        shown = repr(value[:60])
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise IncidentError(
                f"addresses: {shown} is not an address or range (e.g. 203.0.113.0/24)"
            ) from None
        if network.prefixlen < WIDEST_PREFIX[network.version]:
            raise IncidentError(
                f"addresses: {shown} covers {network.num_addresses:,} addresses; the widest "
                f"range taken is a /{WIDEST_PREFIX[network.version]}"
            )
        address = ipaddress.ip_address(value.strip().split("/")[0])
        if address != network.network_address:
            # ip_network(strict=False) quietly dropped the host part.
            raise IncidentError(
                f"addresses: {shown} has bits set past its prefix: the range is {network}, "
                f"the address {address}"
            )
        found.add(str(network))
    return tuple(sorted(found))


def parse_compromised(case: dict[str, Any]) -> Compromised:
    return Compromised(
        accounts=_texts(case.get("accounts"), "accounts"),
        clients=_texts(case.get("clients"), "clients"),
        sessions=_texts(case.get("sessions"), "sessions"),
        addresses=_networks(case.get("addresses")),
        clinics=_texts(case.get("clinics"), "clinics"),
        database=_flag(case.get("database"), "database"),
        host=_flag(case.get("host"), "host"),
        key_service=_flag(case.get("key_service"), "key_service"),
    )


def _flag(value: Any, name: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise IncidentError(f"{name}: true or false is expected")
    return value


def parse_title(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise IncidentError("title: a non-empty text is required")
    if len(value) > 500 or any(ord(char) < 32 for char in value):
        raise IncidentError("title: at most 500 characters, no control characters")
    return value.strip()


def parse_window(since: Any, until: Any, zone: tzinfo) -> tuple[int, int | None]:
    """The window of a case; a time without a zone is in ``zone`` (``instant_in``)."""
    if not isinstance(since, str):
        raise IncidentError("since: an ISO-8601 date or time is required")
    since_us = instant_in(since, zone, "since")
    until_us = None
    if until is not None:
        if not isinstance(until, str):
            raise IncidentError("until: an ISO-8601 date or time is expected")
        until_us = instant_in(until, zone, "until")
    check_window(since_us, until_us)
    return since_us, until_us


def principal_of(account: str) -> str:
    """A staff username as the ledger names it (``staff:`` and the username casefolded,
    as accounts keep it: ``Chan.TM`` matched no entry of ``staff:chan.tm``); a client
    app's principal with its id casefolded (ids are registered in lower case); another
    full principal (``system:...``) as is."""
    kind, colon, name = account.strip().partition(":")
    if not colon:
        return f"staff:{kind.casefold()}"
    if kind.casefold() in ("staff", "client"):
        return f"{kind.casefold()}:{name.strip().casefold()}"
    return account
