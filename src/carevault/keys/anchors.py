"""What the database may not be trusted to say about itself, kept beside the keyring.

Rows of policy state are sealed with a key the database does not hold (adversary round
69). Rows written before sealing began have no seal, and whether sealing has begun for a
table is exactly what someone who may write to the database would want to rewrite (strip
a seal, and the row would pass for one from before). So the note that a table's rows are
all sealed lives here, in the custodian's part: one table name a line, appended and
fsynced, the file 0600.
"""

from __future__ import annotations

from pathlib import Path

from carevault.keys.files import append_line

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
        append_line(self.path, table)
