"""PostgreSQL's read by id on the event loop (``LoopReads``, ``Gate.prefetch``): the
record and its registrations in one statement awaited on the loop, then the same
decision, cut and durable audit entry as any read. What the loop cannot decide without
another round trip (a care relationship not cached, a containment mode that reads) is
done in a worker thread, having recorded and spent nothing on the loop; so is every read
when the loop's connections fail."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import text

from carevault.bootstrap import Services
from carevault.containment.state import Mode
from carevault.db import on_the_loop
from carevault.domain.roles import Role
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate import Caller, WouldBlock
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.loop_reads import LoopBusy, LoopReads
from carevault.web.app import create_app
from tests.support.client import FhirTestClient, register_patient
from tests.support.ledgers import audit_events
from tests.support.staff import Staff, caller_of, make_staff

PATIENT = RESOURCE_TYPES["Patient"]


@pytest.fixture
def backend() -> str:
    """PostgreSQL only: SQLite reads on the loop through its own in-process connection."""
    return "postgres"


@dataclass
class Clinic:
    services: Services
    web: FhirTestClient
    officer: Staff
    physician: Staff
    patient: str

    @property
    def loop_reads(self) -> LoopReads:
        found = self.services.gate.loop_reads
        assert found is not None  # built for PostgreSQL
        return found

    def entries(self) -> list[AuditEvent]:
        return audit_events(self.services)

    def caller(self, staff: Staff) -> Caller:
        return caller_of(self.services, staff, 10)

    def read(self, staff: Staff, resource_id: str | None = None) -> tuple[int, str]:
        response = self.web.get(
            f"/fhir/Patient/{resource_id or self.patient}", headers=staff.headers
        )
        return response.status_code, response.text


@pytest.fixture
def clinic(services: Services) -> Iterator[Clinic]:
    # Sessions and containment state stay cached for the test: on the loop a stale one
    # is not read again (the read goes to a thread), which the tests below do on purpose.
    services.access.sessions.check_seconds = 60.0
    services.containment.refresh_seconds = 60.0
    if services.keys is not None:  # and the look for keys shredded elsewhere
        services.keys.shred_check_seconds = 60.0
    with FhirTestClient(create_app(services.settings, services)) as web:
        officer = make_staff(services, Role.PRIVACY_OFFICER, ["clinic-a"])
        desk = make_staff(services, Role.FRONT_DESK, ["clinic-a"])
        physician = make_staff(services, Role.PHYSICIAN, ["clinic-a"], "prac-loop")
        patient = register_patient(web, officer.headers, desk.headers, "clinic-a", "Loop", "Mei")
        yield Clinic(services, web, officer, physician, patient)


def _reads(entries: list[AuditEvent], staff: Staff) -> list[AuditEvent]:
    principal = f"staff:{staff.account.username}"
    return [e for e in entries if e.tag is Tag.FHIR_READ and e.principal == principal]


def test_a_read_by_id_is_answered_on_the_loop_with_one_durable_entry(clinic: Clinic) -> None:
    answered, before = clinic.loop_reads.answered, len(_reads(clinic.entries(), clinic.officer))
    status, body = clinic.read(clinic.officer)
    assert status == 200 and "Loop" in body
    assert clinic.loop_reads.answered == answered + 1
    reads = _reads(clinic.entries(), clinic.officer)
    assert len(reads) == before + 1
    assert (reads[-1].outcome, reads[-1].resource_id) == (Outcome.SUCCESS, clinic.patient)


def test_an_unknown_id_read_on_the_loop_is_refused_and_recorded(
    clinic: Clinic, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The read found no record: its refusal names the id's digest without a second look,
    # which on the loop would block it for a round trip (adversary round 67).
    def looked_up(*_: object) -> bool:
        raise AssertionError("the id was looked up again")

    monkeypatch.setattr(clinic.services.vault, "holds_id", looked_up)
    answered = clinic.loop_reads.answered
    status, _ = clinic.read(clinic.officer, "no-such-patient")
    assert status == 404
    assert clinic.loop_reads.answered == answered + 1
    last = _reads(clinic.entries(), clinic.officer)[-1]
    # Named by the keyed digest of the id no record holds (adversary round 67).
    typed = clinic.services.vault.unknown_id("Patient", "no-such-patient")
    assert (last.outcome, last.resource_id) == (Outcome.FAILED, typed)


def test_a_fact_not_cached_sends_the_read_to_a_thread_having_recorded_nothing(
    clinic: Clinic,
) -> None:
    # A physician's read needs their care relationship, which no cache holds yet: the
    # loop raises WouldBlock having recorded nothing, and the read made in a worker
    # thread (a Patient of their clinic: its identity is theirs to read) is recorded once.
    gate = clinic.services.gate
    with pytest.raises(WouldBlock):  # not even read on the loop: a clinician's read
        asyncio.run(gate.prefetch(clinic.caller(clinic.physician), PATIENT, clinic.patient))
    caller = clinic.caller(clinic.physician)
    # Were its record read on the loop, the decision would still not be made there.
    prefetched = asyncio.run(gate.prefetch(clinic.caller(clinic.officer), PATIENT, clinic.patient))
    entries = len(clinic.entries())
    with pytest.raises(WouldBlock):
        clinic.services.gate.read_later(
            caller, PATIENT, clinic.patient, may_block=False, prefetched=prefetched
        )
    assert len(clinic.entries()) == entries
    status, body = clinic.read(clinic.physician)
    assert status == 200 and "Loop" in body
    reads = _reads(clinic.entries(), clinic.physician)
    assert len(reads) == 1 and reads[0].outcome is Outcome.SUCCESS


def test_a_containment_mode_that_reads_sends_the_read_to_a_thread(clinic: Clinic) -> None:
    clinic.services.containment.start(Mode.PHI_OFFLINE, None, "drill", "staff:test")
    caller = clinic.caller(clinic.officer)
    prefetched = asyncio.run(clinic.services.gate.prefetch(caller, PATIENT, clinic.patient))
    entries = len(clinic.entries())
    with pytest.raises(WouldBlock):
        clinic.services.gate.read_later(
            caller, PATIENT, clinic.patient, may_block=False, prefetched=prefetched
        )
    assert len(clinic.entries()) == entries
    status, body = clinic.read(clinic.officer)
    assert status == 503 and "Loop" not in body
    last = _reads(clinic.entries(), clinic.officer)[-1]
    assert last.outcome is Outcome.DENIED


def test_reads_go_to_a_thread_when_the_loops_connections_fail(clinic: Clinic) -> None:
    assert clinic.read(clinic.officer)[0] == 200
    # Every connection the loop holds is cut under it (as a database restart would).
    pids = clinic.loop_reads.backend_pids()
    assert pids
    with clinic.services.engine.connect() as connection:
        for pid in pids:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        connection.commit()
    before = len(_reads(clinic.entries(), clinic.officer))
    status, body = clinic.read(clinic.officer)
    assert status == 200 and "Loop" in body
    reads = _reads(clinic.entries(), clinic.officer)
    assert len(reads) == before + 1 and reads[-1].outcome is Outcome.SUCCESS
    # The next read opens a fresh connection and is answered on the loop again.
    answered = clinic.loop_reads.answered
    assert clinic.read(clinic.officer)[0] == 200
    assert clinic.loop_reads.answered == answered + 1


def test_reads_beyond_the_loops_connections_wait_their_turn(services: Services) -> None:
    reads = LoopReads(services.engine, size=1)
    statement = text("SELECT 1")

    async def many() -> list[tuple[object, ...] | None]:
        return await asyncio.gather(*(reads.first(statement, {}) for _ in range(5)))

    try:
        assert asyncio.run(many()) == [(1,)] * 5
        assert reads.answered == 5
        assert len(reads.backend_pids()) == 1
    finally:
        reads.close()
    with pytest.raises(LoopBusy):
        asyncio.run(many())


def test_caches_that_would_read_the_database_refuse_on_the_loop(clinic: Clinic) -> None:
    """On the loop a stale session, containment state or staff directory is not read
    again (a pool checkout there would stall every request of the process, and wait
    behind worker threads for a connection or a lock): WouldBlock, and the read is done
    in a worker thread. Off the loop they refresh as ever."""
    services = clinic.services
    session_id = services.access.authenticate(clinic.officer.token).session_id
    services.access.sessions._forget(session_id)
    services.containment._read_at = float("-inf")
    services.access._clinics = None
    with on_the_loop():
        with pytest.raises(WouldBlock):
            services.access.sessions.state(session_id)
        with pytest.raises(WouldBlock):
            services.containment.current()
        with pytest.raises(WouldBlock):
            services.access.practitioner_clinics("prac-loop")
    assert services.access.sessions.state(session_id).live
    assert not services.containment.current().active
    assert services.access.practitioner_clinics("prac-loop") == frozenset({"clinic-a"})
    with on_the_loop():  # fresh now: answered from the caches
        assert services.access.sessions.state(session_id).live
        assert not services.containment.current().active
        assert services.access.practitioner_clinics("prac-loop") == frozenset({"clinic-a"})


def test_a_stale_session_sends_the_read_to_a_thread_recorded_once(clinic: Clinic) -> None:
    assert clinic.read(clinic.officer)[0] == 200
    session_id = clinic.services.access.authenticate(clinic.officer.token).session_id
    clinic.services.access.sessions._forget(session_id)
    answered, before = clinic.loop_reads.answered, len(_reads(clinic.entries(), clinic.officer))
    status, body = clinic.read(clinic.officer)
    assert status == 200 and "Loop" in body
    assert clinic.loop_reads.answered == answered  # not on the loop: its session was stale
    reads = _reads(clinic.entries(), clinic.officer)
    assert len(reads) == before + 1 and reads[-1].outcome is Outcome.SUCCESS


def test_an_answer_read_before_a_registration_is_not_kept_after_it(services: Services) -> None:
    """A registrations answer is as old as its query: one that arrives after a
    registration in this process (which forgets the patient's answers) is not cached."""
    registrations = services.access.registrations
    asked = time.monotonic()
    registrations._answers[("p-late", True)] = (time.monotonic(), None)  # forgotten now
    # Home clinics only: registrations beyond them are not kept from a prefetch, whose
    # aggregate carries no seals (adversary round 70), and are read whole by ``clinics``.
    registrations.remember("p-late", [], ["clinic-old"], asked)
    assert registrations._answers[("p-late", True)][1] is None
    registrations.remember("p-late", [], ["clinic-new"], time.monotonic())
    assert registrations._answers[("p-late", True)][1] == frozenset({"clinic-new"})
    registrations.remember("p-late", ["clinic-far"], ["clinic-new"], time.monotonic())
    assert registrations._answers[("p-late", True)][1] == frozenset({"clinic-new"})
