"""What the database may not be trusted to say about itself, kept beside the keyring.

Rows of policy state are sealed with a key the database does not hold (adversary round
69). Rows written before sealing began have no seal, and whether sealing has begun for a
table is exactly what someone who may write to the database would want to rewrite (strip
a seal, and the row would pass for one from before). So the note that a table's rows are
all sealed lives here, in the custodian's part: one table name a line, appended and
fsynced, the file 0600.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Engine, Table, select, update

from carevault.db import write_transaction
from carevault.keys.files import append_line_once

#: The file's name, beside the keyring (``anchors_path``).
ANCHORS = "sealed-tables"


def anchors_path(keyring: Path) -> Path:
    return keyring.with_name(ANCHORS)


class SealAnchors:
    def __init__(self, path: Path) -> None:
        self.path = path

    def holds(self, table: str) -> bool:
        """Whether every row of ``table`` has been sealed (and must be from now on)."""
        try:
            return table in self.path.read_text().split()
        except FileNotFoundError:
            return False

    def add(self, table: str) -> None:
        """Note ``table`` once, however many processes finish its pass at once."""
        append_line_once(self.path, table)


def seal_fields(key: bytes, form: str, fields: Sequence[object]) -> bytes:
    """The seal of a row whose sealed columns hold ``fields`` (in a fixed order), under
    ``key``; ``form`` names the table and the seal's version. A value that is not of
    the type CareVault writes (a number stored as text, say) seals differently: the
    JSON keeps the type."""
    return hmac.new(key, json.dumps([form, *fields]).encode(), hashlib.sha256).digest()


def seal_matches(seal: bytes | None, expected: bytes, all_sealed: bool) -> bool:
    """Whether a row's stored ``seal`` is the one its columns call for (``expected``); a
    row without one passes only while its table's rows are not all sealed yet."""
    if seal is None:
        return not all_sealed
    return hmac.compare_digest(bytes(seal), expected)


def seal_unsealed(
    engine: Engine,
    table: Table,
    key: Sequence[Column[Any]],
    seal_of: Callable[[Any], bytes | None],
) -> int:
    """Seal every row of ``table`` that has no seal, as it stands (``seal_of`` a row; once,
    when sealing of the table begins, before the note in the anchors); returns how many.
    ``key``: the columns that pick out one row (its primary key)."""
    with write_transaction(engine) as connection:
        rows = connection.execute(select(table).where(table.c.seal.is_(None))).all()
        for row in rows:
            connection.execute(
                update(table)
                .where(*(column == getattr(row, column.name) for column in key))
                .values(seal=seal_of(row))
            )
    return len(rows)


class AlteredRows:
    """The rows of one kind found not to match their seals, each told once a process: the
    log says so, and ``record`` (the composition root's: a ledger entry the detectors
    raise as a critical ``stored-data-altered`` alert) is given the row's name. A row
    read on every request (a registration behind a patient's every read) would otherwise
    be told on each: an insider could make the log, the ledger and the alerts as loud
    as they liked. At most ``LIMIT`` rows are told by name in a process; past that, once,
    that there are more (the log and ``record`` both), and nothing more is kept.

    A name is shown as it is given, but for what is not printable (a row's column can
    hold a line break, which would forge a log line or an alert's email): each such
    character is shown as ``?``, and a name is cut at ``SHOWN`` characters."""

    LIMIT = 100
    SHOWN = 120

    def __init__(self, log: logging.Logger, kind: str, consequence: str) -> None:
        """``kind``: what a row is ("break-the-glass grant"); ``consequence``: what
        CareVault does with one that does not match ("not honoured")."""
        self.log = log
        self.kind = kind
        self.consequence = consequence
        #: Told of each row found altered, once (None: only logged).
        self.record: Callable[[str], None] | None = None
        self._told: set[str] = set()
        self._full = False
        self._lock = threading.Lock()

    def tell(self, name: str) -> None:
        """``name`` (the row's own words: an id, or a digest and a clinic, never a
        patient's details nor a pseudonym) was found not to match its seal."""
        shown = "".join(c if c.isprintable() else "?" for c in name[: self.SHOWN])
        with self._lock:
            if shown in self._told or self._full:
                return
            if len(self._told) >= self.LIMIT:
                self._full = True
                shown = f"beyond the first {self.LIMIT}"
            else:
                self._told.add(shown)
        self.log.error("%s %s was altered in the database: %s", self.kind, shown, self.consequence)
        if self.record is not None:
            self.record(shown)
