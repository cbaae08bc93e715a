"""Bulk import through the gate: every record read back as sent, refusals by line with
their reasons, one audit entry per patient per batch, nothing loaded twice."""

from __future__ import annotations

import json
from collections import Counter
from concurrent.futures import Future
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from carevault.access.tables import care_relationship, patient_registration
from carevault.bootstrap import Services
from carevault.bulk.checking import Checker, Checks
from carevault.bulk.importer import Importer, ImportReport
from carevault.bulk.journal import Journal
from carevault.bulk.loader import AHEAD, Loader
from carevault.bulk.sources import bundles_to_ndjson, read_items
from carevault.domain.policy import Actor
from carevault.domain.roles import Role
from carevault.fhir import jsonio
from carevault.fhir.content import DEFAULT_LIMITS
from carevault.fhir.derived import derive
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate import AccessDenied, Caller
from carevault.vault.tables import patient_kin, patient_kin_replaced, resource_head, search_token
from carevault.vault.writer import Put, search_tokens
from tests.support.synthea import BUNDLES as SYNTHEA_BUNDLES
from tests.support.tokens import indexed_tokens, listed_tokens

BUNDLES = SYNTHEA_BUNDLES[:3]
READER = Caller(principal="system:test")


def run_import(services: Services, paths: list[Path], batch_size: int = 2000) -> ImportReport:
    loader = Loader(services.gate, services.now_us, checker=_checker(), batch_size=batch_size)
    return Importer(loader, Journal(services.engine, services.keys)).run(paths)


def _checker() -> Checker:
    return Checker(DEFAULT_LIMITS, workers=0)


def _without_meta(body: bytes | dict[str, Any]) -> dict[str, Any]:
    parsed = jsonio.load(body) if isinstance(body, bytes) else dict(body)
    parsed.pop("meta", None)
    return parsed


def _audit(services: Services) -> list[dict[str, Any]]:
    return [json.loads(data) for _, data in services.audit_ledger.store.entries()]


def test_synthea_bundles_load_and_every_record_reads_back_as_sent(
    services: Services, tmp_path: Path
) -> None:
    report = run_import(services, BUNDLES)
    sent = [item for path in BUNDLES for item in read_items(path, "x") if item.resource]
    assert report.rejected == 0
    assert report.accepted == len(sent) == report.written
    for item in sent:
        resource = item.resource
        assert resource is not None
        opened = services.gate.read(
            READER, RESOURCE_TYPES[resource["resourceType"]], resource["id"]
        )
        assert opened.body is not None
        # Decimals included: the text of every value is as sent.
        assert jsonio.dumps(_without_meta(opened.body)) == jsonio.dumps(_without_meta(resource))


def test_one_audit_entry_per_patient_of_each_batch_naming_every_record(
    services: Services,
) -> None:
    before = services.audit_ledger.store.head()[0]
    report = run_import(services, BUNDLES[:2], batch_size=40)
    entries = [
        e
        for e in _audit(services)[before:]
        if e["tag"] == "fhir:bulk:imported" and e["outcome"] == "success"
    ]
    named = Counter(
        (kind, ident.split("/_history/")[0])
        for entry in entries
        for kind, idents in entry["detail"]["written"].items()
        for ident in idents
    )
    assert sum(named.values()) == report.accepted
    assert max(named.values()) == 1
    for entry in entries:
        assert entry["principal"] == "system:import"
        # One patient per entry; records of no patient (the directory) share their own.
        if "patient_pseudonym" in entry:
            assert entry["resource_type"] == "Patient"
    per_batch = Counter(entry.get("patient_pseudonym") for entry in entries)
    batches = -(-report.accepted // 40)
    assert len(entries) <= batches * 2
    assert all(count <= batches for count in per_batch.values())


def test_visits_loaded_by_the_system_register_the_patient_at_their_clinic(
    services: Services,
) -> None:
    run_import(services, BUNDLES[:1])
    with services.engine.connect() as connection:
        registered = connection.execute(
            select(func.count()).select_from(patient_registration)
        ).scalar_one()
    assert registered >= 1
    entries = [e for e in _audit(services) if e["tag"] == "fhir:bulk:imported"]
    assert any(e["detail"].get("registered") for e in entries)
    assert any(e["detail"].get("care", {}).get("opens") for e in entries)


def _care_opened_by(services: Services, resource_id: str) -> tuple[int, Counter[tuple[Any, ...]]]:
    """The version of an Encounter, and the care relationships its row opens."""
    with services.engine.connect() as connection:
        row_id, version = connection.execute(
            select(resource_head.c.row_id, resource_head.c.version_id).where(
                resource_head.c.resource_type == "Encounter",
                resource_head.c.resource_id == resource_id,
            )
        ).one()
        rows = connection.execute(
            select(
                care_relationship.c.clinic_id,
                care_relationship.c.practitioner_token,
                care_relationship.c.valid_from_us,
                care_relationship.c.valid_until_us,
            ).where(care_relationship.c.source_row_id == row_id)
        ).all()
    return version, Counter(tuple(row) for row in rows)


@pytest.mark.parametrize("change", ["moved", "voided"])
def test_a_visit_loaded_twice_in_one_batch_opens_only_what_its_last_version_opens(
    services: Services, tmp_path: Path, change: str
) -> None:
    # The care relationships of a batch are inserted together before its commit: the
    # second version of a record in the same batch must replace the first's, not add to
    # them, whether it opens other ones (moved) or none (voided).
    files = bundles_to_ndjson(BUNDLES[:1], tmp_path / "ndjson")
    encounters = tmp_path / "ndjson" / "Encounter.ndjson"
    lines = encounters.read_bytes().splitlines()
    first = jsonio.parse(lines[0])
    last = (
        {
            **first,
            "period": {"start": "2001-02-03T09:00:00+00:00", "end": "2001-02-03T10:00:00+00:00"},
        }
        if change == "moved"
        else {**first, "status": "cancelled"}
    )
    encounters.write_bytes(b"\n".join([*lines, jsonio.dumps(last)]) + b"\n")
    # Each version under another id, alone in a later file: what the last one opens is
    # what the twice-loaded visit must open.
    alone = tmp_path / "alone.ndjson"
    alone.write_bytes(
        jsonio.dumps({**first, "id": "the-first-version-alone"})
        + b"\n"
        + jsonio.dumps({**last, "id": "the-last-version-alone"})
        + b"\n"
    )
    report = run_import(services, [*files, alone])
    assert report.rejected == 0
    version, twice = _care_opened_by(services, first["id"])
    _, first_alone = _care_opened_by(services, "the-first-version-alone")
    _, last_alone = _care_opened_by(services, "the-last-version-alone")
    assert version == 2
    assert first_alone and first_alone != last_alone
    assert twice == last_alone


def test_refused_lines_are_reported_with_reasons_and_the_rest_loads(
    services: Services, tmp_path: Path
) -> None:
    patient = {"resourceType": "Patient", "id": "p1", "birthDate": "1980-02-03"}
    good = {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": {"text": "weight"},
        "subject": {"reference": "Patient/p1"},
        "valueQuantity": {"value": 72.50, "unit": "kg"},
    }
    orphan = {**good, "id": "o2", "subject": {"reference": "Patient/nobody"}}
    lines = [
        json.dumps(patient),
        "{not json",
        json.dumps({"resourceType": "Basic", "id": "b1", "code": {"text": "x"}}),
        json.dumps({"resourceType": "Patient", "id": "p2", "birthDate": "yesterday"}),
        json.dumps(orphan),
        json.dumps(good).replace("72.5", "72.50"),
    ]
    source = tmp_path / "mixed.ndjson"
    source.write_text("\n".join(lines) + "\n")
    report = run_import(services, [source])
    [file] = report.files
    assert (file.accepted, file.rejected) == (2, 4)
    reasons = dict(file.rejections)
    assert set(reasons) == {2, 3, 4, 5}
    assert "not JSON" in reasons[2]
    assert "does not hold Basic" in reasons[3]
    assert "birthDate" in reasons[4]
    assert "Patient/nobody" in reasons[5]
    # No value of a refused record in its reason.
    assert "yesterday" not in reasons[4]
    opened = services.gate.read(READER, RESOURCE_TYPES["Observation"], "o1")
    assert opened.body is not None and b'"value":72.50' in opened.body


@pytest.mark.parametrize("length", [65, 200])
def test_a_line_whose_id_is_no_fhir_id_is_refused_and_the_rest_loads(
    services: Services, tmp_path: Path, length: int
) -> None:
    """Hole: an NDJSON line kept its own id unchecked for length (Bundle entries were
    checked): on SQLite a 65-character id loaded a record no REST request can name
    (read, update and delete answer 400); on PostgreSQL it overflowed the id column
    (64 characters) and stopped the whole import with a database error."""
    long_id = "x" * length
    lines = [
        json.dumps({"resourceType": "Patient", "id": long_id, "birthDate": "1980-02-03"}),
        json.dumps({"resourceType": "Patient", "id": "p1", "birthDate": "1980-02-03"}),
    ]
    source = tmp_path / "Patient.ndjson"
    source.write_text("\n".join(lines) + "\n")
    report = run_import(services, [source])
    [file] = report.files
    assert (file.accepted, file.rejected) == (1, 1), file.rejections
    [(line, reason)] = file.rejections
    assert line == 1 and "id" in reason and long_id not in reason
    assert services.gate.read(READER, RESOURCE_TYPES["Patient"], "p1").body is not None


def test_importing_the_same_files_again_writes_nothing(services: Services) -> None:
    first = run_import(services, BUNDLES[:1])
    size = services.audit_ledger.store.head()[0]
    second = run_import(services, BUNDLES[:1])
    assert second.written == 0
    assert second.files[0].already_done
    assert second.accepted == first.accepted
    assert services.audit_ledger.store.head()[0] == size
    with services.engine.connect() as connection:
        versions = connection.execute(select(func.max(resource_head.c.version_id))).scalar_one()
    assert versions == 1


def test_a_load_of_new_patients_replaces_no_kin_tokens(services: Services) -> None:
    # Only an update or deletion of a Patient keeps the tokens it took away: a load of
    # new patients writes their kin rows in one executemany and nothing more.
    for _ in range(2):  # and again: nothing is written twice
        run_import(services, BUNDLES[:2])
        with services.engine.connect() as connection:
            kin = connection.execute(select(func.count()).select_from(patient_kin)).scalar_one()
            replaced = connection.execute(
                select(func.count()).select_from(patient_kin_replaced)
            ).scalar_one()
        assert kin > 0
        assert replaced == 0


def test_ndjson_per_type_loads_like_the_bundles(services: Services, tmp_path: Path) -> None:
    files = bundles_to_ndjson(BUNDLES, tmp_path / "ndjson")
    assert files[0].name == "Organization.ndjson"
    report = run_import(services, files, batch_size=500)
    assert report.rejected == 0
    with services.engine.connect() as connection:
        heads = connection.execute(select(func.count()).select_from(resource_head)).scalar_one()
    assert heads == report.accepted


def test_files_are_told_to_the_progress_in_load_order_and_reported_in_it(
    services: Services, tmp_path: Path
) -> None:
    """The next file's first batch is checked while the previous file's last is written:
    the progress still hears of each file only once the previous one is written, every
    item once; the report keeps load order, with a file already done and an unreadable
    one in their places."""
    files = bundles_to_ndjson(BUNDLES[:2], tmp_path / "ndjson")
    run_import(services, files[:1], batch_size=7)
    broken = tmp_path / "ndjson" / "Zz.json"
    broken.write_bytes(b"[not json")
    loader = Loader(services.gate, services.now_us, checker=_checker(), batch_size=7)
    heard: list[tuple[str, int]] = []
    report = Importer(loader, Journal(services.engine, services.keys)).run(
        [*files, broken],
        start=lambda name, count: heard.append((name, count)),
        advance=lambda count: heard.append(("+", count)),
    )
    told: list[str] = []
    counted: dict[str, int] = {}
    for name, count in heard:
        if name != "+":
            told.append(name)
            counted[name] = 0
        else:
            counted[told[-1]] += count
    assert told == [path.name for path in files[1:]]
    assert report.files[0].already_done
    assert [Path(item.name).name for item in report.files] == [
        *(path.name for path in files),
        broken.name,
    ]
    assert report.files[-1].error is not None
    for path, item in zip(files[1:], report.files[1:-1], strict=True):
        assert counted[path.name] == item.items == item.accepted + item.rejected
    assert report.written == sum(item.accepted for item in report.files[1:-1])


def test_a_file_given_twice_in_one_run_is_loaded_once(services: Services, tmp_path: Path) -> None:
    """The same path twice, or a copy elsewhere: the copy is reported as already loaded
    and nothing of it is written again (the loader reads a batch ahead of the writer, so
    the journal still shows the first as under way when the copy comes up)."""
    files = bundles_to_ndjson(BUNDLES[:1], tmp_path / "ndjson")
    observations = next(path for path in files if path.name == "Observation.ndjson")
    copy = tmp_path / "copy" / "Observation.ndjson"
    copy.parent.mkdir()
    copy.write_bytes(observations.read_bytes())
    others = [path for path in files if path != observations]
    first_run = run_import(services, others, batch_size=7)
    before = services.audit_ledger.store.head()[0]
    report = run_import(services, [observations, observations, copy], batch_size=7)
    assert run_import(services, files, batch_size=7).written == 0
    by_path: dict[str, list[Any]] = {}
    for item in report.files:
        by_path.setdefault(item.name, []).append(item)
    first, *again = by_path[str(observations)] + by_path[str(copy)]
    assert not first.already_done and first.accepted == first.items
    assert again and all(item.already_done and item.accepted == first.items for item in again)
    assert first.items > 7  # more than one batch: the copy came up before the last was written
    assert report.written == first.items
    with services.engine.connect() as connection:
        versions = connection.execute(select(func.max(resource_head.c.version_id))).scalar_one()
        heads = connection.execute(select(func.count()).select_from(resource_head)).scalar_one()
    assert versions == 1
    assert heads == first_run.written + report.written
    assert services.audit_ledger.store.head()[0] > before


def test_the_ledger_verifies_after_an_import(services: Services) -> None:
    run_import(services, BUNDLES[:1], batch_size=30)
    for ledger in services.ledgers():
        report = ledger.verify()
        assert report.ok, report.problems


@pytest.mark.parametrize("started", [True, False], ids=["in-the-process", "while-it-starts"])
def test_records_checked_in_another_process_are_refused_and_indexed_as_in_the_writer(
    services: Services, tmp_path: Path, started: bool
) -> None:
    # NDJSON lines cross to a checking process as bytes and are read again there; what
    # it works out (the verdict, the search terms, the categories) must be what the
    # writer would have worked out from the record it writes. Until the process has
    # started, the writer checks them itself the same way, from the bytes.
    files = bundles_to_ndjson(BUNDLES[:1], tmp_path / "ndjson")
    broken = tmp_path / "broken.ndjson"
    broken.write_bytes(
        b'{"resourceType":"Patient","id":"p9","birthDate":"yesterday"}\n'
        b'{"resourceType":"Patient","id":"p9","id":"p8"}\n'
        b'{"resourceType":"Basic","id":"b1","code":{"text":"x"}}\n'
    )
    checker = Checker(DEFAULT_LIMITS, workers=1)
    try:
        if started:
            checker.wait_started()
        loader = Loader(services.gate, services.now_us, checker=checker)
        report = Importer(loader, Journal(services.engine, services.keys)).run([*files, broken])
    finally:
        checker.close()
    reasons = dict(report.files[-1].rejections)
    assert set(reasons) == {1, 2, 3}
    assert "birthDate" in reasons[1] and "yesterday" not in reasons[1]
    assert "not JSON" in reasons[2] and "does not hold Basic" in reasons[3]
    sent = [item.resource for path in files for item in read_items(path, "x") if item.resource]
    assert report.accepted == len(sent)
    with services.engine.connect() as connection:
        rows = connection.execute(
            select(
                resource_head.c.resource_type, resource_head.c.resource_id, search_token.c.token
            ).join(search_token, search_token.c.row_id == resource_head.c.row_id)
        ).all()
    stored: dict[tuple[str, str], set[bytes]] = {}
    for resource_type, resource_id, token in rows:
        stored.setdefault((resource_type, resource_id), set()).add(bytes(token))
    for resource in sent:
        rt = RESOURCE_TYPES[resource["resourceType"]]
        expected = search_tokens(services.vault, rt, resource)
        assert stored.get((rt.name, resource["id"]), set()) == expected
    assert listed_tokens(services.engine) == indexed_tokens(services.engine)


def test_only_the_system_may_bring_a_records_index_worked_out_already(
    services: Services,
) -> None:
    # A member of staff's write is indexed from what they send, never from terms they
    # send beside it (they could hide a record from searches or mislabel its entry).
    patient = {"resourceType": "Patient", "id": "p-derived", "birthDate": "1980-02-03"}
    rt = RESOURCE_TYPES["Patient"]
    bogus = derive(rt, {"resourceType": "Patient", "id": "other"}, services.vault.zone)
    physician = Caller(
        principal="staff:dr-derived",
        actor=Actor(
            principal="staff:dr-derived", role=Role.PHYSICIAN, clinic_ids=frozenset({"c1"})
        ),
    )
    with pytest.raises(AccessDenied, match="only the system"):
        services.gate.write(physician, [Put(rt, "p-derived", patient, derived=bogus)])
    with services.engine.connect() as connection:
        written = connection.execute(
            select(func.count())
            .select_from(resource_head)
            .where(resource_head.c.resource_id == "p-derived")
        ).scalar_one()
    assert written == 0


def test_the_collector_stays_paused_through_a_load_and_runs_again_after(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A collection after each batch walked the next batch, already read (20-40 µs a
    record): a load in a process of its own (``hold_collector``: ``carevault import``)
    keeps the collector paused from the first batch to the last, a sweep every few
    batches, and running again once the load is done."""
    import gc

    from carevault.bulk import collector

    monkeypatch.setattr(collector, "SWEEP_EVERY", 3)
    files = bundles_to_ndjson(BUNDLES, tmp_path / "ndjson")
    loader = Loader(
        services.gate, services.now_us, checker=_checker(), batch_size=25, hold_collector=True
    )
    paused: list[bool] = []
    swept: list[int] = []
    real_collect = gc.collect

    def counted(*args: int) -> int:
        swept.append(len(paused))
        return real_collect(*args)

    with monkeypatch.context() as patched:
        patched.setattr(gc, "collect", counted)
        report = Importer(loader, Journal(services.engine, services.keys)).run(
            files, advance=lambda count: paused.append(not gc.isenabled())
        )
    assert report.rejected == 0 and len(paused) > 9
    assert all(paused)
    assert gc.isenabled()
    # One sweep every three batches, the load's cycles with it.
    assert swept == list(range(2, len(paused), 3))


def test_a_load_in_a_server_process_lets_the_collector_run_between_batches(
    services: Services, tmp_path: Path
) -> None:
    # A seeding in the demo server's background, an $import: request threads run beside
    # it, and the collector runs between its batches.
    import gc

    files = bundles_to_ndjson(BUNDLES[:1], tmp_path / "ndjson")
    loader = Loader(services.gate, services.now_us, checker=_checker(), batch_size=25)
    running: list[bool] = []
    Importer(loader, Journal(services.engine, services.keys)).run(
        files, advance=lambda count: running.append(gc.isenabled())
    )
    assert len(running) > 3 and all(running)


def test_the_collector_runs_again_when_a_held_load_fails(
    services: Services, tmp_path: Path
) -> None:
    import gc

    files = bundles_to_ndjson(BUNDLES[:1], tmp_path / "ndjson")
    loader = Loader(
        services.gate, services.now_us, checker=_checker(), batch_size=25, hold_collector=True
    )

    def fail(count: int) -> None:
        assert not gc.isenabled()
        raise RuntimeError("the progress bar broke")

    with pytest.raises(RuntimeError, match="progress bar"):
        Importer(loader, Journal(services.engine, services.keys)).run(files, advance=fail)
    assert gc.isenabled()


@pytest.mark.parametrize("ahead", [1, 3])
def test_batches_are_sent_to_be_checked_ahead_of_the_writer(
    services: Services, tmp_path: Path, ahead: int
) -> None:
    """While a batch is written the next ``ahead`` are being checked, across files too,
    never more: the checking processes keep busy through a file whose batches take longer
    to check than to write, and what waits to be written stays bounded."""
    files = bundles_to_ndjson(BUNDLES[:2], tmp_path / "ndjson")
    happened: list[str] = []

    class Recording(Checker):
        def submit(self, items: Any, zone: Any) -> Any:
            happened.append("check")
            return super().submit(items, zone)

    loader = Loader(
        services.gate,
        services.now_us,
        checker=Recording(DEFAULT_LIMITS, workers=0),
        batch_size=7,
        ahead=ahead,
    )
    report = Importer(loader, Journal(services.engine, services.keys)).run(
        files, advance=lambda count: happened.append("written")
    )
    assert report.rejected == 0 and report.written > 7 * (ahead + 3)
    assert happened.index("written") == ahead + 1
    checked = written = 0
    for event in happened:
        checked += event == "check"
        written += event == "written"
        assert checked <= written + ahead + 1
    assert checked == written  # every batch checked once, and written


class _Stopped(BaseException):
    """Stands for a kill: nothing after it runs."""


def test_a_batch_split_twice_over_interrupted_runs_writes_nothing_twice(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch with a refused record is split; a run stopped between its halves records
    the half that committed, so the next run does not write it again. That next run
    splits what is left and may be stopped too: what it records must keep what the first
    run committed, or a third run writes those records a second time (version 2, in the
    ledger twice)."""
    lines = [{"resourceType": "Patient", "id": "p1", "birthDate": "1980-02-03"}]
    lines += [
        {
            "resourceType": "Observation",
            "id": f"o{n}",
            "status": "final",
            "code": {"text": "weight"},
            "subject": {"reference": "Patient/p1"},
        }
        for n in range(6)
    ]
    lines.append({**lines[1], "id": "orphan", "subject": {"reference": "Patient/nobody"}})
    source = tmp_path / "mixed.ndjson"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    write = services.gate.write

    def run(stop_at: int | None) -> None:
        calls = 0

        def stopping(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == stop_at:
                raise _Stopped
            return write(*args, **kwargs)

        monkeypatch.setattr(services.gate, "write", stopping)
        with suppress(_Stopped):
            run_import(services, [source], batch_size=10)
        monkeypatch.undo()

    run(stop_at=3)  # the batch refused, its first half committed, stopped before the second
    run(stop_at=3)  # what is left refused, its first half committed, stopped again
    run(stop_at=None)

    with services.engine.connect() as connection:
        versions = dict(
            connection.execute(
                select(resource_head.c.resource_id, resource_head.c.version_id)
            ).all()
        )
    assert versions == {"p1": 1, **{f"o{n}": 1 for n in range(6)}}
    written = Counter(
        record
        for event in _audit(services)
        for records in event.get("detail", {}).get("written", {}).values()
        for record in records
    )
    assert written and set(written.values()) == {1}
    report = run_import(services, [source])
    assert report.written == 0 and report.files[0].accepted == 7 and report.files[0].rejected == 1


def test_checks_sent_ahead_are_cancelled_when_a_load_stops(
    services: Services, tmp_path: Path
) -> None:
    """A load that stops early (here its progress callback raises) leaves no check of a
    batch it will never write waiting in the checking processes."""
    files = bundles_to_ndjson(BUNDLES[:1], tmp_path / "ndjson")
    waiting: list[Future[Any]] = []

    class Slow(Checker):
        """Checks the first batch; the checks of the next never finish."""

        calls = 0

        def submit(self, items: Any, zone: Any) -> Any:
            self.calls += 1
            if self.calls == 1:
                return super().submit(items, zone)
            later: Future[Any] = Future()
            waiting.append(later)
            return [Checks(later, None)]

    def stop(_count: int) -> None:
        raise RuntimeError("the consumer gave up")

    loader = Loader(
        services.gate, services.now_us, checker=Slow(DEFAULT_LIMITS, workers=0), batch_size=7
    )
    with pytest.raises(RuntimeError, match="gave up"):
        Importer(loader, Journal(services.engine, services.keys)).run(files, advance=stop)
    assert len(waiting) == AHEAD
    assert all(future.cancelled() for future in waiting)
