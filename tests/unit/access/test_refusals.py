"""The tally of anonymous refusals, on a trail that keeps what it is given (or fails)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection

from carevault.access.refusals import OTHERS, RefusalTally
from carevault.clock import to_micros
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.ledger.trail import AuditUnavailable, Rider

START = datetime(2026, 12, 2, 9, 30, 5, tzinfo=UTC)


@dataclass
class Trail:
    recorded: list[AuditEvent] = field(default_factory=list)
    failing: bool = False

    def record(
        self,
        events: Sequence[AuditEvent],
        connection: Connection | None = None,
        rider: Rider | None = None,
    ) -> None:
        if self.failing:
            raise AuditUnavailable("ledger down")
        self.recorded.extend(events)


@dataclass
class Clock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now


def _refused(clock: Clock, address: str) -> AuditEvent:
    return AuditEvent(
        tag=Tag.AUTH_TOKEN_REFUSED,
        outcome=Outcome.DENIED,
        at_us=to_micros(clock()),
        source_address=address,
        reason="no bearer token",
    )


def test_beyond_the_source_cap_addresses_share_one_count() -> None:
    trail, clock = Trail(), Clock()
    tally = RefusalTally(trail, clock, max_sources=3)
    for number in range(10):
        for _ in range(2):
            tally.refuse(_refused(clock, f"2001:db8:{number}::1"))
    clock.now += timedelta(minutes=1)

    assert tally.flush() == 4
    firsts = [event for event in trail.recorded if "summary" not in event.detail]
    assert len(firsts) == 4
    assert firsts[-1].source_address is None and OTHERS in firsts[-1].reason
    (others,) = [e for e in trail.recorded if e.detail.get("summary") and OTHERS in e.reason]
    assert others.detail["count"] == 14


def test_an_ipv6_host_rotating_through_its_slash_64_is_one_source() -> None:
    trail, clock = Trail(), Clock()
    tally = RefusalTally(trail, clock)
    for number in range(50):
        tally.refuse(_refused(clock, f"2001:db8:1:2::{number:x}"))

    assert len(trail.recorded) == 1


def test_counts_are_kept_when_the_summary_cannot_be_written_yet() -> None:
    trail, clock = Trail(), Clock()
    tally = RefusalTally(trail, clock)
    for _ in range(5):
        tally.refuse(_refused(clock, "203.0.113.66"))
    clock.now += timedelta(minutes=1)
    trail.failing = True

    with pytest.raises(AuditUnavailable):
        tally.flush()
    trail.failing = False
    assert tally.due()
    assert tally.flush() == 1
    assert trail.recorded[-1].detail["count"] == 5
    assert not tally.due()


def test_the_first_refusal_fails_closed_when_the_ledger_is_down() -> None:
    trail, clock = Trail(failing=True), Clock()
    tally = RefusalTally(trail, clock)

    with pytest.raises(AuditUnavailable):
        tally.refuse(_refused(clock, "203.0.113.66"))
    trail.failing = False
    tally.refuse(_refused(clock, "203.0.113.66"))  # tried again: nothing was written

    (first,) = trail.recorded
    assert first.detail["count"] == 1
