"""Care client apps made before the marks: marked once, as stop 65 marks it when written.

Since stop 65 a care relationship only a client app's writes made carries
``CLIENT_ALONE`` and the client's token in its maker (``domain.makers``), so a member of
staff's read of a VIP that only a client's care explains is still judged (``vip``). A
relationship written before keeps the client's plain token, which reads as any other
principal's care made alone: the VIP read it explains raised nothing, the insider's way
of adversary round 82 for every booking made before the upgrade. ``mark_client_care``
rewrites each such row as it would be written now, and seals it again; the composition
root runs it once (``bootstrap``), noted beside the keyring.

Only what the rows tell is recovered: a plain token that is a client's. Care a person
and a client made together was stored as corroborated (no maker) and stays so.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from carevault.access.care import CareRelationships
from carevault.access.tables import care_relationship, client_app
from carevault.db import hold_record_writes_alone, read_transaction, write_transaction
from carevault.domain.makers import marked_as_client

log = logging.getLogger("carevault.access")

#: Records of care (vault rows) whose relationships are rewritten in one transaction: a
#: short write, so a server taking requests meanwhile waits little for it.
BATCH = 500


def client_tokens(care: CareRelationships, connection: Connection) -> frozenset[bytes]:
    """The ``granted_by`` tokens of every client app registered, revoked or not: a
    client's writes are care made by ``client:<client id>`` (``AccessControl``), and an
    app is never taken out of the table, only revoked."""
    return frozenset(
        token
        for client_id in connection.execute(select(client_app.c.client_id)).scalars()
        if (token := care.maker(f"client:{client_id}")) is not None
    )


def mark_client_care(care: CareRelationships, batch: int = BATCH) -> int:
    """Mark every care relationship a client app's writes alone made before stop 65 as
    made by that client alone, resealed; returns how many rows. Idempotent: a marked
    row is no client's plain token, so a second run finds nothing. A row that does not
    match its seal is left as it is (told, and it explains nothing): sealing it again
    would make it genuine. Rows made by staff, by the system or by several are not
    touched. One read of the table finds the records to look at, then ``batch`` of them
    a transaction, by the index of the record that opened them."""
    with read_transaction(care.engine) as connection:
        tokens = client_tokens(care, connection)
        if not tokens:
            return 0
        sources = sorted(
            int(source)
            for source in connection.execute(
                select(care_relationship.c.source_row_id)
                .where(care_relationship.c.granted_by.in_(sorted(tokens)))
                .distinct()
            ).scalars()
        )
    marked = 0
    for start in range(0, len(sources), batch):
        with write_transaction(care.engine) as connection:
            # Record writes rewrite these rows too, and another server's pass may be
            # marking them: one at a time, not in opposite orders (a deadlock on
            # PostgreSQL failed a start, or a clinician's write).
            hold_record_writes_alone(connection)
            marked += _mark(care, connection, sources[start : start + batch], tokens)
    care.forget_answers()
    if marked:
        log.info("care relationships made by client apps before stop 65: %d marked", marked)
    return marked


#: A row found by its record (the index of ``source_row_id``: an equality on a column
#: another index leads with, the clinic's, had SQLite walk that index, every row of the
#: clinic, once a row), as read: its maker and its seal. A row written again meanwhile
#: (a new version of its record clears and inserts, marked) or marked by another
#: process's pass no longer holds them and is left alone. Only the maker and the seal are
#: set, the seal over the row as read: a row whose other columns were changed meanwhile
#: does not match it.
_MARK = (
    update(care_relationship)
    .where(
        care_relationship.c.source_row_id == bindparam("source"),
        care_relationship.c.granted_by == bindparam("plain"),
        care_relationship.c.seal == bindparam("sealed"),
    )
    .values(granted_by=bindparam("marked"), seal=bindparam("resealed"))
)
#: The same with encryption off: no row is sealed.
_MARK_UNSEALED = (
    update(care_relationship)
    .where(
        care_relationship.c.source_row_id == bindparam("source"),
        care_relationship.c.granted_by == bindparam("plain"),
        care_relationship.c.seal.is_(None),
    )
    .values(granted_by=bindparam("marked"))
)


def _mark(
    care: CareRelationships,
    connection: Connection,
    sources: Sequence[int],
    tokens: Collection[bytes],
) -> int:
    """Inside a write's transaction: mark the client-made rows of ``sources``."""
    rows = connection.execute(
        select(care_relationship)
        .where(
            care_relationship.c.source_row_id.in_(sources),
            care_relationship.c.granted_by.in_(sorted(tokens)),
        )
        .order_by(care_relationship.c.source_row_id)
    ).all()
    sealed: list[dict[str, Any]] = []
    unsealed: list[dict[str, Any]] = []
    for row in rows:
        stored: dict[str, Any] = dict(row._mapping)
        plain = bytes(stored["granted_by"])
        maker = marked_as_client(plain, tokens)
        if maker is None or not care.genuine(stored):
            continue
        change = {"source": stored["source_row_id"], "plain": plain, "marked": maker}
        if stored["seal"] is None:
            unsealed.append(change)
        else:
            resealed = care.seal({**stored, "granted_by": maker})
            sealed.append({**change, "sealed": bytes(stored["seal"]), "resealed": resealed})
    marked = 0
    for statement, changes in ((_MARK, sealed), (_MARK_UNSEALED, unsealed)):
        if changes:
            marked += connection.execute(statement, changes).rowcount
    return marked
