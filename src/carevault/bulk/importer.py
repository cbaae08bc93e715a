"""``carevault import``: files of FHIR records loaded through the gate, resumably.

Each file is known by its digest: a second run over the same files resumes after the
last committed batch (nothing twice, nothing missing) and skips files already done.
The report lists, per file, what was accepted and each refused line with its reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from carevault.bulk.journal import Journal
from carevault.bulk.loader import Loader, Part, Position
from carevault.bulk.sources import SourceError, count_items, digest, file_phase, read_items

#: Told the number of items a file holds, then how many more items are done.
Start = Callable[[str, int], None]
Advance = Callable[[int], None]


@dataclass
class FileReport:
    name: str
    file_sha256: str
    items: int
    accepted: int = 0
    rejected: int = 0
    #: Items already done by an earlier run when this one started.
    resumed_from: int = 0
    already_done: bool = False
    error: str | None = None
    rejections: list[tuple[int, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "file": self.name,
            "sha256": self.file_sha256,
            "items": self.items,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "resumed_from": self.resumed_from,
            "already_done": self.already_done,
            **({"error": self.error} if self.error else {}),
            "rejections": [{"line": line, "reason": reason} for line, reason in self.rejections],
        }


@dataclass
class ImportReport:
    files: list[FileReport]
    seconds: float
    #: Records written by this run (not counting earlier runs over the same files).
    written: int

    @property
    def accepted(self) -> int:
        return sum(item.accepted for item in self.files)

    @property
    def rejected(self) -> int:
        return sum(item.rejected for item in self.files)

    @property
    def rate(self) -> float:
        return self.written / self.seconds if self.seconds else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "written_this_run": self.written,
            "seconds": round(self.seconds, 3),
            "resources_per_second": round(self.rate, 1),
            "files": [item.as_json() for item in self.files],
        }


def load_order(paths: Sequence[Path]) -> list[Path]:
    """Files in load order: NDJSON files named after their type by phase (directory,
    patients, their records), others as given."""
    return sorted(paths, key=file_phase)


class Importer:
    def __init__(self, loader: Loader, journal: Journal) -> None:
        self.loader = loader
        self.journal = journal

    def run(
        self,
        paths: Sequence[Path],
        *,
        start: Start | None = None,
        advance: Advance | None = None,
    ) -> ImportReport:
        began = time.perf_counter()
        ordered = load_order(paths)
        reports: list[FileReport | None] = [None] * len(ordered)
        loading: dict[int, tuple[int, Path, str, int, int]] = {}
        #: Files whose bytes were handed to the loader earlier in this run (the same path
        #: given twice, or a copy): the loader takes batches ahead of the writer, so the
        #: journal would show the first as under way and the copy would load its last
        #: batches again. Each is reported, once the run is done, as the first left it.
        handed: set[str] = set()
        again: list[tuple[int, Path, str]] = []
        written = 0

        def parts() -> Iterator[Part]:
            """The files still to load, as the loader takes them (batches ahead of the
            writer); a file already done, or unreadable, is reported at once."""
            for index, path in enumerate(ordered):
                try:
                    sha = digest(path)
                except OSError as error:
                    reports[index] = FileReport(
                        str(path), "", 0, error=f"cannot read the file: {error.strerror}"
                    )
                    continue
                if sha in handed:
                    again.append((index, path, sha))
                    continue
                known = self.journal.progress(sha)
                if known is not None:
                    # Loaded in part or whole by an earlier run: the records it refused to
                    # change, so that the lines naming them (in this file or the next)
                    # are refused as that run would have refused them.
                    self.loader.remember(self.journal.refused_records(sha))
                if known is not None and known.finished:
                    reports[index] = self._report(
                        path, sha, known.items_total, known.items_total, True
                    )
                    continue
                try:
                    total = known.items_total if known is not None else count_items(path, sha)
                except SourceError as error:
                    reports[index] = FileReport(str(path), sha, 0, error=str(error))
                    continue
                except OSError as error:
                    reports[index] = FileReport(
                        str(path), sha, 0, error=f"cannot read the file: {error.strerror}"
                    )
                    continue
                handed.add(sha)
                progress = self.journal.start(sha, str(path), total, self.loader.now_us())
                part = Part(
                    read_items(
                        path,
                        sha,
                        progress.items_done,
                        exact_numbers=not self.loader.reads_again,
                    ),
                    start=progress.items_done,
                    position=Position(sha, self.journal),
                    pending=progress.pending_lines,
                    begin=(
                        None
                        if start is None
                        else partial(start, path.name, total - progress.items_done)
                    ),
                )
                loading[id(part)] = (index, path, sha, total, progress.items_done)
                yield part

        def finished(part: Part) -> None:
            nonlocal written
            index, path, sha, total, resumed_from = loading.pop(id(part))
            self.journal.finish(sha, self.loader.now_us())
            reports[index] = self._report(path, sha, total, resumed_from, False)
            written += part.counts.accepted

        self.loader.load_parts(parts(), advance=advance, finished=finished)
        for index, path, sha in again:
            found = self.journal.progress(sha)
            total = found.items_total if found is not None else 0
            reports[index] = self._report(path, sha, total, total, True)
        return ImportReport(
            [report for report in reports if report is not None],
            time.perf_counter() - began,
            written,
        )

    def _report(
        self, path: Path, sha: str, total: int, resumed_from: int, already: bool
    ) -> FileReport:
        found = self.journal.progress(sha)
        report = FileReport(str(path), sha, total, resumed_from=resumed_from, already_done=already)
        if found is not None:
            report.accepted = found.accepted
            report.rejected = found.rejected
        report.rejections = self.journal.rejections(sha)
        return report
