"""Rebuilding the search index of records already stored.

A new version of the server may index more than the one that wrote a record (a new
search term, the clear dates of directory resources), or judge differently what is
sensitive (a code added to the lists: every health record's sensitivity marker names the
rules it was written under, ``fhir/indexing.py``). Reindexing opens each current
record, in batches, and replaces its search tokens (and their list, markers included),
clear dates and kinship tokens (a Patient's, ``patient_kin``) with what this version
derives from it. Opening goes through the key service like any read, so the unwrap log
names the principal and purpose; nothing leaves the process. ``stale_markers`` tells,
without opening anything, whether an upgrade left markers to write again.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import and_, delete, exists, func, insert, not_, or_, select

from carevault.db import read_transaction, write_transaction
from carevault.domain.categories import HEALTH_CATEGORIES
from carevault.fhir import jsonio
from carevault.fhir.indexing import ORDINARY_TERM, SENSITIVE_TERM, SENSITIVITY
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.vault.opening import open_sealed
from carevault.vault.store import Vault
from carevault.vault.tables import patient_kin, resource_head, search_date, search_token
from carevault.vault.writer import date_rows, drop_tokens, kin_rows, search_tokens, store_tokens

#: Rounds for the rows a writer held locked during their batch, and the pause between.
LOCKED_ROUNDS = 5
LOCKED_PAUSE_SECONDS = 0.2


def reindex(
    vault: Vault,
    *,
    principal: str,
    purpose: str,
    batch: int = 500,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Replace the search tokens and clear dates of every current record; returns how
    many records were reindexed. A record written again meanwhile is left as its new
    version was indexed (by this version's writer). A record a writer holds locked at
    its turn (PostgreSQL) is taken again after the others: by then its writer has either
    written it (and indexed it) or given up."""
    done, after = 0, 0
    locked: list[int] = []
    while True:
        with read_transaction(vault.engine) as connection:
            row_ids = [
                int(row_id)
                for row_id in connection.execute(
                    select(resource_head.c.row_id)
                    .where(resource_head.c.row_id > after, resource_head.c.deleted.is_(False))
                    .order_by(resource_head.c.row_id)
                    .limit(batch)
                ).scalars()
            ]
        if not row_ids:
            break
        after = row_ids[-1]
        count, skipped = _reindex_rows(vault, row_ids, principal=principal, purpose=purpose)
        done += count
        locked += skipped
        if progress is not None:
            progress(done)
    for _ in range(LOCKED_ROUNDS):
        if not locked:
            break
        time.sleep(LOCKED_PAUSE_SECONDS)
        count, locked = _reindex_rows(vault, locked, principal=principal, purpose=purpose)
        done += count
        if progress is not None:
            progress(done)
    if locked:
        raise ReindexIncomplete(len(locked))
    return done


def stale_markers(vault: Vault, *, limit: int = 1) -> int:
    """How many current health records (counted up to ``limit``) carry no sensitivity
    marker of this release's rules: written by a release whose rules of what is
    sensitive differ (a code list, a spelling of a system), or before markers existed.
    A search by a role that may not read sensitive records opens each such record to
    judge it, and is refused as too costly beyond its candidate limit, until
    ``reindex`` marks them again; reads, and searches by other roles, never use markers.
    Nothing is opened: one index probe a record, from the first."""
    unmarked = []
    for name, rt in RESOURCE_TYPES.items():
        if rt.category not in HEALTH_CATEGORIES:
            continue
        markers = [vault.token(name, SENSITIVITY, term) for term in (ORDINARY_TERM, SENSITIVE_TERM)]
        marked = exists().where(
            search_token.c.token.in_(markers), search_token.c.row_id == resource_head.c.row_id
        )
        unmarked.append(and_(resource_head.c.resource_type == name, not_(marked)))
    found = (
        select(resource_head.c.row_id)
        .where(resource_head.c.deleted.is_(False), or_(*unmarked))
        .limit(limit)
        .subquery()
    )
    with read_transaction(vault.engine) as connection:
        return int(connection.execute(select(func.count()).select_from(found)).scalar_one())


class ReindexIncomplete(RuntimeError):
    """Some records stayed locked by writers through every round."""

    def __init__(self, records: int) -> None:
        super().__init__(
            f"{records} records stayed locked by writers while reindexing; run reindex again"
        )
        self.records = records


def _reindex_rows(
    vault: Vault, row_ids: list[int], *, principal: str, purpose: str
) -> tuple[int, list[int]]:
    """Reindex ``row_ids`` (those still current as opened); returns how many were, and
    which a writer held locked (PostgreSQL: left for a later round, never waited on, so
    no deadlock with a writer locking heads in another order)."""
    opened = open_sealed(vault, vault.locate_rows(row_ids), principal=principal, purpose=purpose)
    versions = {item.head.row_id: item.head.version_id for item in opened}
    with write_transaction(vault.engine) as connection:
        # The writer's lock on the heads (FOR UPDATE; nothing on SQLite, whose write
        # transaction already excludes every other writer): the tokens and lists of a
        # row are replaced by one transaction at a time.
        heads = connection.execute(
            select(resource_head.c.row_id, resource_head.c.version_id, resource_head.c.deleted)
            .where(resource_head.c.row_id.in_(row_ids))
            .order_by(resource_head.c.row_id)
            .with_for_update(skip_locked=True)
        ).all()
        current = {int(row_id): int(version) for row_id, version, deleted in heads if not deleted}
        seen = {int(row_id) for row_id, _, _ in heads}
        skipped = [row_id for row_id in row_ids if row_id in versions and row_id not in seen]
        unchanged = {
            row_id for row_id, version in versions.items() if current.get(row_id) == version
        }
        drop_tokens(connection, unchanged)
        connection.execute(delete(search_date).where(search_date.c.row_id.in_(unchanged)))
        connection.execute(delete(patient_kin).where(patient_kin.c.row_id.in_(unchanged)))
        tokens: dict[int, set[bytes]] = {}
        dated: list[dict[str, object]] = []
        kin: list[dict[str, object]] = []
        for item in opened:
            if item.head.row_id not in unchanged or item.body is None:
                continue
            rt = RESOURCE_TYPES[item.head.resource_type]
            resource = jsonio.load(item.body)
            tokens[item.head.row_id] = search_tokens(vault, rt, resource)
            dated += date_rows(vault, rt, item.head.row_id, resource)
            if rt.is_patient:
                kin += kin_rows(vault, item.head.row_id, item.head.patient_pseudonym, resource)
        store_tokens(connection, tokens)
        if dated:
            connection.execute(insert(search_date), dated)
        if kin:
            connection.execute(insert(patient_kin), kin)
    return len(unchanged), skipped
