"""A notice's code verifies for ``CAREVAULT_NOTIFY_CODE_DAYS`` after the notice was sent,
then says "expired": a genuine code leaked from an old letter, pasted into a phishing
message months later, says so instead of "genuine" alone (stop 64)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydantic import ValidationError

from carevault.config import Settings
from carevault.ledger.events import Outcome
from carevault.notify.codes import CodeKeys
from carevault.notify.store import SENT
from carevault.notify.verify import Verifier
from tests.unit.access.test_refusals import Trail  # keeps what it is given

DAY_US = 86_400_000_000
SENT_US = 1_796_000_000_000_000  # 2026-11-30, the notice's send
KEYS = CodeKeys(b"k" * 32)
CODE = KEYS.code_for("INC-1:patient-1", "email")
ALICE = "alice@example.com"


@dataclass
class Notices:
    """The notice table as ``by_code`` reads it: one sent notice per code's digest."""

    sent: dict[str, tuple[str, str, int | None, str | None]] = field(default_factory=dict)

    def by_code(self, digest: str) -> tuple[str, str, int | None, str | None] | None:
        return self.sent.get(digest)


@dataclass
class Budget:
    """``limits.SharedBuckets``' per-code address budget, counting what is asked of it."""

    asked: int = 0
    spent: int = 0

    def code_addresses_left(self, code_digest: str) -> bool:
        self.asked += 1
        return True

    def spend_code_address(self, code_digest: str) -> None:
        self.spent += 1


@dataclass
class Clock:
    now_us: int

    def __call__(self) -> int:
        return self.now_us


def _verifier(channel: str = "email", days: int = 180) -> tuple[Verifier, Clock, Trail, Budget]:
    digest = KEYS.digest(CODE)
    assert digest is not None
    kept = KEYS.address_digest("email", ALICE) if channel == "email" else None
    notices = Notices({digest: (SENT, channel, SENT_US, kept)})
    clock, trail, budget = Clock(SENT_US), Trail(), Budget()
    verifier = Verifier(notices, KEYS, trail, clock, budget, code_days=days)
    return verifier, clock, trail, budget


def test_a_code_is_genuine_until_its_days_are_up_then_expired() -> None:
    verifier, clock, trail, _ = _verifier()
    clock.now_us = SENT_US + 179 * DAY_US
    day_before = verifier.check(CODE, "198.51.100.1", "tests")
    assert day_before.genuine and not day_before.expired
    clock.now_us = SENT_US + 180 * DAY_US - 1
    assert not verifier.check(CODE, "198.51.100.1", "tests").expired
    for later in (180 * DAY_US, 180 * DAY_US + 1, 400 * DAY_US):
        clock.now_us = SENT_US + later
        verdict = verifier.check(CODE, "198.51.100.1", "tests")
        # Still ours (``genuine``: what a script reads keeps its meaning), and expired;
        # it keeps the day it was sent, which the page names.
        assert verdict.genuine and verdict.expired
        assert verdict.channel == "email" and verdict.sent_us == SENT_US
    entries = trail.recorded
    assert [e.detail.get("expired", False) for e in entries] == [False] * 2 + [True] * 3
    assert all(e.outcome is Outcome.SUCCESS for e in entries)
    assert entries[-1].reason == "expired"


def test_an_expired_code_weighs_no_address_and_spends_no_budget() -> None:
    verifier, clock, trail, budget = _verifier()
    clock.now_us = SENT_US + 180 * DAY_US
    for to in (ALICE, "chan.taiman@example.net", "9123 4567"):
        verdict = verifier.check(CODE, "198.51.100.2", "tests", to)
        assert verdict.genuine and verdict.expired
        assert verdict.sent_to_address is None and verdict.address is None
        assert not verdict.address_limited
    assert budget.asked == 0 and budget.spent == 0
    for entry in trail.recorded:
        assert entry.detail["expired"] is True
        assert entry.detail["address_given"] is True and entry.detail["address_matched"] is None
    # The day before, the same addresses are weighed as ever.
    clock.now_us = SENT_US + 179 * DAY_US
    assert verifier.check(CODE, "198.51.100.2", "tests", ALICE).sent_to_address is True
    assert verifier.check(CODE, "198.51.100.2", "tests", "bob@example.com").sent_to_address is False
    assert budget.asked == 2 and budget.spent == 1


def test_a_letters_code_expires_as_a_message_does() -> None:
    verifier, clock, _, _ = _verifier("letter", days=30)
    clock.now_us = SENT_US + 30 * DAY_US - 1
    assert not verifier.check(CODE, None, None).expired
    clock.now_us = SENT_US + 30 * DAY_US
    verdict = verifier.check(CODE, None, None, ALICE)
    assert verdict.genuine and verdict.expired and verdict.channel == "letter"


def test_a_code_that_is_not_ours_is_never_expired() -> None:
    verifier, clock, _, _ = _verifier()
    clock.now_us = SENT_US + 400 * DAY_US
    verdict = verifier.check(KEYS.code_for("INC-1:someone-else", "email"), None, None)
    assert not verdict.genuine and not verdict.expired


def test_the_days_a_code_is_in_use_are_a_setting_of_at_least_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Settings(home=tmp_path).notify_code_days == 180
    monkeypatch.setenv("CAREVAULT_NOTIFY_CODE_DAYS", "30")
    assert Settings(home=tmp_path).notify_code_days == 30
    for days in (0, -1):
        with pytest.raises(ValidationError, match="notify_code_days"):
            Settings(home=tmp_path, notify_code_days=days)
