"""records_0040: every directory record without a ``directory_written`` row (written
before records_0034, whose writer this database never knew) is kept as of an unknown
writer; rooms already kept, patients' records, organizations and practitioners are left
as they are; the downgrade removes only what it added. On SQLite and PostgreSQL; what it
is for is in tests/integration/importjobs/test_adversary_round62.py."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from carevault.migrations import downgrade, upgrade
from carevault.migrations.records.versions import r0040_directory_unknown

pytestmark = [pytest.mark.fresh_home, pytest.mark.postgres]

REVISION = r0040_directory_unknown.revision
BEFORE = r0040_directory_unknown.down_revision
UNKNOWN = r0040_directory_unknown.UNKNOWN


def _rows(engine: Engine) -> set[tuple[str, str, str, int]]:
    with engine.connect() as connection:
        found = connection.execute(
            text("SELECT resource_type, resource_id, principal, written_us FROM directory_written")
        ).all()
    return {(str(a), str(b), str(c), int(d)) for a, b, c, d in found}


def test_directory_records_of_no_known_writer_are_kept_as_written_by_someone_unknown(
    engine: Engine,
) -> None:
    upgrade("records", engine, BEFORE)
    heads = [
        (1, "Location", "ward-m", None),  # a desk's room from before records_0034
        (2, "PractitionerRole", "role-1", None),
        (3, "Location", "ward-k", None),  # kept already: a desk wrote it since
        (4, "Organization", "tm", None),
        (5, "Practitioner", "dr-1", None),
        (6, "Observation", "obs-1", "p1"),  # a patient's record
    ]
    with engine.begin() as connection:
        for row_id, kind, ident, pseudonym in heads:
            connection.execute(
                text(
                    "INSERT INTO resource_head (row_id, resource_type, resource_id,"
                    " version_id, last_updated_us, deleted, patient_pseudonym)"
                    " VALUES (:row, :kind, :id, 1, :at, false, :pseudonym)"
                ),
                {"row": row_id, "kind": kind, "id": ident, "at": 100 + row_id,
                 "pseudonym": pseudonym},
            )  # fmt: skip
        connection.execute(
            text("INSERT INTO directory_written VALUES ('Location', 'ward-k', 'staff:desk-tm', 7)")
        )
    upgrade("records", engine, REVISION)
    assert _rows(engine) == {
        ("Location", "ward-m", UNKNOWN, 101),
        ("PractitionerRole", "role-1", UNKNOWN, 102),
        ("Location", "ward-k", "staff:desk-tm", 7),
    }
    downgrade("records", engine, BEFORE)
    assert _rows(engine) == {("Location", "ward-k", "staff:desk-tm", 7)}
