"""The manifest of a backup: what it holds, each file's SHA-256, and the ledger heads it
carries with their witnessed checkpoints."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from carevault.keys.files import write_private

FORMAT = "carevault-backup/1"
MANIFEST = "manifest.json"


class BackupInvalid(ValueError):
    """The backup is incomplete, altered or of another format: it is not restored."""


@dataclass(frozen=True)
class LedgerHead:
    """A ledger's size and root in the copy, and the checkpoint note signed for them."""

    size: int
    root: str
    note: str
    witnessed_by: tuple[str, ...]


@dataclass
class Manifest:
    created: str
    backend: str
    key_provider: str
    ledgers: dict[str, LedgerHead]
    #: Files of the data part, relative to the backup directory, and their SHA-256.
    files: dict[str, str]
    #: Files of the key part, relative to the keys directory, and their SHA-256.
    key_files: dict[str, str]
    #: The KEK versions that the copied data keys are wrapped with.
    kek_versions: list[int]
    schema: str | None = None
    format: str = FORMAT
    notes: list[str] = field(default_factory=list)

    def write(self, directory: Path) -> None:
        document = asdict(self)
        data = json.dumps(document, indent=2, sort_keys=True).encode()
        write_private(directory / MANIFEST, data)

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        path = directory / MANIFEST
        try:
            document: dict[str, Any] = json.loads(path.read_text())
        except FileNotFoundError:
            raise BackupInvalid(f"{path} not found: not a CareVault backup") from None
        except (OSError, ValueError) as error:
            raise BackupInvalid(f"{path} cannot be read: {type(error).__name__}") from None
        if document.get("format") != FORMAT:
            raise BackupInvalid(f"{path} is not a {FORMAT} manifest")
        try:
            ledgers = {
                name: LedgerHead(
                    int(head["size"]),
                    str(head["root"]),
                    str(head["note"]),
                    tuple(head["witnessed_by"]),
                )
                for name, head in document["ledgers"].items()
            }
            return cls(
                created=str(document["created"]),
                backend=str(document["backend"]),
                key_provider=str(document["key_provider"]),
                ledgers=ledgers,
                files={str(k): str(v) for k, v in document["files"].items()},
                key_files={str(k): str(v) for k, v in document["key_files"].items()},
                kek_versions=[int(v) for v in document["kek_versions"]],
                schema=document.get("schema"),
                notes=[str(note) for note in document.get("notes", [])],
            )
        except (KeyError, TypeError, ValueError) as error:
            raise BackupInvalid(f"{path} is incomplete: {type(error).__name__}") from None


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_files(directory: Path, expected: dict[str, str], what: str) -> None:
    """Every file of ``expected`` is in ``directory`` with its recorded digest."""
    for name, digest in sorted(expected.items()):
        path = directory / name
        if not path.is_file():
            raise BackupInvalid(f"{what}: {name} is missing from {directory}")
        if file_digest(path) != digest:
            raise BackupInvalid(f"{what}: {name} does not match its digest (altered or damaged)")
