"""The containment measures started and released, kept beside the keyring, outside the
database.

Containment rows are sealed (adversary round 69), but a seal speaks only of a row that
is there: someone who may write to the database but holds no key could delete the row
of PHI-offline, or edit the columns of an active one, and a process started after the
edit had nothing left to tell it the measure was ever on (review of round 69). So each
measure is written here too, when it starts and when it is released, in the custodian's
part (B7), as the erasures are (``keys.shreds``): a process finding a measure here with
no sealed release in the database keeps it on (``containment.state``).

One JSON object a line (never the officer's reason: the mode, its target, who started it
and when), appended with ``O_APPEND`` and fsynced, the file 0600. Read again whenever its
size or time changes.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

from carevault.keys.files import append_line

#: The register's file name, beside the keyring (``measures_path``).
MEASURES = "containment-measures"


def measures_path(keyring: Path) -> Path:
    """Where the measures' register of a home whose keyring is ``keyring`` is kept."""
    return keyring.with_name(MEASURES)


@dataclass(frozen=True)
class Measure:
    """A measure as the register names it: its row's id and what it was started as."""

    containment_id: int
    mode: str
    target: str | None
    started_us: int
    started_by: str

    @property
    def key(self) -> tuple[int, int]:
        """A measure is its id and start: an id a SQLite table gave again after its rows
        were deleted names another measure."""
        return (self.containment_id, self.started_us)


class MeasureRegister:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._open: tuple[Measure, ...] = ()

    def started(self, measure: Measure) -> None:
        """Record ``measure`` as started, durably."""
        append_line(
            self.path,
            json.dumps(
                {
                    "started": measure.containment_id,
                    "mode": measure.mode,
                    "target": measure.target,
                    "started_us": measure.started_us,
                    "started_by": measure.started_by,
                }
            ),
        )

    def released(self, containment_id: int, started_us: int, released_us: int) -> None:
        """Record the measure ``(containment_id, started_us)`` as released, durably."""
        append_line(
            self.path,
            json.dumps(
                {"released": containment_id, "started_us": started_us, "released_us": released_us}
            ),
        )

    def open_measures(self) -> tuple[Measure, ...]:
        """The measures started and not released, by the register. A line that does not
        read (a write cut short by a crash) is skipped."""
        try:
            status = self.path.stat()
        except FileNotFoundError:
            return ()
        stamp = (status.st_size, status.st_mtime_ns)
        with self._lock:
            if stamp != self._stamp:
                self._open = _open_measures(self.path.read_text().splitlines())
                self._stamp = stamp
            return self._open


def _open_measures(lines: list[str]) -> tuple[Measure, ...]:
    started: dict[tuple[int, int], Measure] = {}
    released: set[tuple[int, int]] = set()
    for line in lines:
        try:
            entry = json.loads(line)
            if "started" in entry:
                measure = Measure(
                    int(entry["started"]),
                    str(entry["mode"]),
                    None if entry["target"] is None else str(entry["target"]),
                    int(entry["started_us"]),
                    str(entry["started_by"]),
                )
                started[measure.key] = measure
            else:
                released.add((int(entry["released"]), int(entry["started_us"])))
        except (ValueError, KeyError, TypeError):
            continue
    return tuple(measure for key, measure in started.items() if key not in released)
