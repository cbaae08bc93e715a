"""Full verifications of the ledgers, recorded: when each ran, who started it, and what it
found. ``audit verify`` and the console's button run them the same way, here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, func, insert, select, update

from carevault.db import read_transaction, write_transaction
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.ledger.service import Ledger
from carevault.ledger.tables import verify_run
from carevault.ledger.verify import VerifyReport


@dataclass(frozen=True)
class VerifyRun:
    run_id: int
    ledger: str
    started_us: int
    started_by: str
    finished_us: int | None
    ok: bool | None
    entries: int | None
    checkpoints: int | None
    witnesses: int | None
    first_problem: str | None

    @property
    def running(self) -> bool:
        return self.finished_us is None


def _run(row: object) -> VerifyRun:
    m = row._mapping  # type: ignore[attr-defined]
    return VerifyRun(
        run_id=int(m["run_id"]),
        ledger=m["ledger"],
        started_us=int(m["started_us"]),
        started_by=m["started_by"],
        finished_us=m["finished_us"],
        ok=None if m["ok"] is None else bool(m["ok"]),
        entries=m["entries"],
        checkpoints=m["checkpoints"],
        witnesses=m["witnesses"],
        first_problem=m["first_problem"],
    )


class VerifyRuns:
    def __init__(self, engine: Engine, audit: Ledger, now_us: Callable[[], int]) -> None:
        self.engine = engine
        self.audit = audit
        self.now_us = now_us

    def verify(self, ledger: Ledger, by: str) -> VerifyReport:
        """Verify ``ledger`` in full. The run is stored before it starts (so an interrupted
        one shows as never finished) and its result after; the audit ledger records it."""
        name = ledger.store.name
        with write_transaction(self.engine) as connection:
            run_id = connection.execute(
                insert(verify_run)
                .values(ledger=name, started_us=self.now_us(), started_by=by[:200])
                .returning(verify_run.c.run_id)
            ).scalar_one()
        report = ledger.verify()
        with write_transaction(self.engine) as connection:
            connection.execute(
                update(verify_run)
                .where(verify_run.c.run_id == run_id)
                .values(
                    finished_us=self.now_us(),
                    ok=1 if report.ok else 0,
                    entries=report.entries,
                    checkpoints=report.checkpoints,
                    witnesses=report.witnesses,
                    first_problem=report.problems[0][:1000] if report.problems else None,
                )
            )
        self.audit.writer.record(
            [
                AuditEvent(
                    tag=Tag.AUDIT_VERIFIED,
                    outcome=Outcome.SUCCESS if report.ok else Outcome.FAILED,
                    at_us=self.now_us(),
                    principal=by,
                    reason=f"{name}: {'OK' if report.ok else 'MISMATCH'}",
                    detail={"ledger": name, "entries": report.entries, "run": int(run_id)},
                )
            ]
        )
        return report

    def latest(self) -> dict[str, VerifyRun]:
        """The latest run of each ledger, finished or not."""
        newest = (
            select(func.max(verify_run.c.run_id)).group_by(verify_run.c.ledger).scalar_subquery()
        )
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                select(verify_run).where(verify_run.c.run_id.in_(newest))
            ).all()
        return {run.ledger: run for run in map(_run, rows)}

    def latest_finished(self) -> dict[str, VerifyRun]:
        """The latest run of each ledger that has a result."""
        newest = (
            select(func.max(verify_run.c.run_id))
            .where(verify_run.c.finished_us.is_not(None))
            .group_by(verify_run.c.ledger)
            .scalar_subquery()
        )
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                select(verify_run).where(verify_run.c.run_id.in_(newest))
            ).all()
        return {run.ledger: run for run in map(_run, rows)}
