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

from sqlalchemy import Connection, delete, insert, select, update

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
    """Replace the state of each subject (given as a dict, or as its JSON already)."""
    if not states:
        return
    subjects = sorted(states)
    for start in range(0, len(subjects), 500):
        connection.execute(
            delete(detect_state).where(detect_state.c.subject.in_(subjects[start : start + 500]))
        )
    connection.execute(
        insert(detect_state),
        [
            {"subject": subject, "value": _text(states[subject]), "updated_us": now_us}
            for subject in subjects
        ],
    )


def _text(value: dict[str, Any] | str) -> str:
    return value if isinstance(value, str) else json.dumps(value)
