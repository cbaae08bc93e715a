"""Kept scope runs: each computed scope of an incident is evidence, kept whole.

A run is numbered per incident (1, 2, ...) and keeps who computed it, when, the sizes of
the audit and unwrap ledgers when the computation started (every entry before them was
there to be read), its whole document as canonical JSON and that text's SHA-256. The
``incident:scope:computed`` ledger entry that records the run holds the same number and
digest, so a kept document can be checked against the signed ledger: ``read`` refuses
a document whose text no longer matches its digest or its ledger entry (fail closed).

Documents hold pseudonymous Patient ids, categories, clinics and ledger positions, as
the report itself does, and the incident's title, which is what an officer typed and may
name a patient: a document is kept sealed (``incidents.words``, bound to the incident and
the run's number) and opened to the very text its digest was made of, so what an outside
verifier checks is unchanged (runs kept before the title was sealed read as they are).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, func, select

from carevault.db import read_transaction
from carevault.incidents.model import IncidentError, instant
from carevault.incidents.tables import incident_scope_run
from carevault.incidents.words import Words
from carevault.ledger.store import LedgerStore

#: The columns of a run without its document (listings read only these).
_HEADER = (
    incident_scope_run.c.incident_id,
    incident_scope_run.c.number,
    incident_scope_run.c.at_us,
    incident_scope_run.c.actor,
    incident_scope_run.c.audit_size,
    incident_scope_run.c.unwrap_size,
    incident_scope_run.c.sha256,
    incident_scope_run.c.ledger_seq,
)


class ScopeRunMissing(IncidentError):
    """No kept run (with its document) of that incident, or no run of that number."""


class ScopeRunTampered(IncidentError):
    """A kept document no longer matches its digest or the ledger entry that recorded it."""


@dataclass(frozen=True)
class Covers:
    """The ledgers' sizes when a computation started."""

    audit: int
    unwrap: int


@dataclass(frozen=True)
class ScopeRun:
    incident_id: int
    number: int
    at_us: int
    actor: str | None
    covers: Covers | None
    sha256: str | None
    ledger_seq: int | None
    document: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        """The run without its document (``incident runs``, the API's run list)."""
        return {
            "incident": self.incident_id,
            "run": self.number,
            "computed_at": instant(self.at_us),
            "computed_by": self.actor,
            "covers": None
            if self.covers is None
            else {"audit": self.covers.audit, "unwrap": self.covers.unwrap},
            "sha256": self.sha256,
            "ledger_position": self.ledger_seq,
            "kept": self.sha256 is not None,
        }


def canonical(document: dict[str, Any]) -> bytes:
    """The document as kept and digested: keys sorted, no spaces, UTF-8 (the same bytes
    as ``json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``)."""
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


def digest(text: bytes) -> str:
    return hashlib.sha256(text).hexdigest()


def next_number(connection: Connection, incident_id: int) -> int:
    found = connection.execute(
        select(func.max(incident_scope_run.c.number)).where(
            incident_scope_run.c.incident_id == incident_id
        )
    ).scalar()
    return int(found or 0) + 1


def _run(row: Any, document: dict[str, Any] | None = None) -> ScopeRun:
    covers = (
        None
        if row.audit_size is None or row.unwrap_size is None
        else Covers(int(row.audit_size), int(row.unwrap_size))
    )
    return ScopeRun(
        incident_id=int(row.incident_id),
        number=int(row.number),
        at_us=int(row.at_us),
        actor=row.actor,
        covers=covers,
        sha256=row.sha256,
        ledger_seq=None if row.ledger_seq is None else int(row.ledger_seq),
        document=document,
    )


def listing(engine: Engine, incident_id: int, most: int = 1000) -> list[ScopeRun]:
    """The incident's runs, newest first, without their documents."""
    with read_transaction(engine) as connection:
        rows = connection.execute(
            select(*_HEADER)
            .where(incident_scope_run.c.incident_id == incident_id)
            .order_by(incident_scope_run.c.number.desc())
            .limit(most)
        ).all()
    return [_run(row) for row in rows]


def sealed_field(number: int) -> str:
    """What a run's kept document is sealed as (``Words``' field, bound with the incident)."""
    return f"scope-run-{number}"


def read(
    engine: Engine,
    audit: LedgerStore,
    words: Words,
    incident_id: int,
    number: int | None = None,
) -> ScopeRun:
    """Run ``number`` of the incident (None: the latest kept whole), its document opened
    (``words``) and checked against its digest and its ledger entry. ScopeRunMissing,
    ScopeRunTampered."""
    query = select(*_HEADER, incident_scope_run.c.document).where(
        incident_scope_run.c.incident_id == incident_id
    )
    if number is None:
        query = query.where(incident_scope_run.c.document.is_not(None))
    else:
        query = query.where(incident_scope_run.c.number == number)
    with read_transaction(engine) as connection:
        row = connection.execute(
            query.order_by(incident_scope_run.c.number.desc()).limit(1)
        ).first()
    if row is None:
        which = "no kept scope run" if number is None else f"no scope run {number}"
        raise ScopeRunMissing(f"incident {incident_id}: {which}")
    if row.document is None:
        raise ScopeRunMissing(
            f"incident {incident_id}: run {row.number} was recorded before documents were kept"
        )
    text = words.open(incident_id, sealed_field(int(row.number)), row.document).encode("utf-8")
    if digest(text) != row.sha256 or _recorded_digest(audit, row.ledger_seq) != row.sha256:
        raise ScopeRunTampered(
            f"incident {incident_id}: run {row.number} does not match its digest or its "
            "ledger entry"
        )
    return _run(row, orjson.loads(text))


def _recorded_digest(audit: LedgerStore, position: int | None) -> str | None:
    """The digest the run's ledger entry holds (None: no such entry, or none in it)."""
    if position is None:
        return None
    data = audit.entry(position)
    if data is None:
        return None
    detail = orjson.loads(data).get("detail") or {}
    found = detail.get("sha256") if isinstance(detail, dict) else None
    return found if isinstance(found, str) else None
