"""One notice out through the channels: email, then SMS, then a letter.

A failure that may pass is retried with doubling back-off; a bounce (5xx, a DSN, a
refused number) marks the address and falls back at once to the next channel; a
channel whose server cannot be reached is "down" for the run after ``attempts``
failures in a row, and its notices wait for the next run. Every state is written to
the notice table before the job goes on: ``sent`` is committed as soon as the far end
accepted the message.

Several lanes may deliver at once (the job's threads, each with its own SMTP
connection): the shared state here is kept under a lock, and a channel that cannot
send from several threads at once (``concurrent`` not set) is used by one at a time.
A lane sends its next notice only once the last one's ``sent`` is committed, so at
most one notice per lane is ever in doubt after a kill; lanes that finish together
share that commit (``SentCommits``). The ``notify:notice:sent`` ledger entries are
appended in that same transaction: a notice is never marked sent without its entry,
nor has an entry without being marked sent, wherever the job is killed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from carevault.clock import from_micros
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.ledger.trail import AuditTrail
from carevault.notify import store as states
from carevault.notify.audit import notice_event
from carevault.notify.channels import Bounced, Channel, Outgoing, TryLater, Unreachable
from carevault.notify.codes import CodeKeys
from carevault.notify.contacts import Recipient
from carevault.notify.notice import Sender, render
from carevault.notify.scope import Exposure, Incident
from carevault.notify.store import NoticeRow, NoticeStore

CHANNEL_ORDER = ("email", "sms", "letter")


@dataclass(frozen=True)
class Pacing:
    rate: float
    attempts: int
    retry_seconds: float
    batch: int
    max_wait_seconds: float = 60.0
    #: Notices delivered at once (threads, each with its own connection).
    lanes: int = 4


@dataclass(frozen=True)
class Notice:
    """One notice of the batch in hand, ready to go."""

    exposure: Exposure
    key: str
    recipient: Recipient
    pseudonym: str | None
    row: NoticeRow
    #: The pseudonyms of every Patient record of the person the notice covers.
    covers: tuple[str, ...] = ()


@dataclass
class _Waiting:
    values: dict[str, object]
    event: AuditEvent
    done: bool = False
    error: BaseException | None = None


class SentCommits:
    """Group commit of ``sent`` states: a lane whose message was accepted waits until its
    row says ``sent`` durably, its ledger entry with it, and lanes that finish together
    share one transaction (one disk flush, one ledger append) instead of queueing for
    one each. The first to arrive while no commit is under way commits everything
    waiting; the others wait for it."""

    def __init__(self, store: NoticeStore, audit: AuditTrail) -> None:
        self.store = store
        self.audit = audit
        self._condition = threading.Condition()
        self._queue: list[_Waiting] = []
        self._busy = False

    def commit(self, values: dict[str, object], event: AuditEvent) -> None:
        """Returns once ``values``' notice is committed ``sent`` together with its ledger
        ``event`` (raises if that failed: then neither is)."""
        mine = _Waiting(values, event)
        with self._condition:
            self._queue.append(mine)
            while self._busy and not mine.done:
                self._condition.wait()
            if mine.done:
                if mine.error is not None:
                    raise mine.error
                return
            self._busy = True
            taken, self._queue = self._queue, []
        error: BaseException | None = None
        try:
            self.store.mark_sent(
                [waiting.values for waiting in taken], self.audit,
                [waiting.event for waiting in taken],
            )  # fmt: skip
        except BaseException as failure:
            error = failure
        with self._condition:
            for waiting in taken:
                waiting.done, waiting.error = True, error
            self._busy = False
            self._condition.notify_all()
        if error is not None:
            raise error


class Delivery:
    def __init__(
        self,
        *,
        store: NoticeStore,
        channels: dict[str, Channel],
        codes: CodeKeys,
        sender: Sender,
        audit: AuditTrail,
        pacing: Pacing,
        now_us: Callable[[], int],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.channels = channels
        self.codes = codes
        self.sender = sender
        self.audit = audit
        self.pacing = pacing
        self.now_us = now_us
        self.sleep = sleep
        self._lock = threading.Lock()
        self._commits = SentCommits(store, audit)
        self._channel_locks = {
            name: threading.Lock()
            for name, channel in channels.items()
            if not getattr(channel, "concurrent", False)
        }
        self._next_send = 0.0
        self._bounced: set[str] = set()
        #: Failures in a row of each channel, per lane (a lane's own connection).
        self._failures: dict[tuple[str, int], int] = {}
        #: Channels whose server could not be reached ``attempts`` times in a row.
        self.down: set[str] = set()

    def prepare(self, recipients: Iterable[Recipient]) -> None:
        """Look up the batch's bounced addresses in one query (bounces found while the
        batch is delivered are added as they come)."""
        found = self.store.bounced(digest for r in recipients for digest in self._digests(r))
        with self._lock:
            self._bounced = found

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()

    # --- one notice ------------------------------------------------------------------------

    def _digests(self, recipient: Recipient) -> list[str]:
        return [
            self.codes.address_digest(name, value)
            for name, value in (("email", recipient.email), ("sms", recipient.mobile))
            if value
        ]

    def _channels_left(self, recipient: Recipient) -> list[str]:
        addresses = {"email": recipient.email, "sms": recipient.mobile}
        digests = {
            name: self.codes.address_digest(name, value)
            for name, value in addresses.items()
            if value
        }
        with self._lock:
            bounced = set(self._bounced)
        return [
            name
            for name in recipient.channels
            if name in self.channels and digests.get(name) not in bounced
        ]

    def deliver(self, incident: Incident, notice: Notice) -> str:
        """Send ``notice`` by the first channel that takes it; its final or pending state."""
        key, recipient, row = notice.key, notice.recipient, notice.row
        attempts = row.attempts
        for channel_name in self._channels_left(recipient):
            start = (
                CHANNEL_ORDER.index(row.channel)
                if row.channel in CHANNEL_ORDER
                else len(CHANNEL_ORDER)
            )
            if CHANNEL_ORDER.index(channel_name) < start:
                continue
            # Each channel's message carries its own code; the row keeps the digest of the
            # code of the channel it is at, so only a delivered message's code verifies.
            code = self.codes.code_for(key, channel_name)
            code_digest = self.codes.issued_digest(key, channel_name)
            if channel_name in self.down:
                self.store.set_state([key], states.PENDING, channel=channel_name,
                                     code_digest=code_digest,
                                     last_error=f"{channel_name} unreachable")  # fmt: skip
                return states.PENDING
            rendered = render(self.sender, incident, notice.exposure, recipient, code,
                              at=from_micros(self.now_us()))  # fmt: skip
            outgoing = Outgoing(key, recipient, rendered, incident.incident_id)
            address = recipient.email if channel_name == "email" else recipient.mobile
            digest = self.codes.address_digest(channel_name, address) if address else None
            if channel_name != row.channel:
                attempts = 0
                self.store.set_state([key], states.SENDING, channel=channel_name, attempts=0,
                                     code_digest=code_digest)  # fmt: skip
            self._pace()
            try:
                self._send(channel_name, outgoing)
            except Bounced as error:
                self._bounce(incident, notice, channel_name, digest, error)
                row = _moved(row, channel_name)
                continue
            except Unreachable as error:
                self._unreachable(channel_name)
                self.store.set_state(
                    [key], states.PENDING, next_attempt_us=0, channel=channel_name,
                    code_digest=code_digest, last_error=str(error)[:200],
                )  # fmt: skip
                return states.PENDING
            except TryLater as error:
                attempts += 1
                if attempts < self.pacing.attempts:
                    delay = self.pacing.retry_seconds * 2 ** (attempts - 1)
                    self.store.set_state(
                        [key], states.PENDING, attempts=attempts,
                        next_attempt_us=self.now_us() + int(delay * 1e6),
                        last_error=str(error)[:200], channel=channel_name,
                        code_digest=code_digest,
                    )  # fmt: skip
                    return states.PENDING
                row = _moved(row, channel_name)
                continue
            self._sent(incident, notice, channel_name, digest, attempts + 1, code_digest)
            return states.SENT
        self.store.set_state([key], states.UNREACHABLE, last_error="every channel failed")
        return states.UNREACHABLE

    def _send(self, channel_name: str, outgoing: Outgoing) -> None:
        channel = self.channels[channel_name]
        lock = self._channel_locks.get(channel_name)
        if lock is None:
            channel.send(outgoing)
            return
        with lock:
            channel.send(outgoing)

    def _sent(
        self, incident: Incident, notice: Notice, channel_name: str, digest: str | None,
        attempts: int, code_digest: str,
    ) -> None:  # fmt: skip
        with self._lock:
            self._failures[(channel_name, threading.get_ident())] = 0
        sent_us = self.now_us()
        detail: dict[str, object] = {
            "notice": notice.key, "channel": channel_name, "tier": notice.exposure.tier,
        }  # fmt: skip
        if len(notice.covers) > 1:
            # One person's records (one HKID): the one notice covers them all, and its
            # entry names each (the entry's own pseudonym is the record it went out from).
            detail["covers"] = list(notice.covers)
        if notice.recipient.untrusted_versions:
            # Written to details taken without the versions a compromised principal
            # wrote (the scope's ``changed``), not to the record as it stands.
            detail["details_without_versions"] = list(notice.recipient.untrusted_versions)
        event = notice_event(
            Tag.NOTIFY_NOTICE_SENT, incident.incident_id, notice.pseudonym, detail, sent_us
        )
        self._commits.commit(
            {"key": notice.key, "channel": channel_name, "sent_us": sent_us,
             "attempts": attempts, "address_digest": digest, "code_digest": code_digest},
            event,
        )  # fmt: skip

    def _bounce(
        self, incident: Incident, notice: Notice, channel_name: str, digest: str | None,
        error: Bounced,
    ) -> None:  # fmt: skip
        if digest:
            self.store.add_bounce(digest, channel_name, str(error), self.now_us())
            with self._lock:
                self._bounced.add(digest)
        self.audit.record(
            [
                notice_event(
                    Tag.NOTIFY_NOTICE_BOUNCED, incident.incident_id, notice.pseudonym,
                    {"notice": notice.key, "channel": channel_name, "reason": str(error)[:100]},
                    self.now_us(), Outcome.FAILED,
                )
            ]
        )  # fmt: skip

    def _unreachable(self, channel_name: str) -> None:
        """The server, not this address: nothing is charged to the notice. Wait,
        doubling; after ``attempts`` failures in a row on one lane the channel is down
        for this run and its notices wait for the next (no mass fallback because a relay
        is down or misconfigured). Counted per lane: lanes failing together at one
        moment are one failure each, not ``lanes`` in a row."""
        lane = (channel_name, threading.get_ident())
        with self._lock:
            failures = self._failures.get(lane, 0) + 1
            self._failures[lane] = failures
            if failures >= self.pacing.attempts:
                self.down.add(channel_name)
                return
        self.sleep(
            min(self.pacing.retry_seconds * 2 ** (failures - 1), self.pacing.max_wait_seconds)
        )

    def _pace(self) -> None:
        """At most ``rate`` sends a second, whichever lane sends."""
        with self._lock:
            now = time.monotonic()
            wait = max(0.0, self._next_send - now)
            self._next_send = max(now, self._next_send) + 1.0 / self.pacing.rate
        if wait > 0:
            self.sleep(wait)


def _moved(row: NoticeRow, channel: str) -> NoticeRow:
    """``row`` as if it had moved past ``channel`` (the next channel starts afresh)."""
    following = CHANNEL_ORDER[min(CHANNEL_ORDER.index(channel) + 1, len(CHANNEL_ORDER) - 1)]
    if channel == CHANNEL_ORDER[-1]:
        following = "none"
    return NoticeRow(**{**row.__dict__, "channel": following, "attempts": 0})
