"""Sealed Parquet segments: covered by the ledger's hashes, so a tampered file, a record
that disagrees with its seal entry, or a tree that disagrees with the segment makes the
scope refuse to run and name the segment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import update

from carevault.bootstrap import Services, build_services
from carevault.config import Settings
from carevault.db import write_transaction
from carevault.incidents import Actor, declare_case, scope_document
from carevault.incidents.scope import segments_for
from carevault.incidents.segments import SegmentRefused, file_digest
from carevault.incidents.tables import ledger_segment
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.notify.scope import parse_scope
from tests.support.staff import add_account

OFFICER = Actor("staff:officer.test")
THIEF = "staff:thief"
START_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z


@pytest.fixture
def sealed(settings: Settings) -> Iterator[Services]:
    """600 reads in the audit ledger (two sealed segments of 256 and a tail); the thief
    read every third one, each of a patient of its own."""
    services = build_services(
        settings.model_copy(update={"incident_segment_entries": 256}),
        create_keys=True,
        migrate=True,
    )
    try:
        add_account(services, "thief")
        events = [
            AuditEvent(
                tag=Tag.FHIR_READ,
                outcome=Outcome.SUCCESS,
                at_us=START_US + n * 1_000_000,
                principal=THIEF if n % 3 == 0 else "staff:nurse",
                resource_type="Patient",
                resource_id=f"p{n}",
                patient_pseudonym=f"ps{n}",
                categories=("identity", "contact"),
            )
            for n in range(600)
        ]
        services.audit.record(events)
        yield services
    finally:
        services.close()


def _scope(services: Services) -> dict[str, object]:
    case = {"title": "t", "accounts": ["thief"], "since": "2026-01-01", "until": "2026-01-02"}
    incident = declare_case(services, OFFICER, case).incident_id
    return scope_document(services, incident, engine="duckdb")


def _first(services: Services) -> tuple[str, Path]:
    segments = segments_for(services)
    first = segments.sealed("audit")[0]
    return first.file_name, segments.directory / first.file_name


def test_scope_reads_sealed_segments_and_the_tail(sealed: Services) -> None:
    document = _scope(sealed)
    confirmed = document["tiers"]["confirmed"]  # type: ignore[index]
    assert len(confirmed) == 200
    assert {line["evidence"][0] % 3 for line in confirmed} == {0}
    assert all(line["patient_record_missing"] for line in confirmed)
    assert parse_scope(document).patient_count(("confirmed",)) == 200
    segments = segments_for(sealed).sealed("audit")
    assert [(s.first_seq, s.end_seq) for s in segments] == [(0, 256), (256, 512)]
    for segment in segments:
        segments_for(sealed).verify_rows(segment)
        path = segments_for(sealed).directory / segment.file_name
        assert path.stat().st_mode & 0o777 == 0o400


def test_a_tampered_segment_is_refused_by_name(sealed: Services) -> None:
    _scope(sealed)
    name, path = _first(sealed)
    table = pq.read_table(path)
    principals = table.column("principal").to_pylist()
    principals[0] = "staff:nurse"  # hide one of the thief's reads
    table = table.set_column(
        table.schema.get_field_index("principal"), "principal", pa.array(principals)
    )
    path.chmod(0o600)
    pq.write_table(table, path)
    with pytest.raises(SegmentRefused, match=name):
        _scope(sealed)
    # Covering the tracks in the manifest too does not help: the seal entry is in the ledger.
    with write_transaction(sealed.engine) as connection:
        connection.execute(
            update(ledger_segment)
            .where(ledger_segment.c.file_name == name)
            .values(sha256=file_digest(path))
        )
    with pytest.raises(SegmentRefused, match=f"{name}: its record does not match"):
        _scope(sealed)


def test_a_missing_segment_is_refused_by_name(sealed: Services) -> None:
    _scope(sealed)
    name, path = _first(sealed)
    path.unlink()
    with pytest.raises(SegmentRefused, match=f"{name}: the file is missing"):
        _scope(sealed)


def test_a_segment_that_disagrees_with_the_ledger_is_refused(sealed: Services) -> None:
    """The tree's hash for the segment's entries is not the root the segment was sealed
    with: whichever is wrong, the scope does not guess."""
    _scope(sealed)
    name, _ = _first(sealed)
    tile = sealed.audit_ledger.store.tables.tile
    with write_transaction(sealed.engine) as connection:
        connection.execute(
            update(tile)
            .where(tile.c.ledger == "audit", tile.c.level == 1, tile.c.tile_index == 0)
            .values(hashes=b"\x00" * 64)
        )
    with pytest.raises(SegmentRefused, match=f"{name}: disagrees with the ledger"):
        _scope(sealed)


def test_a_file_rewritten_with_its_old_size_and_times_is_hashed_again(sealed: Services) -> None:
    """The first scope hashed the files and this process remembers them by identity; a
    byte changed in place, size and modification time put back, still changes the
    status-change time, so the file is hashed again and refused."""
    _scope(sealed)
    name, path = _first(sealed)
    before = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.chmod(0o600)
    path.write_bytes(bytes(data))
    path.chmod(0o400)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )
    with pytest.raises(SegmentRefused, match=f"{name}: the file differs"):
        _scope(sealed)
