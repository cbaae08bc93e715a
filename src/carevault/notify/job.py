"""The send job: every notifiable patient of an incident gets exactly one notice.

Resumable and idempotent. A notice's row (its key, code digest, plan) is written
before anything is sent, and its state is set to ``sending`` and committed before the
message leaves; ``sent`` is committed as soon as the far end accepted it. A job that
starts again — after a kill at any point — first settles the notices left
``sending``: an email that the relay's journal holds is sent; anything else is sent
again under the same key (the SMS gateway drops a key it has seen; a letter is the
same file). Without a journal an email interrupted between the relay's "250" and our
commit can arrive twice: configure ``CAREVAULT_NOTIFY_JOURNAL_DIR``.

Throttled to ``rate`` notices a second; a failure that may pass is retried with
doubling back-off, then the next channel is tried; a bounce (5xx, a DSN, a refused
number) marks the address and falls back at once: email → SMS → letter.
"""

from __future__ import annotations

import hashlib
import json
import mailbox
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from itertools import islice
from pathlib import Path

from carevault.fhir import jsonio
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate import Caller, Gate
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.ledger.trail import AuditTrail
from carevault.notify import store as states
from carevault.notify.channels import Bounced, Channel, Outgoing, TryLater, Unreachable
from carevault.notify.codes import CodeKeys
from carevault.notify.contacts import Recipient, recipient_of
from carevault.notify.letters import LetterChannel
from carevault.notify.mailboxes import journal_keys, read_bounces
from carevault.notify.notice import Sender, render
from carevault.notify.scope import Exposure, Scope
from carevault.notify.store import NoticeRow, NoticeStore
from carevault.vault.records import Gone, NotFound

#: Who reads patients' contact details to notify them, and why (every read is a ledger
#: entry under this principal and purpose).
NOTIFY_CALLER = Caller(principal="system:notify", purpose="breach-notification")
CHANNEL_ORDER = ("email", "sms", "letter")


def notice_key(incident_id: str, patient_id: str) -> str:
    return hashlib.sha256(f"{incident_id}\x00{patient_id}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Pacing:
    rate: float
    attempts: int
    retry_seconds: float
    batch: int
    max_wait_seconds: float = 60.0


@dataclass
class Progress:
    total: int = 0
    done: int = 0
    sent: int = 0
    skipped: int = 0
    deferred: int = 0
    first_sent_at: float | None = None
    print_file: Path | None = None
    #: Channels that were unreachable: their notices wait for the next run.
    down: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)


Advance = Callable[[Progress], None]


@dataclass
class Reader:
    """Reads patients through the gate as the notifying system (one ledger entry each)."""

    gate: Gate
    today: Callable[[], date]
    threads: int = 4

    def recipients(self, patient_ids: Sequence[str]) -> dict[str, tuple[Recipient, str | None]]:
        """patient id → (recipient, pseudonym); absent if the patient is gone."""
        patient = RESOURCE_TYPES["Patient"]
        today = self.today()

        def one(patient_id: str) -> tuple[str, tuple[Recipient, str | None] | None]:
            if patient_id.startswith("pseudonym:"):
                return patient_id, None
            try:
                opened = self.gate.read(NOTIFY_CALLER, patient, patient_id)
            except (NotFound, Gone):
                return patient_id, None
            if opened.body is None:
                return patient_id, None
            resource = jsonio.load(opened.body)
            return patient_id, (
                recipient_of(patient_id, resource, today),
                opened.head.patient_pseudonym,
            )

        if len(patient_ids) <= 1 or self.threads <= 1:
            results = [one(p) for p in patient_ids]
        else:
            with ThreadPoolExecutor(self.threads) as pool:
                results = list(pool.map(one, patient_ids))
        return {pid: found for pid, found in results if found is not None}


class SendJob:
    def __init__(
        self,
        *,
        store: NoticeStore,
        reader: Reader,
        channels: dict[str, Channel],
        codes: CodeKeys,
        sender: Sender,
        audit: AuditTrail,
        pacing: Pacing,
        now_us: Callable[[], int],
        journal: Path | None = None,
        dsn: Path | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.reader = reader
        self.channels = channels
        self.codes = codes
        self.sender = sender
        self.audit = audit
        self.pacing = pacing
        self.now_us = now_us
        self.journal = journal
        self.dsn = dsn
        self.sleep = sleep
        self._next_send = 0.0
        #: Set to stop after the batch in hand (a later run resumes).
        self.stop = threading.Event()
        self._bounced: set[str] = set()
        self._failures: dict[str, int] = {}
        #: Channels whose server could not be reached ``attempts`` times in a row.
        self._down: set[str] = set()
        #: "Sent" ledger entries of the batch in hand, recorded together at its end (the
        #: notice table, committed per notice, is what resuming relies on).
        self._sent_events: list[AuditEvent] = []

    # --- the run ---------------------------------------------------------------------------

    def run(self, scope: Scope, tiers: Sequence[str], advance: Advance | None = None) -> Progress:
        incident = scope.incident
        exposures = {e.patient_id: e for e in scope.exposures(tiers)}
        progress = Progress(total=len(exposures))
        self.store.start_job(incident.incident_id, tiers, len(exposures), self.now_us())
        self._record(Tag.NOTIFY_JOB_RUN, incident.incident_id, None, {"patients": len(exposures)})
        self.settle(incident.incident_id)
        self.take_bounces(incident.incident_id)
        iterator = iter(exposures.values())
        while not self.stop.is_set() and (batch := list(islice(iterator, self.pacing.batch))):
            self._batch(scope, batch, progress, advance, first_pass=True)
        # Deferred notices (a failure that may pass), until none is left.
        while not self.stop.is_set():
            # Notices of patients the scope no longer names stay as they are (status
            # lists them); the rest are retried when due.
            waiting = [
                row
                for row in self.store.in_state(incident.incident_id, states.PENDING)
                if row.patient_id in exposures and row.channel not in self._down
            ]
            if not waiting:
                break
            due = min(row.next_attempt_us for row in waiting)
            pause = (due - self.now_us()) / 1e6
            if pause > 0:
                self.sleep(min(pause, self.pacing.max_wait_seconds))
            ready = [row for row in waiting if row.next_attempt_us <= self.now_us()]
            batch = [exposures[row.patient_id] for row in ready if row.patient_id in exposures]
            for start in range(0, len(batch), self.pacing.batch):
                self._batch(
                    scope, batch[start : start + self.pacing.batch], progress, advance,
                    first_pass=False,
                )  # fmt: skip
            self.take_bounces(incident.incident_id)
        for channel in self.channels.values():
            channel.close()
        progress.down = sorted(self._down)
        letters = self.channels.get("letter")
        if isinstance(letters, LetterChannel):
            progress.print_file = letters.merge(incident.incident_id)
        if not (self.stop.is_set() or self._down):
            self.store.finish_job(incident.incident_id, self.now_us())
        return progress

    def settle(self, incident_id: str) -> int:
        """Notices a killed job left ``sending``: sent if the journal holds them, else due
        again (under the same key). The number settled as sent."""
        doubtful = self.store.in_state(incident_id, states.SENDING)
        if not doubtful:
            return 0
        held = journal_keys(self.journal)
        sent = [
            row.notice_key for row in doubtful if row.channel == "email" and row.notice_key in held
        ]
        if sent:
            self.store.set_state(sent, states.SENT, sent_us=self.now_us(), last_error=None)
            self.audit.record(
                [
                    self._event(Tag.NOTIFY_NOTICE_SENT, incident_id, None,
                                {"notice": key, "channel": "email", "settled": "journal"})
                    for key in sent
                ]
            )  # fmt: skip
        again = [row.notice_key for row in doubtful if row.notice_key not in set(sent)]
        self.store.set_state(again, states.PENDING, next_attempt_us=0)
        return len(sent)

    def take_bounces(self, incident_id: str) -> int:
        """DSNs in the bounce mailbox: mark the address, send the notice another way."""
        found = read_bounces(self.dsn)
        if not found:
            return 0
        rows = self.store.by_message([b.notice_key for b in found])
        requeued = []
        for bounce in found:
            row = rows.get(bounce.notice_key)
            if bounce.address:
                self.store.add_bounce(
                    self.codes.address_digest("email", bounce.address),
                    "email",
                    f"DSN {bounce.status}",
                    self.now_us(),
                )
            if row is not None and row.state == states.SENT and row.channel == "email":
                requeued.append(row.notice_key)
        self.store.set_state(requeued, states.PENDING, next_attempt_us=0, attempts=0)
        box = mailbox.Maildir(str(self.dsn), create=False)
        for bounce in found:
            box.discard(bounce.mail_key)
        return len(requeued)

    # --- one batch -------------------------------------------------------------------------

    def _batch(
        self,
        scope: Scope,
        batch: list[Exposure],
        progress: Progress,
        advance: Advance | None,
        *,
        first_pass: bool,
    ) -> None:
        incident_id = scope.incident.incident_id
        keys = {e.patient_id: notice_key(incident_id, e.patient_id) for e in batch}
        rows = self.store.rows(incident_id, list(keys.values()))
        now = self.now_us()
        todo = [
            e for e in batch
            if (row := rows.get(keys[e.patient_id])) is None
            or (row.state == states.PENDING and row.next_attempt_us <= now)
        ]  # fmt: skip
        if first_pass:
            done = [e for e in batch if keys[e.patient_id] in rows and e not in todo]
            for e in done:
                row = rows[keys[e.patient_id]]
                if row.state == states.SENT:
                    progress.sent += 1
                elif row.state in states.FINAL:
                    progress.skipped += 1
                else:
                    progress.deferred += 1
            progress.done += len(done)
        if not todo:
            if advance:
                advance(progress)
            return
        found = self.reader.recipients([e.patient_id for e in todo])
        gone = [
            keys[e.patient_id]
            for e in todo
            if e.patient_id not in found and keys[e.patient_id] in rows
        ]
        self.store.set_state(gone, states.MISSING, last_error="no longer on record")
        self._plan(incident_id, todo, keys, rows, found, progress)
        rows = self.store.rows(incident_id, [keys[e.patient_id] for e in todo])
        ready = [
            e for e in todo
            if rows[keys[e.patient_id]].state == states.PENDING and e.patient_id in found
        ]  # fmt: skip
        self.store.set_state([keys[e.patient_id] for e in ready], states.SENDING)
        # The batch's bounced addresses in one query (a bounce in the batch is added).
        self._bounced = self.store.bounced(
            digest for e in ready for digest in self._digests(found[e.patient_id][0])
        )
        for exposure in ready:
            key = keys[exposure.patient_id]
            recipient, pseudonym = found[exposure.patient_id]
            outcome = self._deliver(scope, exposure, key, recipient, pseudonym, rows[key])
            if outcome in states.FINAL:
                progress.done += 1
                if outcome == states.SENT:
                    progress.sent += 1
                    if progress.first_sent_at is None:
                        progress.first_sent_at = time.perf_counter()
                else:
                    progress.skipped += 1
                if not first_pass:
                    progress.deferred = max(0, progress.deferred - 1)
            elif first_pass:
                progress.deferred += 1
            if advance:
                advance(progress)
        self._flush_events()

    def _flush_events(self) -> None:
        events, self._sent_events = self._sent_events, []
        if events:
            self.audit.record(events)

    def _plan(
        self,
        incident_id: str,
        todo: list[Exposure],
        keys: dict[str, str],
        rows: dict[str, NoticeRow],
        found: dict[str, tuple[Recipient, str | None]],
        progress: Progress,
    ) -> None:
        new: list[dict[str, object]] = []
        skipped: list[AuditEvent] = []
        now = self.now_us()
        for exposure in todo:
            key = keys[exposure.patient_id]
            if key in rows:
                continue
            entry = found.get(exposure.patient_id)
            recipient = entry[0] if entry else None
            if recipient is None:
                state, language, who, channel = states.MISSING, "en", "none", "none"
            else:
                language = recipient.language
                who = "guardian" if recipient.guardian else "patient"
                channel = recipient.channels[0] if recipient.channels else "none"
                state = (
                    states.DECEASED
                    if recipient.deceased
                    else states.PENDING
                    if recipient.channels
                    else states.UNREACHABLE
                )
            new.append(
                {
                    "notice_key": key,
                    "incident_id": incident_id,
                    "patient_id": exposure.patient_id,
                    "tier": exposure.tier,
                    "categories": json.dumps([str(c) for c in exposure.categories]),
                    "language": language,
                    "recipient": who,
                    "channel": channel,
                    "state": state,
                    "attempts": 0,
                    "next_attempt_us": 0,
                    "code_digest": self.codes.digest(self.codes.code_for(key)),
                    "created_us": now,
                }
            )
            if state != states.PENDING:
                progress.skipped += 1
                progress.done += 1
                skipped.append(
                    self._event(
                        Tag.NOTIFY_NOTICE_SKIPPED, incident_id, entry[1] if entry else None,
                        {"notice": key, "state": state}, Outcome.FAILED,
                    )
                )  # fmt: skip
        self.store.insert(new)
        if skipped:
            self.audit.record(skipped)

    # --- one notice ------------------------------------------------------------------------

    def _channels_left(self, recipient: Recipient) -> list[str]:
        addresses = {
            "email": recipient.email,
            "sms": recipient.mobile,
        }
        digests = {
            name: self.codes.address_digest(name, value)
            for name, value in addresses.items()
            if value
        }
        return [
            name
            for name in recipient.channels
            if name in self.channels and digests.get(name) not in self._bounced
        ]

    def _digests(self, recipient: Recipient) -> list[str]:
        return [
            self.codes.address_digest(name, value)
            for name, value in (("email", recipient.email), ("sms", recipient.mobile))
            if value
        ]

    def _deliver(
        self,
        scope: Scope,
        exposure: Exposure,
        key: str,
        recipient: Recipient,
        pseudonym: str | None,
        row: NoticeRow,
    ) -> str:
        incident = scope.incident
        code = self.codes.code_for(key)
        rendered = render(self.sender, incident, exposure, recipient, code)
        outgoing = Outgoing(key, recipient, rendered, incident.incident_id)
        attempts = row.attempts
        for channel_name in self._channels_left(recipient):
            start = (
                CHANNEL_ORDER.index(row.channel)
                if row.channel in CHANNEL_ORDER
                else len(CHANNEL_ORDER)
            )
            if CHANNEL_ORDER.index(channel_name) < start:
                continue
            if channel_name in self._down:
                self.store.set_state([key], states.PENDING, channel=channel_name,
                                     last_error=f"{channel_name} unreachable")  # fmt: skip
                return states.PENDING
            channel = self.channels[channel_name]
            address = recipient.email if channel_name == "email" else recipient.mobile
            digest = self.codes.address_digest(channel_name, address) if address else None
            if channel_name != row.channel:
                attempts = 0
                self.store.set_state([key], states.SENDING, channel=channel_name, attempts=0)
            self._pace()
            try:
                channel.send(outgoing)
            except Bounced as error:
                if digest:
                    self.store.add_bounce(digest, channel_name, str(error), self.now_us())
                    self._bounced.add(digest)
                self._record(
                    Tag.NOTIFY_NOTICE_BOUNCED, incident.incident_id, pseudonym,
                    {"notice": key, "channel": channel_name, "reason": str(error)[:100]},
                    Outcome.FAILED,
                )  # fmt: skip
                row = _moved(row, channel_name)
                continue
            except Unreachable as error:
                # The server, not this address: nothing is charged to the notice. Wait,
                # doubling; after ``attempts`` failures in a row the channel is down for
                # this run and its notices wait for the next (no mass fallback because a
                # relay is down or misconfigured).
                failures = self._failures.get(channel_name, 0) + 1
                self._failures[channel_name] = failures
                if failures >= self.pacing.attempts:
                    self._down.add(channel_name)
                else:
                    self.sleep(
                        min(self.pacing.retry_seconds * 2 ** (failures - 1),
                            self.pacing.max_wait_seconds)
                    )  # fmt: skip
                self.store.set_state(
                    [key], states.PENDING, next_attempt_us=0, channel=channel_name,
                    last_error=str(error)[:200],
                )  # fmt: skip
                return states.PENDING
            except TryLater as error:
                attempts += 1
                if attempts < self.pacing.attempts:
                    delay = self.pacing.retry_seconds * 2 ** (attempts - 1)
                    self.store.set_state(
                        [key],
                        states.PENDING,
                        attempts=attempts,
                        next_attempt_us=self.now_us() + int(delay * 1e6),
                        last_error=str(error)[:200],
                        channel=channel_name,
                    )
                    return states.PENDING
                row = _moved(row, channel_name)
                continue
            self._failures[channel_name] = 0
            sent_us = self.now_us()
            self.store.set_state(
                [key],
                states.SENT,
                channel=channel_name,
                sent_us=sent_us,
                attempts=attempts + 1,
                address_digest=digest,
                last_error=None,
            )
            self._sent_events.append(
                self._event(
                    Tag.NOTIFY_NOTICE_SENT, incident.incident_id, pseudonym,
                    {"notice": key, "channel": channel_name, "tier": exposure.tier},
                )
            )  # fmt: skip
            return states.SENT
        self.store.set_state([key], states.UNREACHABLE, last_error="every channel failed")
        return states.UNREACHABLE

    def _pace(self) -> None:
        now = time.monotonic()
        if self._next_send > now:
            self.sleep(self._next_send - now)
            now = self._next_send
        self._next_send = max(now, self._next_send) + 1.0 / self.pacing.rate

    def _event(
        self,
        tag: Tag,
        incident_id: str,
        pseudonym: str | None,
        detail: dict[str, object],
        outcome: Outcome = Outcome.SUCCESS,
    ) -> AuditEvent:
        return AuditEvent(
            tag=tag,
            outcome=outcome,
            at_us=self.now_us(),
            principal=NOTIFY_CALLER.principal,
            purpose=NOTIFY_CALLER.purpose,
            patient_pseudonym=pseudonym,
            resource_type="Patient" if pseudonym else None,
            reason=f"incident {incident_id}",
            detail=detail,
        )

    def _record(
        self,
        tag: Tag,
        incident_id: str,
        pseudonym: str | None,
        detail: dict[str, object],
        outcome: Outcome = Outcome.SUCCESS,
    ) -> None:
        self.audit.record([self._event(tag, incident_id, pseudonym, detail, outcome)])


def _moved(row: NoticeRow, channel: str) -> NoticeRow:
    """``row`` as if it had moved past ``channel`` (the next channel starts afresh)."""
    following = CHANNEL_ORDER[min(CHANNEL_ORDER.index(channel) + 1, len(CHANNEL_ORDER) - 1)]
    if channel == CHANNEL_ORDER[-1]:
        following = "none"
    return NoticeRow(**{**row.__dict__, "channel": following, "attempts": 0})
