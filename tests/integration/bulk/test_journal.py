"""The import journal: why each refused line was refused is told to whoever imports,
and sealed at rest, where the tables are what a thief with the database files reads."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from carevault.bootstrap import Services
from carevault.bulk.journal import Journal
from carevault.bulk.tables import bulk_import_rejection
from carevault.db import read_transaction, write_transaction
from tests.integration.bulk.test_import import run_import

#: What a broken or hostile feed may put where an element name or a resource type goes.
NAMED = "ZqxChanTaiMan"


def _refused_lines(tmp_path: Path) -> Path:
    path = tmp_path / "feed.ndjson"
    lines = [
        {"resourceType": "Patient", "id": "p1", NAMED.lower(): "x"},
        {"resourceType": NAMED, "id": "r1"},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def _stored_reasons(services: Services) -> list[tuple[str, int, str]]:
    table = bulk_import_rejection.c
    with read_transaction(services.engine) as connection:
        rows = connection.execute(select(table.file_sha256, table.line, table.reason)).all()
    return [(str(row[0]), int(row[1]), str(row[2])) for row in rows]


def test_a_refused_lines_reason_is_told_but_sealed_at_rest(
    services: Services, tmp_path: Path
) -> None:
    """A reason names what the line held (``Patient.zqxchantaiman: unknown element``):
    the importer is told it, and the table keeps it sealed (adversary round, stop 64: a
    feed's element named after a patient sat in the clear in the database and in every
    backup)."""
    report = run_import(services, [_refused_lines(tmp_path)])
    [file] = report.files
    told = dict(file.rejections)
    assert NAMED.lower() in told[1] and NAMED in told[2], told
    stored = _stored_reasons(services)
    assert len(stored) == 2
    for _, _, reason in stored:
        assert reason.startswith("sealed:1:"), reason
        assert "zqx" not in reason.lower()
    # Read back (a resumed import's report, an ``$import`` job's outcome): as told.
    journal = Journal(services.engine, services.keys)
    assert dict(journal.rejections(stored[0][0])) == told


def test_a_sealed_reason_moved_to_another_line_does_not_open(
    services: Services, tmp_path: Path
) -> None:
    """A reason copied over another line's is not shown as that line's: the report says
    it does not open, and never shows the stored value."""
    run_import(services, [_refused_lines(tmp_path)])
    (digest, first, reason), (_, second, _) = sorted(_stored_reasons(services))
    table = bulk_import_rejection.c
    with write_transaction(services.engine) as connection:
        connection.execute(
            bulk_import_rejection.update()
            .where(table.file_sha256 == digest, table.line == second)
            .values(reason=reason)
        )
    reasons = dict(Journal(services.engine, services.keys).rejections(digest))
    assert NAMED.lower() in reasons[first]
    assert reasons[second] == (
        "(the reason is sealed and could not be opened here: its seal does not match where "
        "it is kept)"
    )
