"""Checking a verification code: genuine or not, by which channel and on which day it
was sent, and nothing about the patient. Every check is a ledger entry (the code
itself is not recorded: only whether it was genuine and the first characters of its
digest, so repeated guesses of one code can be told apart from a spread).

A genuine code proves that we sent *a* notice with it, not that we sent it to the
person checking: a patient's own genuine code, pasted by a phisher into a message to
someone else, verifies. Whoever checks may therefore also give the email address or
mobile number their message came to (``to``): the verdict then says whether the notice
was sent there, by comparing the keyed digest of what was typed (read as the channel's
address: an email address, or a number made E.164 as when it was sent) with the digest
the notice keeps. Neither is recorded in the ledger, only whether one was given and
whether it matched."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass

from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.ledger.trail import AuditTrail
from carevault.notify import store as states
from carevault.notify.codes import CodeKeys
from carevault.notify.contacts import valid_email, valid_mobile
from carevault.notify.store import NoticeStore


@dataclass(frozen=True)
class Verdict:
    genuine: bool
    channel: str | None = None
    sent_us: int | None = None
    well_formed: bool = True
    #: Whether the genuine notice was sent to the address given: None when none was
    #: given, when the code is not genuine, or for a letter (its address is not kept).
    sent_to_address: bool | None = None


class Verifier:
    def __init__(
        self, store: NoticeStore, codes: CodeKeys, audit: AuditTrail, now_us: Callable[[], int]
    ) -> None:
        self.store = store
        self.codes = codes
        self.audit = audit
        self.now_us = now_us

    def check(
        self,
        code: str,
        source_address: str | None,
        user_agent: str | None,
        to: str | None = None,
    ) -> Verdict:
        """The verdict on ``code`` (and, given ``to``, whether its notice was sent to that
        email address or number); returns only once the check is in the ledger."""
        digest = self.codes.digest(code)
        found = self.store.by_code(digest) if digest else None
        if found is not None and found[0] == states.SENT:
            _, channel, sent_us, kept = found
            verdict = Verdict(
                True, channel, sent_us, sent_to_address=self._sent_to(channel, kept, to)
            )
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
                    detail={
                        "digest": digest[:8] if digest else None,
                        "channel": verdict.channel,
                        **(
                            {"address_given": True, "address_matched": verdict.sent_to_address}
                            if to
                            else {}
                        ),
                    },
                )
            ]
        )
        return verdict

    def _sent_to(self, channel: str, kept: str | None, to: str | None) -> bool | None:
        """Whether ``to``, read as an address of ``channel``, is where the notice went."""
        if not to or channel not in ADDRESSES:
            return None
        address = ADDRESSES[channel](to)
        if address is None or kept is None:
            return False
        return hmac.compare_digest(self.codes.address_digest(channel, address), kept)


#: How a typed address is read for each channel whose messages go to one, as the send
#: read the patient's (``contacts``): an email address, or a mobile number as E.164.
ADDRESSES: dict[str, Callable[[object], str | None]] = {
    "email": valid_email,
    "sms": valid_mobile,
}
