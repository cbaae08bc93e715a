"""The detectors' stored state: the cursor (and its lease), profiles, role baselines.

Only one process advances the detectors at a time: the one holding the cursor's lease
(renewed with every batch, taken over when it lapses). The cursor, the state rows and
the alerts of a batch are written in one transaction, so a restart resumes exactly
where the last committed batch ended: nothing missed, nothing counted twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from carevault.detect.tables import detect_cursor, detect_state


@dataclass(frozen=True)
class Cursor:
    name: str
    position: int
    owner: str | None
    lease_until_us: int

    def held_by_other(self, owner: str, wall_us: int) -> bool:
        return self.owner not in (None, owner) and self.lease_until_us > wall_us


def read_cursor(connection: Connection, name: str, *, lock: bool = False) -> Cursor:
    query = select(detect_cursor).where(detect_cursor.c.name == name)
    if lock and connection.dialect.name == "postgresql":
        query = query.with_for_update()
    row = connection.execute(query).first()
    if row is None:
        return Cursor(name, 0, None, 0)
    m = row._mapping
    return Cursor(name, int(m["position"]), m["owner"], int(m["lease_until_us"]))


def write_cursor(
    connection: Connection, name: str, position: int, owner: str, lease_until_us: int, now_us: int
) -> None:
    values = {
        "position": position,
        "owner": owner,
        "lease_until_us": lease_until_us,
        "updated_us": now_us,
    }
    changed = connection.execute(
        update(detect_cursor).where(detect_cursor.c.name == name).values(**values)
    ).rowcount
    if not changed:
        connection.execute(insert(detect_cursor).values(name=name, **values))


def advance_cursor(
    connection: Connection,
    name: str,
    expected: int,
    position: int,
    owner: str,
    lease_until_us: int,
    now_us: int,
    wall_us: int,
) -> bool:
    """Move the cursor from ``expected`` to ``position`` and renew ``owner``'s lease, if it
    still stands at ``expected`` and no other process holds a live lease; False (and
    nothing written) otherwise. One statement: the check and the move together."""
    c = detect_cursor.c
    moved = connection.execute(
        update(detect_cursor)
        .where(
            c.name == name,
            c.position == expected,
            or_(c.owner.is_(None), c.owner == owner, c.lease_until_us <= wall_us),
        )
        .values(position=position, owner=owner, lease_until_us=lease_until_us, updated_us=now_us)
    ).rowcount
    if moved:
        return True
    if expected != 0 or connection.execute(select(c.name).where(c.name == name)).first():
        return False
    connection.execute(
        insert(detect_cursor).values(
            name=name,
            position=position,
            owner=owner,
            lease_until_us=lease_until_us,
            updated_us=now_us,
        )
    )
    return True


def load_states(connection: Connection, subjects: Iterable[str]) -> dict[str, dict[str, Any]]:
    wanted = sorted(set(subjects))
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(wanted), 500):
        rows = connection.execute(
            select(detect_state.c.subject, detect_state.c.value).where(
                detect_state.c.subject.in_(wanted[start : start + 500])
            )
        ).all()
        found.update((subject, json.loads(value)) for subject, value in rows)
    return found


def save_states(
    connection: Connection, states: dict[str, dict[str, Any]] | dict[str, str], now_us: int
) -> None:
    """Replace the state of each subject (given as a dict, or as its JSON already): one
    insert-or-update statement (SQLite and PostgreSQL both have ON CONFLICT)."""
    if not states:
        return
    rows = [
        {"subject": subject, "value": _text(states[subject]), "updated_us": now_us}
        for subject in sorted(states)
    ]
    make = postgresql_insert if connection.dialect.name == "postgresql" else sqlite_insert
    statement = make(detect_state)
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=[detect_state.c.subject],
            set_={"value": statement.excluded.value, "updated_us": statement.excluded.updated_us},
        ),
        rows,
    )


def _text(value: dict[str, Any] | str) -> str:
    return value if isinstance(value, str) else json.dumps(value)
