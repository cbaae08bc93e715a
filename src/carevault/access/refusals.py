"""Refusals that name no one, recorded without letting a flood of them flood the ledger.

A request with no token or a token that does not verify, one over a rate limit, one
for a Host this server is not: each is still an audit event, but the ledger gets at
most two entries per source (or, for a rate-limited account, per account), per kind
and per minute. The first refusal of a minute is recorded at once, as it happens (so
an attack shows without delay); if more follow within that minute, one summary entry
with the minute's count is recorded once the minute is over. The counts live in this
process: with several server processes each records its own first and summary.

IPv6 sources are counted by their /64, and at most ``max_sources`` sources per minute
are told apart; beyond that they share one count, so rotating addresses gains an
attacker nothing but a single line.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace

from carevault.access.throttle import source_key
from carevault.clock import Clock, fhir_instant, from_micros, to_micros, utc_now
from carevault.ledger.events import AuditEvent
from carevault.ledger.trail import AuditTrail

log = logging.getLogger(__name__)

_MINUTE_US = 60_000_000
#: Where sources beyond ``max_sources`` in one minute are counted.
OTHERS = "(other sources)"


@dataclass
class _Minute:
    first: AuditEvent
    count: int = 1


class RefusalTally:
    """Counts anonymous refusals per (kind, source, minute); see the module's note.

    Contract: ``refuse`` returns once the first refusal of its minute is durable (the
    ledger's ``record``); it raises ``AuditUnavailable`` if it cannot be. Summaries are
    written by ``flush`` (a background thread calls it; so does closing)."""

    def __init__(self, audit: AuditTrail, clock: Clock = utc_now, max_sources: int = 10_000):
        self.audit = audit
        self.clock = clock
        self.max_sources = max_sources
        self._minutes: dict[tuple[str, str, int], _Minute] = {}
        self._sources: dict[int, int] = {}
        self._oldest: int | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refuse(self, event: AuditEvent) -> None:
        """Count ``event``; record it at once if it is the first of its minute."""
        self.commit(self.note(event))

    def commit(self, first: AuditEvent | None) -> None:
        """Record ``first`` (what ``note`` returned), and the summaries of minutes that
        are over, so that a process without the background flush still writes them."""
        if first is not None:
            try:
                self.audit.record([first])
            except Exception:
                # Not written: the next refusal of this minute must try again.
                self._forget(first)
                raise
        if self.due():
            try:
                self.flush()
            except Exception:
                log.exception("the summary of refused requests could not be recorded yet")

    def _forget(self, first: AuditEvent) -> None:
        minute = first.at_us // _MINUTE_US
        with self._lock:
            for key, item in list(self._minutes.items()):
                if item.first is first:
                    del self._minutes[key]
                    self._sources[minute] = max(0, self._sources.get(minute, 1) - 1)
            self._oldest = min((key[2] for key in self._minutes), default=None)

    def due(self) -> bool:
        """Whether a minute with counts in it is over (cheap: no lock, no clock read
        unless something is pending)."""
        oldest = self._oldest
        return oldest is not None and oldest < to_micros(self.clock()) // _MINUTE_US

    def note(self, event: AuditEvent) -> AuditEvent | None:
        """Count ``event`` in memory; the entry to record now (the caller records it,
        e.g. off the event loop), or None when its minute already has one."""
        minute = event.at_us // _MINUTE_US
        who = event.principal or source_key(event.source_address)
        with self._lock:
            key = (event.tag.value, who, minute)
            known = self._minutes.get(key)
            if known is None and self._sources.get(minute, 0) >= self.max_sources:
                key = (event.tag.value, OTHERS, minute)
                known = self._minutes.get(key)
            if known is not None:
                known.count += 1
                return None
            self._sources[minute] = self._sources.get(minute, 0) + 1
            if self._oldest is None or minute < self._oldest:
                self._oldest = minute
            detail = {**event.detail, "minute": _minute_text(minute), "count": 1}
            first = replace(event, detail=detail)
            if key[1] == OTHERS:
                first = replace(first, source_address=None, reason=f"{first.reason} ({OTHERS})")
            self._minutes[key] = _Minute(first)
        return first

    def flush(self, *, everything: bool = False) -> int:
        """Record the summaries of the minutes that are over (all of them, when closing);
        how many entries were written. Counts whose write fails are kept for next time."""
        current = to_micros(self.clock()) // _MINUTE_US
        with self._lock:
            done = [key for key in self._minutes if everything or key[2] < current]
            taken = {key: self._minutes.pop(key) for key in done}
            for minute in {key[2] for key in done}:
                if not any(key[2] == minute for key in self._minutes):
                    self._sources.pop(minute, None)
            self._oldest = min((key[2] for key in self._minutes), default=None)
        now_us = to_micros(self.clock())
        summaries = [_summary(item, now_us) for item in taken.values() if item.count > 1]
        if not summaries:
            return 0
        try:
            self.audit.record(summaries)
        except Exception:
            with self._lock:
                for key, item in taken.items():
                    self._minutes.setdefault(key, item)
                self._oldest = min((key[2] for key in self._minutes), default=None)
            raise
        return len(summaries)

    # --- the background flush ------------------------------------------------------------

    def start(self, seconds: float = 5.0) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, args=(seconds,), name="refusal-tally", daemon=True
            )
            self._thread.start()

    def _run(self, seconds: float) -> None:
        while not self._stop.wait(seconds):
            try:
                self.flush()
            except Exception:
                log.exception("the summary of refused requests could not be recorded yet")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush(everything=True)


def _summary(item: _Minute, now_us: int) -> AuditEvent:
    first = item.first
    return replace(
        first,
        at_us=now_us,
        user_agent=None,
        reason=f"{first.reason}: {item.count} refusals in this minute (the first recorded then)",
        detail={**first.detail, "count": item.count, "summary": True},
    )


def _minute_text(minute: int) -> str:
    return fhir_instant(from_micros(minute * _MINUTE_US))[:16] + "Z"
