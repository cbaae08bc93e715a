"""Job files at rest (export output, ``$import`` bodies): sealed with the job's own data key.

Each job has a data key of its own, made and wrapped by the key service like a
patient's (so fetching it is in the unwrap log); a file is sealed whole with AES-GCM
under it, bound by its additional data to the job, batch and resource type, so a file
cannot be swapped for another. Deleting a job's files also shreds its key: a copy of
the files taken before they were deleted stays unreadable.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from carevault.keys.envelope import Envelope
from carevault.keys.service import KeyService

KEY_KIND = "export"
_PURPOSE = "bulk-export"


def file_name(batch: int, resource_type: str) -> str:
    return f"{batch:06d}-{resource_type}.ndjson"


def deleted_file_name(batch: int) -> str:
    """The name of a batch's file of deletions (no resource type is spelled in lower
    case, so it is no output file's name)."""
    return file_name(batch, "deleted")


def released_file_name(batch: int) -> str:
    """The name of a batch's sealed note of whose records each of its files holds (read
    at each download to name them in the ledger; never listed in a manifest, never
    served)."""
    return file_name(batch, "released")


class SealedFiles:
    """The sealed files of every job, one directory per job under ``root``. ``kind``
    names the job's data keys (and binds each file to its kind of job); ``purpose`` is
    what the unwrap log says a key was fetched for."""

    def __init__(
        self,
        root: Path,
        keys: KeyService | None,
        envelope: Envelope,
        *,
        kind: str = KEY_KIND,
        purpose: str = _PURPOSE,
    ) -> None:
        self.root = root
        self.keys = keys
        self.envelope = envelope
        self.kind = kind
        self.purpose = purpose

    def _aad(self, job_id: str, name: str) -> bytes:
        return f"{self.kind}|{job_id}|{name}".encode()

    def _dir(self, job_id: str) -> Path:
        return self.root / job_id

    def make_key(self, key_id: str) -> None:
        if self.keys is not None and self.envelope.encrypted:
            self.keys.create_data_key(key_id, self.kind)

    def _key(self, key_id: str, principal: str) -> bytes | None:
        if self.keys is None or not self.envelope.encrypted:
            return None
        return self.keys.data_keys([key_id], principal=principal, purpose=self.purpose)[key_id]

    def write(self, job_id: str, key_id: str, principal: str, name: str, body: bytes) -> int:
        """Seal and write one file, durable before it returns; its size on disk."""
        directory = self._dir(job_id)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        sealed = self.envelope.seal(self._key(key_id, principal), self._aad(job_id, name), body)
        final = directory / f"{name}.sealed"
        temporary = directory / f".{name}.partial"
        with open(temporary, "wb") as handle:
            handle.write(sealed)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, final)
        return len(sealed)

    def read(self, job_id: str, key_id: str, principal: str, name: str) -> bytes:
        """The plaintext NDJSON of one file; FileNotFoundError if it is gone."""
        sealed = (self._dir(job_id) / f"{name}.sealed").read_bytes()
        return self.envelope.open(
            self._key(key_id, principal),
            self._aad(job_id, name),
            sealed,
            where=f"{self.kind} {job_id} file {name}",
        )

    def discard(self, job_id: str, names: list[str]) -> None:
        """Remove files written for a batch that did not commit."""
        for name in names:
            (self._dir(job_id) / f"{name}.sealed").unlink(missing_ok=True)

    def delete(self, job_id: str, key_id: str) -> None:
        """Every file of the job, and its key."""
        shutil.rmtree(self._dir(job_id), ignore_errors=True)
        if self.keys is not None and self.envelope.encrypted:
            self.keys.shred(key_id)

    def exists(self, job_id: str) -> bool:
        return self._dir(job_id).exists()


#: The export's name for its files (``SealedFiles`` of kind ``export``).
ExportFiles = SealedFiles
