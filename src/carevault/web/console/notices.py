"""What the incident pages show of notification: the send job's progress (from the
notice table, so a job started by ``carevault notify send`` shows too) and the
regulators' clocks; and the send job run on a thread of the server when the officer
starts it from the console (one per incident at a time, across every server process
and the CLI: the job's lease is in the database)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from carevault.bootstrap import Services
from carevault.notify import store as states
from carevault.notify.actions import confirm_start, send_notices
from carevault.notify.store import NoticeStore

log = logging.getLogger("carevault.web")


@dataclass(frozen=True)
class NoticeProgress:
    started: bool
    running: bool
    finished_us: int | None
    total: int
    by_state: dict[str, int]
    by_channel: dict[str, int]
    failed: str | None

    @property
    def done(self) -> int:
        return sum(count for state, count in self.by_state.items() if state in states.FINAL)

    @property
    def percent(self) -> int:
        return 0 if not self.total else min(100, self.done * 100 // self.total)


@dataclass
class Running:
    thread: threading.Thread
    failed: str | None = None


def _registry(app: FastAPI) -> dict[str, Running]:
    found: dict[str, Running] | None = getattr(app.state, "console_notice_jobs", None)
    if found is None:
        found = {}
        app.state.console_notice_jobs = found
    return found


def start(
    app: FastAPI, svc: Services, incident_id: str, officer: str, totp: str, source: str | None
) -> bool:
    """Start the send job of ``incident_id`` on a thread, once ``officer`` confirmed it
    with a fresh TOTP code (``notify:job:started`` in the ledger); False if one is
    running (no code is spent); ``StartRefused`` (recorded) without a fresh code."""
    jobs = _registry(app)
    current = jobs.get(incident_id)
    if current is not None and current.thread.is_alive():
        return False
    # Another server process (or `carevault notify send`) holds the job's lease.
    if NoticeStore(svc.engine).running(incident_id, svc.now_us()):
        return False
    confirm_start(svc, incident_id, officer, totp, source)

    def run() -> None:
        try:
            send_notices(svc, incident_id)
        except Exception as error:  # the page says it stopped; the job resumes when restarted
            jobs[incident_id].failed = type(error).__name__
            log.exception("notice job of incident %s stopped", incident_id)

    thread = threading.Thread(target=run, name=f"console-notices-{incident_id}", daemon=True)
    jobs[incident_id] = Running(thread)
    thread.start()
    return True


def notices_of(app: FastAPI, svc: Services, incident_id: str) -> NoticeProgress:
    store = NoticeStore(svc.engine)
    job = store.job(incident_id)
    running = _registry(app).get(incident_id)
    alive = running is not None and running.thread.is_alive()
    alive = alive or store.running(incident_id, svc.now_us())
    by_state: dict[str, int] = {}
    by_channel: dict[str, int] = {}
    for (state, channel, _), count in store.counts(incident_id).items():
        by_state[state] = by_state.get(state, 0) + count
        if state == states.SENT:
            by_channel[channel] = by_channel.get(channel, 0) + count
    return NoticeProgress(
        started=job is not None or alive,
        running=alive,
        finished_us=int(job["finished_us"]) if job and job["finished_us"] else None,
        total=int(job["total"]) if job else 0,
        by_state=by_state,
        by_channel=by_channel,
        failed=running.failed if running is not None and not alive else None,
    )


def clocks_of(svc: Services, incident_id: str | None = None) -> list[dict[str, Any]]:
    """The regulators' clocks (of one incident, or of every incident), soonest due first."""
    clocks = NoticeStore(svc.engine).clocks()
    return [c for c in clocks if incident_id is None or c["incident_id"] == incident_id]
