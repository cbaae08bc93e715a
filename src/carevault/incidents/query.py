"""The scope's questions to the ledgers, answered by DuckDB over Parquet segments plus
the unsealed tail, or by plain SQL on PostgreSQL.

Both engines answer the same four questions over the same columns (``columns.py``):
which source addresses acted in the window, which patients' records were released to
the compromised principals (with categories and positions), which patients' stored
records they wrote (the same question over writes), and whose data keys were
unwrapped by a compromised process.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
from sqlalchemy import Engine, select, text

from carevault.db import read_transaction
from carevault.incidents.columns import to_table
from carevault.incidents.segments import Segments
from carevault.ledger.events import Tag

#: What counts as records released to the caller: reads, exports and notices shown in
#: full, not writes.
RELEASE_TAGS = (
    Tag.FHIR_READ.value,
    Tag.FHIR_VREAD.value,
    Tag.FHIR_SEARCH.value,
    Tag.FHIR_HISTORY.value,
    Tag.FHIR_EVERYTHING.value,
    Tag.FHIR_EXPORT.value,
    # An export's file downloaded: one entry per patient it holds, as the downloader
    # (the file may be fetched long after it was written and its patients recorded).
    Tag.EXPORT_FILE_RELEASED.value,
    # A notice printed in full for a privacy officer (``notify preview --patient``): the
    # person's name, address and what of theirs was exposed, one entry per record.
    Tag.NOTIFY_PREVIEW_SHOWN.value,
    # A break-the-glass grant's clinician's words, unsealed for a reviewing officer: free
    # text about the patient (the console's queue, ``break-glass queue``).
    Tag.ACCESS_BREAK_GLASS_SHOWN.value,
    # A patient's access report, or an AuditEvent search by patient, pulled by an
    # officer: who opened which of their records and the categories touched. Only the
    # entries naming a patient count (the scope reads only those).
    Tag.AUDIT_READ.value,
)
#: What a compromised principal wrote (integrity): records made, changed or deleted. A
#: record written again after its deletion is a create in the ledger, so creates count.
CHANGE_TAGS = (Tag.FHIR_CREATE.value, Tag.FHIR_UPDATE.value, Tag.FHIR_DELETE.value)
#: Whom a compromised principal gave a clinic's access to, or took it from: a patient
#: registered at a clinic (by a desk on proof of presence, by an officer), moved to
#: another home, or whose registration an officer ended. No record is shown by it, but
#: the clinic reaches the patient's records from then on, or no longer does.
REGISTRATION_TAGS = (
    Tag.PATIENT_REGISTERED.value,
    Tag.PATIENT_TRANSFERRED.value,
    Tag.PATIENT_UNREGISTERED.value,
)


@dataclass(frozen=True)
class Window:
    since_us: int
    until_us: int | None

    @property
    def end(self) -> int:
        return self.until_us if self.until_us is not None else (1 << 62)


@dataclass(frozen=True)
class Who:
    """The compromised principals as the ledger names them; empty lists match nothing."""

    principals: tuple[str, ...] = ()
    clients: tuple[str, ...] = ()
    sessions: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    clinics: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        return not (
            self.principals or self.clients or self.sessions or self.addresses or self.clinics
        )


@dataclass
class Hit:
    """One patient's evidence in one ledger: positions, time span and categories."""

    patient: str
    first_us: int
    last_us: int
    positions: list[int] = field(default_factory=list)
    categories: set[str] = field(default_factory=set)


_AUDIT_COLUMNS = (
    "seq, at_us, tag, outcome, principal, client_id, session_id, source_address, "
    "patient, categories, clinic_ids"
)
_UNWRAP_COLUMNS = "seq, at_us, principal, key_id"

_RELEASED = """
SELECT patient, min(at_us), max(at_us), list(seq ORDER BY seq),
       list_distinct(flatten(list(categories)))
FROM audit
WHERE at_us >= $since AND at_us < $until AND outcome = 'success' AND patient IS NOT NULL
  AND list_contains($tags, tag)
  AND ({who})
GROUP BY patient
"""

#: The columns each kind of compromised thing is matched on, in ``_RELEASED``.
_WHO_COLUMNS = (
    ("principals", "principal"),
    ("clients", "client_id"),
    ("sessions", "session_id"),
    ("addresses", "source_address"),
)


def _who_filter(who: Who) -> tuple[str, dict[str, object]]:
    """The ``{who}`` of ``_RELEASED`` for the kinds given, each value a parameter: only the
    columns that can match are read, and ``column IN (...)`` reaches the Parquet scan (a
    list of five alternatives, four of them empty, read every column of every row)."""
    terms: list[str] = []
    parameters: dict[str, object] = {}
    for kind, column in _WHO_COLUMNS:
        values = getattr(who, kind)
        if values:
            names = [f"{kind}_{n}" for n in range(len(values))]
            parameters.update(zip(names, values, strict=True))
            terms.append(f"{column} IN ({', '.join('$' + name for name in names)})")
    if who.clinics:
        terms.append("list_has_any(clinic_ids, $clinics)")
        parameters["clinics"] = list(who.clinics)
    return " OR ".join(terms) or "false", parameters


_UNWRAPPED = """
SELECT key_id, min(at_us), max(at_us), list(seq ORDER BY seq)
FROM unwrap
WHERE at_us >= $since AND at_us < $until AND key_id IS NOT NULL
  AND ($everyone OR list_contains($principals, principal))
GROUP BY key_id
"""


class DuckScope:
    """DuckDB over the checked segments and the tail of each ledger."""

    def __init__(self, window: Window, sources: dict[str, tuple[Sequence[Path], pa.Table]]) -> None:
        """``sources``: per ledger ("audit", "unwrap"), checked Parquet files and the tail."""
        self.window = window
        self.connection = duckdb.connect(config={"threads": os.cpu_count() or 1})
        for name, columns in (("audit", _AUDIT_COLUMNS), ("unwrap", _UNWRAP_COLUMNS)):
            files, tail = sources[name]
            self.connection.register(f"{name}_tail", tail)
            parts = [f"SELECT {columns} FROM {name}_tail"]  # noqa: S608 - constants
            if files:
                self.connection.read_parquet([str(path) for path in files]).create_view(
                    f"{name}_files"
                )
                parts.insert(0, f"SELECT {columns} FROM {name}_files")  # noqa: S608
            # Names and columns are this module's constants; the files come as a relation.
            union = " UNION ALL ".join(parts)
            self.connection.execute(f"CREATE VIEW {name} AS {union}")

    @classmethod
    def over_segments(cls, segments: Segments, window: Window) -> DuckScope:
        """Over the ledgers' sealed segments (each checked first) and their unsealed tails."""
        sources: dict[str, tuple[Sequence[Path], pa.Table]] = {}
        for name in ("audit", "unwrap"):
            files, tail_start = segments.usable(name, window.since_us, window.until_us)
            sources[name] = (files, _tail(segments, name, tail_start, window))
        return cls(window, sources)

    def close(self) -> None:
        self.connection.close()

    def addresses(self) -> list[str]:
        rows = self.connection.execute(
            "SELECT DISTINCT source_address FROM audit "
            "WHERE at_us >= $since AND at_us < $until AND source_address IS NOT NULL",
            {"since": self.window.since_us, "until": self.window.end},
        ).fetchall()
        return [str(row[0]) for row in rows]

    def released(self, who: Who, tags: Sequence[str] = RELEASE_TAGS) -> list[Hit]:
        """Per patient, the entries of ``tags`` (releases unless told) that succeeded in
        the window for one of ``who``."""
        matched, parameters = _who_filter(who)
        rows = self.connection.sql(
            # The filter's text is this module's constants and parameter names only.
            _RELEASED.format(who=matched),
            params={
                "since": self.window.since_us,
                "until": self.window.end,
                "tags": list(tags),
                **parameters,
            },
        ).to_arrow_table()
        # Column by column through Arrow: a row at a time was a second per 30,000 patients.
        patients, first, last, positions, categories = (
            column.to_pylist() for column in rows.columns
        )
        return [
            Hit(*hit[:4], set(hit[4]))
            for hit in zip(patients, first, last, positions, categories, strict=True)
        ]

    def unwrapped(self, principals: Sequence[str], everyone: bool) -> list[Hit]:
        rows = self.connection.sql(
            _UNWRAPPED,
            params={
                "since": self.window.since_us,
                "until": self.window.end,
                "principals": list(principals),
                "everyone": everyone,
            },
        ).to_arrow_table()
        keys, first, last, positions = (column.to_pylist() for column in rows.columns)
        return [Hit(*hit) for hit in zip(keys, first, last, positions, strict=True)]


def empty(ledger: str) -> pa.Table:
    return to_table(ledger, [])


def _tail(segments: Segments, name: str, start: int, window: Window) -> pa.Table:
    """Entries not yet in a segment, in the window, from the database."""
    ledger = segments.ledgers[name]
    table = ledger.store.tables.entry
    with read_transaction(ledger.store.engine) as connection:
        rows = connection.execute(
            select(table.c.seq, table.c.entry).where(
                table.c.ledger == ledger.store.name,
                table.c.seq >= start,
                table.c.at_us >= window.since_us,
                table.c.at_us < window.end,
            )
        ).all()
    return to_table(name, [(int(seq), bytes(data)) for seq, data in rows])


class SqlScope:
    """The same questions in plain SQL on PostgreSQL, over the entries table itself
    (the baseline, and faster for small windows where the time index narrows the rows)."""

    def __init__(self, engine: Engine, key_engine: Engine, window: Window) -> None:
        if engine.dialect.name != "postgresql" or key_engine.dialect.name != "postgresql":
            raise ValueError("the plain-SQL scope runs on PostgreSQL")
        self.engine = engine
        self.key_engine = key_engine
        self.window = window

    def close(self) -> None:
        pass

    def _rows(
        self, sql: str, parameters: dict[str, object], engine: Engine | None = None
    ) -> list[tuple[object, ...]]:
        with read_transaction(engine or self.engine) as connection:
            return [tuple(row) for row in connection.execute(text(sql), parameters).all()]

    def addresses(self) -> list[str]:
        rows = self._rows(
            "SELECT DISTINCT convert_from(entry, 'UTF8')::jsonb->>'source_address' "
            "FROM audit_entry WHERE ledger = 'audit' "
            "AND at_us >= :since AND at_us < :until",
            {"since": self.window.since_us, "until": self.window.end},
        )
        return [str(row[0]) for row in rows if row[0] is not None]

    def released(self, who: Who, tags: Sequence[str] = RELEASE_TAGS) -> list[Hit]:
        # ``actor`` is the ledger's copy of the entry's principal: when only principals
        # are compromised it narrows the rows before any entry is parsed (each row found
        # is still matched on the entry's own ``principal`` below).
        only_principals = not (who.clients or who.sessions or who.addresses or who.clinics)
        sql = """
        WITH e AS MATERIALIZED (
          SELECT seq, at_us, convert_from(entry, 'UTF8')::jsonb AS d FROM audit_entry
          WHERE ledger = 'audit' AND at_us >= :since AND at_us < :until
            AND subject IS NOT NULL
            AND (NOT :only_principals OR actor = ANY(:actors))
        ), hits AS MATERIALIZED (
          SELECT seq, at_us, d->>'patient_pseudonym' AS patient, d->'categories' AS categories
          FROM e
          WHERE d->>'outcome' = 'success' AND d->>'tag' = ANY(:tags)
            AND (d->>'principal' = ANY(:principals) OR d->>'client_id' = ANY(:clients)
                 OR d->>'session_id' = ANY(:sessions)
                 OR d->>'source_address' = ANY(:addresses)
                 OR ARRAY(SELECT jsonb_array_elements_text(coalesce(d->'clinic_ids', '[]')))
                    && CAST(:clinics AS text[]))
        )
        SELECT patient, min(at_us), max(at_us), array_agg(seq ORDER BY seq),
               ARRAY(SELECT DISTINCT jsonb_array_elements_text(c)
                     FROM unnest(array_agg(coalesce(categories, '[]'))) AS c)
        FROM hits WHERE patient IS NOT NULL GROUP BY patient
        """
        rows = self._rows(
            sql,
            {
                "since": self.window.since_us,
                "until": self.window.end,
                "tags": list(tags),
                "principals": list(who.principals),
                "clients": list(who.clients),
                "sessions": list(who.sessions),
                "addresses": list(who.addresses),
                "clinics": list(who.clinics),
                "only_principals": only_principals,
                "actors": [principal[:200] for principal in who.principals],
            },
        )
        return [
            Hit(str(r[0]), int(r[1]), int(r[2]), list(r[3]), set(r[4]))  # type: ignore[call-overload]
            for r in rows
        ]

    def unwrapped(self, principals: Sequence[str], everyone: bool) -> list[Hit]:
        sql = """
        SELECT subject, min(at_us), max(at_us), array_agg(seq ORDER BY seq)
        FROM unwrap_entry
        WHERE ledger = 'unwrap' AND at_us >= :since AND at_us < :until AND subject IS NOT NULL
          AND (:everyone OR convert_from(entry, 'UTF8')::jsonb->>'principal' = ANY(:principals))
        GROUP BY subject
        """
        rows = self._rows(
            sql,
            {
                "since": self.window.since_us,
                "until": self.window.end,
                "principals": list(principals),
                "everyone": everyone,
            },
            self.key_engine,
        )
        return [Hit(str(r[0]), int(r[1]), int(r[2]), list(r[3])) for r in rows]  # type: ignore[call-overload]
