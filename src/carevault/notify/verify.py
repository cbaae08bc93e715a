"""Checking a verification code: genuine or not, by which channel and on which day it
was sent, and nothing about the patient. Every check is a ledger entry (the code
itself is not recorded: only whether it was genuine and the first characters of its
digest, so repeated guesses of one code can be told apart from a spread)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.ledger.trail import AuditTrail
from carevault.notify import store as states
from carevault.notify.codes import CodeKeys
from carevault.notify.store import NoticeStore


@dataclass(frozen=True)
class Verdict:
    genuine: bool
    channel: str | None = None
    sent_us: int | None = None
    well_formed: bool = True


class Verifier:
    def __init__(
        self, store: NoticeStore, codes: CodeKeys, audit: AuditTrail, now_us: Callable[[], int]
    ) -> None:
        self.store = store
        self.codes = codes
        self.audit = audit
        self.now_us = now_us

    def check(self, code: str, source_address: str | None, user_agent: str | None) -> Verdict:
        """The verdict on ``code``; returns only once the check is in the ledger."""
        digest = self.codes.digest(code)
        found = self.store.by_code(digest) if digest else None
        if found is not None and found[0] == states.SENT:
            verdict = Verdict(True, found[1], found[2])
        else:
            verdict = Verdict(False, well_formed=digest is not None)
        self.audit.record(
            [
                AuditEvent(
                    tag=Tag.NOTIFY_CODE_CHECKED,
                    outcome=Outcome.SUCCESS if verdict.genuine else Outcome.FAILED,
                    at_us=self.now_us(),
                    principal=None,
                    source_address=source_address,
                    user_agent=(user_agent or "")[:200] or None,
                    reason="genuine" if verdict.genuine else "not a code of ours",
                    detail={"digest": digest[:8] if digest else None, "channel": verdict.channel},
                )
            ]
        )
        return verdict
