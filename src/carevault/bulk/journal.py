"""How far each import file has got, written in the transaction of each batch."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, delete, insert, select, update

from carevault.bulk.tables import bulk_import_file, bulk_import_rejection
from carevault.db import read_transaction, write_transaction
from carevault.keys.envelope import RecordIntegrityError
from carevault.keys.provider import KeyProviderError
from carevault.keys.service import DataKeyError, KeyService
from carevault.keys.words import SealedWords

#: The data key the reasons of refused lines are sealed under, and who unwraps it.
REASONS_KEY_ID = "import-reasons"
REASONS_PRINCIPAL = "system:import"


@dataclass(frozen=True)
class FileProgress:
    file_sha256: str
    name: str
    items_total: int
    items_done: int
    accepted: int
    rejected: int
    finished: bool
    pending_lines: frozenset[int]


class Journal:
    """Progress of import files, known by the SHA-256 of their bytes.

    Why each refused line was refused is sealed at rest (``keys.words``), bound to the
    file and the line: a reason names what the line held that CareVault does not take
    (``Patient.<element>: unknown element``, a resource type it does not hold), which a
    broken or hostile feed may make a person's name or number, and the tables are what
    a thief with the database files or a backup reads (adversary round, stop 64). With
    encryption off (``keys`` None) reasons are kept as written, as records are."""

    def __init__(self, engine: Engine, keys: KeyService | None) -> None:
        self.engine = engine
        self._reasons = SealedWords(
            keys,
            REASONS_KEY_ID,
            REASONS_PRINCIPAL,
            "import-reasons",
            "carevault-import-reasons/1",
        )

    def progress(self, file_sha256: str) -> FileProgress | None:
        with read_transaction(self.engine) as connection:
            row = connection.execute(
                select(bulk_import_file).where(bulk_import_file.c.file_sha256 == file_sha256)
            ).first()
        if row is None:
            return None
        pending = frozenset(int(n) for n in (row.pending_lines or "").split(",") if n)
        return FileProgress(
            row.file_sha256,
            row.name,
            row.items_total,
            row.items_done,
            row.accepted,
            row.rejected,
            row.finished_us is not None,
            pending,
        )

    def start(self, file_sha256: str, name: str, items_total: int, now_us: int) -> FileProgress:
        """The file's progress, begun now if it had none."""
        with write_transaction(self.engine) as connection:
            exists = connection.execute(
                select(bulk_import_file.c.file_sha256).where(
                    bulk_import_file.c.file_sha256 == file_sha256
                )
            ).first()
            if exists is None:
                connection.execute(
                    insert(bulk_import_file).values(
                        file_sha256=file_sha256,
                        name=name[-400:],
                        items_total=items_total,
                        items_done=0,
                        accepted=0,
                        rejected=0,
                        started_us=now_us,
                        updated_us=now_us,
                    )
                )
        found = self.progress(file_sha256)
        assert found is not None  # noqa: S101 - inserted above
        return found

    def advance(
        self,
        connection: Connection,
        file_sha256: str,
        *,
        now_us: int,
        accepted: int,
        rejections: Mapping[int, str],
        items_done: int | None,
        pending_lines: frozenset[int] = frozenset(),
        records: Mapping[int, tuple[str, str]] | None = None,
    ) -> None:
        """Inside a batch's transaction: ``accepted`` more records, these refusals, and
        either the batch done (``items_done``) or these of its lines committed so far.
        ``records``: for refused lines whose record the import may not change, that
        record (type, id), kept for a resumed run (``refused_records``)."""
        values: dict[str, object] = {
            "accepted": bulk_import_file.c.accepted + accepted,
            "rejected": bulk_import_file.c.rejected + len(rejections),
            "updated_us": now_us,
        }
        if items_done is not None:
            values["items_done"] = items_done
            values["pending_lines"] = None
        else:
            values["pending_lines"] = ",".join(str(n) for n in sorted(pending_lines))
        connection.execute(
            update(bulk_import_file)
            .where(bulk_import_file.c.file_sha256 == file_sha256)
            .values(**values)
        )
        if rejections:
            connection.execute(
                insert(bulk_import_rejection),
                [
                    {
                        "file_sha256": file_sha256,
                        "line": line,
                        "reason": self._reasons.seal(f"{file_sha256}|{line}", reason[:2000]),
                        "record": _named(records.get(line)) if records else None,
                    }
                    for line, reason in sorted(rejections.items())
                ],
            )

    def finish(self, file_sha256: str, now_us: int) -> None:
        """Mark the file done, if every item of it is."""
        with write_transaction(self.engine) as connection:
            connection.execute(
                update(bulk_import_file)
                .where(
                    bulk_import_file.c.file_sha256 == file_sha256,
                    bulk_import_file.c.items_done >= bulk_import_file.c.items_total,
                )
                .values(finished_us=now_us, updated_us=now_us)
            )

    def rejections(self, file_sha256: str, limit: int = 1000) -> list[tuple[int, str]]:
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                select(bulk_import_rejection.c.line, bulk_import_rejection.c.reason)
                .where(bulk_import_rejection.c.file_sha256 == file_sha256)
                .order_by(bulk_import_rejection.c.line)
                .limit(limit)
            ).all()
        return [(row.line, self._reason(file_sha256, row.line, row.reason)) for row in rows]

    def _reason(self, file_sha256: str, line: int, stored: str) -> str:
        """A refused line's reason as stored: one whose seal does not open (moved from
        another line, altered, the key service out of reach) says so, never its stored
        value, rather than fail the whole report."""
        try:
            return self._reasons.open(
                f"{file_sha256}|{line}", stored, where=f"line {line}'s reason"
            )
        except RecordIntegrityError:
            why = "its seal does not match where it is kept"
        except (KeyProviderError, DataKeyError) as error:
            why = type(error).__name__
        return f"(the reason is sealed and could not be opened here: {why})"

    def refused_records(self, file_sha256: str) -> set[tuple[str, str]]:
        """The records (type, id) an earlier run over the file refused to change, or
        refused for naming one (``advance``'s ``records``)."""
        rejections = bulk_import_rejection.c
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                select(rejections.record).where(
                    rejections.file_sha256 == file_sha256, rejections.record.is_not(None)
                )
            ).all()
        found: set[tuple[str, str]] = set()
        for (record,) in rows:
            resource_type, _, resource_id = str(record).partition("/")
            found.add((resource_type, resource_id))
        return found

    def forget(self, connection: Connection, file_sha256: str) -> None:
        """Delete the file's progress and its refusals (their reasons), in the caller's
        transaction: a job's report, once it has been kept for the set time."""
        connection.execute(
            delete(bulk_import_rejection).where(bulk_import_rejection.c.file_sha256 == file_sha256)
        )
        connection.execute(
            delete(bulk_import_file).where(bulk_import_file.c.file_sha256 == file_sha256)
        )


def _named(record: tuple[str, str] | None) -> str | None:
    return None if record is None else f"{record[0]}/{record[1]}"[:200]
