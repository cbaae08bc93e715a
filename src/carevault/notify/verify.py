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
whether it matched.

A code is in use for ``CAREVAULT_NOTIFY_CODE_DAYS`` after its notice was sent: a genuine
code leaked from an old message or letter, pasted into phishing months later, would
otherwise vouch for it for good. Past its days the verdict is ``expired`` (still
``genuine``: the code was ours, and what reads only ``genuine`` keeps its meaning), with
the day it was sent and no address weighed."""

from __future__ import annotations

import hmac
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.ledger.trail import AuditTrail
from carevault.notify import store as states
from carevault.notify.codes import CodeKeys
from carevault.notify.contacts import valid_email, valid_mobile

#: Microseconds in a day: a code's days are counted from the instant its notice was sent.
DAY_US = 86_400_000_000


class NoticesByCode(Protocol):
    """Where a code's notice is found (``store.NoticeStore``)."""

    def by_code(self, digest: str) -> tuple[str, str, int | None, str | None] | None: ...


class CodeAddresses(Protocol):
    """How many addresses a genuine code was not sent to may still be tried on it
    (``limits.SharedBuckets``)."""

    def code_addresses_left(self, code_digest: str) -> bool: ...

    def spend_code_address(self, code_digest: str) -> None: ...


@dataclass(frozen=True)
class Verdict:
    genuine: bool
    channel: str | None = None
    sent_us: int | None = None
    well_formed: bool = True
    #: Whether the genuine notice was sent to the address given: None when none was
    #: given, when the code is not genuine, or for a letter (its address is not kept).
    sent_to_address: bool | None = None
    #: The address given, as it was read and compared (an email address, or a number
    #: as E.164): the page names it back, so that a reader sees which address a
    #: verdict speaks of (never recorded).
    address: str | None = None
    #: The code was checked against too many addresses today: no verdict on this one.
    address_limited: bool = False
    #: The code is ours, but its notice was sent ``CAREVAULT_NOTIFY_CODE_DAYS`` ago or
    #: more: it is no longer in use, and a message carrying it now is no new notice of
    #: ours. ``genuine`` stays True; no address is weighed.
    expired: bool = False


class Verifier:
    def __init__(
        self,
        store: NoticesByCode,
        codes: CodeKeys,
        audit: AuditTrail,
        now_us: Callable[[], int],
        per_code: CodeAddresses | None = None,
        *,
        code_days: int,
    ) -> None:
        """``per_code``: how many addresses a genuine code was not sent to may still be
        tried on it; None weighs every address. ``code_days``: how long after its notice
        was sent a code is in use (``CAREVAULT_NOTIFY_CODE_DAYS``)."""
        self.per_code = per_code
        self.code_days = code_days
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
        *,
        address_from_link: bool = False,
    ) -> Verdict:
        """The verdict on ``code`` (and, given ``to``, whether its notice was sent to that
        email address or number); returns only once the check is in the ledger.

        ``address_from_link``: the page was opened from a link that carried an address,
        which it did not weigh (``web.verify_routes``); recorded, since a run of such
        checks is a phishing campaign's links being clicked."""
        now_us = self.now_us()
        digest = self.codes.digest(code)
        found = self.store.by_code(digest) if digest else None
        if digest and found is not None and found[0] == states.SENT:
            _, channel, sent_us, kept = found
            if sent_us is not None and now_us >= sent_us + self.code_days * DAY_US:
                # Past its days the code says only that: no address is compared, and the
                # code's budget of addresses is not spent (an answer about the address
                # would speak for a message that is no notice of ours anyway).
                verdict = Verdict(True, channel, sent_us, expired=True)
            else:
                verdict = self._genuine(digest, channel, sent_us, kept, to)
        else:
            verdict = Verdict(False, well_formed=digest is not None)
        if verdict.expired:
            reason = "expired"
        else:
            reason = "genuine" if verdict.genuine else "not a code of ours"
        self.audit.record(
            [
                AuditEvent(
                    tag=Tag.NOTIFY_CODE_CHECKED,
                    outcome=Outcome.SUCCESS if verdict.genuine else Outcome.FAILED,
                    at_us=now_us,
                    principal=None,
                    source_address=source_address,
                    user_agent=(user_agent or "")[:200] or None,
                    reason=reason,
                    detail={
                        "digest": digest[:8] if digest else None,
                        "channel": verdict.channel,
                        **(
                            {"address_given": True, "address_matched": verdict.sent_to_address}
                            if to
                            else {}
                        ),
                        **({"address_from_link": True} if address_from_link else {}),
                        **({"address_limited": True} if verdict.address_limited else {}),
                        **({"expired": True} if verdict.expired else {}),
                    },
                )
            ]
        )
        return verdict

    def _genuine(
        self, digest: str, channel: str, sent_us: int | None, kept: str | None, to: str | None
    ) -> Verdict:
        """The verdict on a code in use, weighing ``to`` within the code's budget."""
        weighed = to if to and channel in ADDRESSES else None
        budget = self.per_code if weighed else None
        if budget is not None and not budget.code_addresses_left(digest):
            # Too many addresses it was not sent to were tried on this code: a verdict
            # on one more (even "sent to you") would let a code seen without its "To"
            # line find its recipient, guess by guess.
            return Verdict(True, channel, sent_us, address_limited=True)
        sent_there = self._sent_to(channel, kept, weighed)
        if budget is not None and sent_there is False:
            budget.spend_code_address(digest)
        return Verdict(
            True,
            channel,
            sent_us,
            sent_to_address=sent_there,
            address=typed_as(channel, weighed) if weighed else None,
        )

    def _sent_to(self, channel: str, kept: str | None, to: str | None) -> bool | None:
        """Whether ``to``, read as an address of ``channel``, is where the notice went.

        None (no answer, as if no address were given) when what was typed is no email
        address or mobile number at all: a typing slip is no evidence that the notice
        went to someone else, and "not sent to you" would have the reader disbelieve a
        genuine notice. An address of the other kind (an email address for a code sent
        by SMS) is one the message was not sent to: False."""
        if not to or channel not in ADDRESSES:
            return None
        read = {name: typed_as(name, to) for name in ADDRESSES}
        address = read[channel]
        if address is None:
            return False if any(read.values()) else None
        if kept is None:
            return False
        return hmac.compare_digest(self.codes.address_digest(channel, address), kept)


#: What a mail program shows around an address copied from a message's "To" line:
#: ``Chan Tai Man <chan@example.com>`` or ``mailto:chan@example.com``.
_ANGLED = re.compile(r"<([^<>]*)>")
_INVISIBLE = {0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x061C, 0x200E, 0x200F}


def typed_as(channel: str, typed: str) -> str | None:
    """``typed`` read as an address of ``channel`` the way the send read the patient's
    (``contacts.valid_email``, ``contacts.valid_mobile``), or None.

    People type what they see, not what the send stored: NFKC first (a Chinese IME in
    full-width mode types ``９１２３ ４５６７`` and ``ｃｈａｎ＠ｅｘａｍｐｌｅ．ｃｏｍ``),
    invisible and direction marks dropped, an address copied with its display name or
    ``mailto:``/``tel:``, a number with its country code but no plus (``852 9123
    4567``, ``00852 9123 4567``). Read wrongly, each answered "not sent to you" to the
    very person the notice went to. Anything left that is not ASCII is no address of
    ours (``\\d`` would take other scripts' digits)."""
    text = unicodedata.normalize("NFKC", typed)
    text = "".join(
        char
        for char in text
        if ord(char) not in _INVISIBLE
        and not 0x202A <= ord(char) <= 0x202E
        and not 0x2066 <= ord(char) <= 0x2069
    ).strip()
    angled = _ANGLED.search(text)
    if angled:
        text = angled.group(1).strip()
    scheme, colon, rest = text.partition(":")
    if colon and scheme.strip().casefold() in ("mailto", "tel", "sms"):
        text = rest.strip()
    if not text.isascii():
        return None
    if channel == "email":
        return valid_email(text)
    digits = re.sub(r"[\s\-().]", "", text)
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    elif re.fullmatch(r"852[5-9]\d{7}", digits):
        digits = "+" + digits
    return valid_mobile(digits)


#: The channels whose messages go to an address the notice keeps a digest of (a
#: letter's postal address is not kept).
ADDRESSES = ("email", "sms")
