"""Paging cursors of history: where the next page starts, sealed.

A next link of a type- or system-level history names the version the next page starts
at (``VersionKey``: when it was written, its type, id and version), never a position
among candidates: a position counted versions the caller may not read, moved when
records left the caller's reach (skipping versions they could read) and, replayed
later, told how many versions had been written since. A link of an instance history
names a version number of that record (``gate/paging.py``). The key goes out only
encrypted and authenticated (AES-GCM under a key derived from the vault's index key,
the same in every process of a deployment), padded to one length, bound to the caller's
principal, the level and type (and the record's id, at instance level), and ``_since``:
one cursor says nothing (every one is the same length), and one altered, made up, or
sent by anyone else, for another record or with another request is refused (400). The
two levels seal under their own format bytes: a cursor of one is never taken for the
other's.

It also carries the instant the first page was as of (``meta.lastUpdated``), which
every later page repeats: the pages go back in time from where the first began, so
what they hold was settled by then, and a version written after it is in none of them.
A sync client taking the last page's ``meta.lastUpdated`` as its next ``_since`` (each
page had its own, later, time) missed the versions written while it paged. Sealed, the
instant cannot be chosen by a client: it could otherwise ask for pages as of a time
before versions it was shown, or after ones not yet settled.
"""

from __future__ import annotations

from dataclasses import dataclass

from carevault.fhir import jsonio
from carevault.fhir.outcome import FhirError, bad_request
from carevault.rest import sealing
from carevault.vault.records import VersionKey

_FORMAT = b"\x02"
_INSTANCE_FORMAT = b"\x04"
#: The key as JSON, padded with spaces: a type name (at most 40 characters in R4), an id
#: (at most 64), a time in microseconds and a version fit with room to spare.
_KEY_BYTES = 192
LENGTH = sealing.sealed_length(_KEY_BYTES)


def _binding(principal: str, type_name: str | None, since_us: int | None) -> bytes:
    return jsonio.dumps(["history", principal, type_name or "*", since_us])


@dataclass(frozen=True)
class Position:
    """Where a page starts, and the instant the whole answer is as of."""

    start: VersionKey
    #: The first page's ``meta.lastUpdated`` (None in a cursor sealed before it was kept).
    as_of_us: int | None


def seal(
    key: bytes,
    principal: str,
    type_name: str | None,
    since_us: int | None,
    start: VersionKey,
    as_of_us: int,
) -> str:
    """The cursor of a page starting at version ``start``, for this caller's request,
    of an answer as of ``as_of_us``."""
    plain = jsonio.dumps(
        [
            start.last_updated_us,
            start.resource_type,
            start.resource_id,
            start.version_id,
            as_of_us,
        ]
    )
    # ids are at most 64 characters: never too long, but never silently
    return sealing.seal(key, _FORMAT, plain, _KEY_BYTES, _binding(principal, type_name, since_us))


def opened(
    key: bytes, principal: str, type_name: str | None, since_us: int | None, cursor: str
) -> Position:
    """Where ``cursor`` starts, if this server sealed it for this caller and this
    request; otherwise a 400 that says no more than that."""
    plain = sealing.opened(
        key, _FORMAT, _KEY_BYTES, cursor, _binding(principal, type_name, since_us)
    )
    if plain is None:
        raise _refused()
    at, resource_type, resource_id, version, *rest = jsonio.parse(plain)
    start = VersionKey(int(at), str(resource_type), str(resource_id), int(version))
    return Position(start, int(rest[0]) if rest else None)


@dataclass(frozen=True)
class VersionPosition:
    """Where a page of one record's history starts (the newest version the caller may
    read at or below ``start``), and the instant the whole answer is as of."""

    start: int
    as_of_us: int


def _instance_binding(
    principal: str, type_name: str, resource_id: str, since_us: int | None
) -> bytes:
    return jsonio.dumps(["instance-history", principal, type_name, resource_id, since_us])


def seal_instance(
    key: bytes,
    principal: str,
    type_name: str,
    resource_id: str,
    since_us: int | None,
    start: int,
    as_of_us: int,
) -> str:
    """The cursor of a page of record ``type_name/resource_id``'s history starting at
    version ``start``, for this caller's request, of an answer as of ``as_of_us``."""
    plain = jsonio.dumps([start, as_of_us])
    binding = _instance_binding(principal, type_name, resource_id, since_us)
    return sealing.seal(key, _INSTANCE_FORMAT, plain, _KEY_BYTES, binding)


def opened_instance(
    key: bytes,
    principal: str,
    type_name: str,
    resource_id: str,
    since_us: int | None,
    cursor: str,
) -> VersionPosition:
    """Where ``cursor`` starts, if this server sealed it for this caller, this record
    and this request; otherwise a 400 that says no more than that."""
    binding = _instance_binding(principal, type_name, resource_id, since_us)
    plain = sealing.opened(key, _INSTANCE_FORMAT, _KEY_BYTES, cursor, binding)
    if plain is None:
        raise bad_request(
            "_offset of an instance history is taken only from a link this server gave "
            "the same caller for the same record and request"
        )
    start, as_of_us = jsonio.parse(plain)
    return VersionPosition(int(start), int(as_of_us))


def _refused() -> FhirError:
    return bad_request(
        "_offset of a type or system history is taken only from a next link this server "
        "gave the same caller for the same request"
    )
