"""Segments are sealed as the ledger grows, not when a scope runs: a scope at incident time
reads sealed segments plus a tail shorter than one segment."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from carevault.bootstrap import Services, build_services
from carevault.config import Settings
from carevault.incidents.query import Window
from carevault.incidents.scope import open_segments
from carevault.incidents.sealer import SEALER, SegmentSealer
from carevault.incidents.segments import segments_for
from carevault.ledger.events import AuditEvent, Outcome, Tag

START_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
SIZE = 256


def _reads(first: int, count: int) -> list[AuditEvent]:
    return [
        AuditEvent(
            tag=Tag.FHIR_READ,
            outcome=Outcome.SUCCESS,
            at_us=START_US + n * 1_000_000,
            principal="staff:nurse",
            resource_type="Patient",
            resource_id=f"p{n}",
            patient_pseudonym=f"ps{n}",
            categories=("identity",),
        )
        for n in range(first, first + count)
    ]


@pytest.fixture
def small(settings: Settings) -> Iterator[Services]:
    services = build_services(
        settings.model_copy(update={"incident_segment_entries": SIZE}),
        create_keys=True,
        migrate=True,
    )
    try:
        yield services
    finally:
        services.close()


def test_each_round_seals_what_is_complete_and_nothing_twice(small: Services) -> None:
    sealer = SegmentSealer(segments_for(small), seconds=0)
    small.audit.record(_reads(0, 200))
    assert sealer.seal_due() == []  # less than one segment: nothing to seal
    small.audit.record(_reads(200, 400))
    done = sealer.seal_due()
    assert [(s.ledger, s.first_seq, s.end_seq) for s in done] == [
        ("audit", 0, SIZE),
        ("audit", SIZE, 2 * SIZE),
    ]
    # Each seal is an entry of the audit ledger itself, made by the sealer.
    for segment in done:
        entry = small.audit_ledger.store.entry(segment.seal_seq)
        assert entry is not None
        event = AuditEvent.from_canonical(entry)
        assert (event.tag, event.principal) == (Tag.SEGMENT_SEALED, SEALER)
    assert sealer.seal_due() == []
    assert sealer.sealed == 2


def test_a_scope_then_reads_the_sealed_segments_and_only_a_short_tail(small: Services) -> None:
    small.audit.record(_reads(0, 700))
    segments = segments_for(small)
    SegmentSealer(segments, seconds=0).seal_due()
    head = small.audit_ledger.store.head()[0]
    files, tail_start = segments.usable("audit", START_US, None)
    assert [path.name for path in files] == [s.file_name for s in segments.sealed("audit")]
    assert 0 <= head - tail_start < SIZE
    # The scope seals nothing more: the sealer did it before the incident.
    before = len(segments.sealed("audit"))
    query = open_segments(segments, Window(START_US, None))
    try:
        assert query.addresses() == []
    finally:
        query.close()
    assert len(segments.sealed("audit")) == before


def test_a_running_server_seals_in_the_background(small: Services) -> None:
    sealer = SegmentSealer(segments_for(small), seconds=0.05)
    sealer.start()
    try:
        small.audit.record(_reads(0, 300))
        done = threading.Event()
        for _ in range(400):  # up to ~20 s on a loaded machine; not a timing assertion
            if segments_for(small).sealed("audit"):
                done.set()
                break
            threading.Event().wait(0.05)
        assert done.is_set(), "the background sealer sealed nothing"
    finally:
        sealer.stop()
    assert [s.end_seq for s in segments_for(small).sealed("audit")] == [SIZE]


def test_start_background_runs_a_sealer_on_the_checkpoint_period(
    settings: Settings,
) -> None:
    services = build_services(
        settings.model_copy(update={"incident_segment_entries": SIZE, "checkpoint_seconds": 3600}),
        create_keys=True,
        migrate=True,
    )
    try:
        services.start_background()
        assert services.sealer is not None
        assert services.sealer.seconds == 3600
        assert services.sealer._thread.is_alive()  # noqa: SLF001
    finally:
        services.close()
    assert not services.sealer._thread.is_alive()  # noqa: SLF001


def test_sealers_of_several_workers_seal_each_segment_once(small: Services) -> None:
    """Every server worker runs a sealer on the same period: racing on the same segments,
    they leave one file and one seal per segment, and a scope accepts them."""
    small.audit.record(_reads(0, 3 * SIZE))
    sealers = [SegmentSealer(segments_for(small), seconds=0) for _ in range(3)]
    failures: list[BaseException] = []

    def run(sealer: SegmentSealer) -> None:
        try:
            sealer.seal_due()
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            failures.append(error)

    threads = [threading.Thread(target=run, args=(sealer,)) for sealer in sealers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    segments = segments_for(small)
    sealed = segments.sealed("audit")
    assert [(s.first_seq, s.end_seq) for s in sealed] == [
        (n * SIZE, (n + 1) * SIZE) for n in range(3)
    ]
    assert sum(sealer.sealed for sealer in sealers) == 3
    assert sorted(p.name for p in segments.directory.iterdir()) == [s.file_name for s in sealed]
    for segment in sealed:
        segments.verify_rows(segment)


def test_a_leftover_file_is_replaced_by_the_ledgers_rows_when_sealing(small: Services) -> None:
    """A file already where a segment goes (an interrupted seal, or planted before the
    seal) is not trusted: the seal writes the rows' own file and seals that."""
    small.audit.record(_reads(0, SIZE))
    segments = segments_for(small)
    segments.directory.mkdir(parents=True, exist_ok=True)
    name = f"audit-{0:012d}-{SIZE:012d}.parquet"
    (segments.directory / name).write_bytes(b"not the ledger's rows")
    (done,) = SegmentSealer(segments, seconds=0).seal_due()
    assert done.file_name == name
    segments.verify_rows(done)
