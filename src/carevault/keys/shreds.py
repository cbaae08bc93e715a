"""The data keys shredded on an erasure, kept beside the keyring, outside the database.

An erasure destroys a patient's wrapped data key in the key store's database. Someone
who may write to that database (a DBA, a restore job) but holds no keyring could put
back the row as a copy taken before the erasure stood, and with the KEK unchanged (no
erasure rotates it) the key would unwrap again: the erased patient's records served as
if never erased (adversary round 69). The key service writes each shredding here first,
in the custodian's part (B7), and refuses to unwrap a key the register names.

One key id (a patient's pseudonym: no one's name) a line, appended with ``O_APPEND`` and
fsynced (a line this short is written whole, so processes shredding at once do not lose
each other's), the file 0600. Read again whenever its size or time changes, so a
shredding by another process counts at this one's next unwrap.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from pathlib import Path

from carevault.keys.files import append_line

#: The register's file name, beside the keyring (``register_path``).
REGISTER = "shredded-keys"


def register_path(keyring: Path) -> Path:
    """Where the register of a home whose keyring is ``keyring`` is kept."""
    return keyring.with_name(REGISTER)


class ShredRegister:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._held: frozenset[str] = frozenset()

    def add(self, key_id: str) -> None:
        """Record ``key_id`` as shredded, durably, before its wrapped key is destroyed."""
        if not key_id:
            raise ValueError("a data key id is one line")
        append_line(self.path, key_id)

    def holds(self, key_ids: Collection[str]) -> set[str]:
        """Which of ``key_ids`` the register names."""
        return set(self._current() & set(key_ids))

    def _current(self) -> frozenset[str]:
        try:
            status = self.path.stat()
        except FileNotFoundError:
            return frozenset()
        stamp = (status.st_size, status.st_mtime_ns)
        with self._lock:
            if stamp != self._stamp:
                lines = self.path.read_text().splitlines()
                self._held = frozenset(line for line in lines if line)
                self._stamp = stamp
            return self._held
