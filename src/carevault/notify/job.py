"""The send job: every notifiable person of an incident gets exactly one notice.

People, not Patient records, as the scope counts them (``Scope.notices``): a person's
records of one HKID make one notice, covering every record's data, keyed by the records
it covers (``notice_key_of``), listed under the person's id, and sent to the contact of
the record updated last (``contacts.contact_of``).

Resumable and idempotent. A notice's row (its key, code digest, plan) is written
before anything is sent, and its state is set to ``sending`` and committed before the
message leaves; ``sent`` is committed as soon as the far end accepted it, in one
transaction with its ``notify:notice:sent`` ledger entry (never one without the other). A job that
starts again — after a kill at any point — first settles the notices left
``sending``: an email that the relay's journal holds is sent; anything else is sent
again under the same key (the SMS gateway drops a key it has seen; a letter is the
same file). Without a journal an email interrupted between the relay's "250" and our
commit can arrive twice (at most one per lane): configure
``CAREVAULT_NOTIFY_JOURNAL_DIR``.

Work goes in batches: the batch's rows in one query, its people's records in one gate read
(``reader``), its new rows in one insert, ``sending`` for all of it in one commit;
then its notices are delivered (``delivery``) by ``lanes`` threads at once, throttled
to ``rate`` notices a second.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from carevault.ledger.events import Outcome, Tag
from carevault.ledger.trail import AuditTrail
from carevault.notify import store as states
from carevault.notify.audit import NOTIFY_CALLER, notice_event
from carevault.notify.channels import Channel
from carevault.notify.codes import CodeKeys
from carevault.notify.contacts import Recipient
from carevault.notify.delivery import CHANNEL_ORDER, Delivery, Notice, Pacing
from carevault.notify.lease import LEASE_US, JobRunning, lease_owner, owner_alive
from carevault.notify.letters import LetterChannel
from carevault.notify.notice import Sender
from carevault.notify.reader import Person, Reader
from carevault.notify.recovery import settle, take_bounces
from carevault.notify.scope import Exposure, Scope
from carevault.notify.store import NoticeRow, NoticeStore

__all__ = ["CHANNEL_ORDER", "NOTIFY_CALLER", "JobRunning", "Pacing", "Progress", "Reader",
           "SendJob", "lease_owner", "notice_key", "notice_key_of", "owner_alive"]  # fmt: skip

#: Each notice's person (its ``patient_id``) → who receives it (``Reader.people``).
Found = dict[str, Person]


def notice_key(incident_id: str, patient_id: str) -> str:
    return hashlib.sha256(f"{incident_id}\x00{patient_id}".encode()).hexdigest()[:32]


def notice_key_of(incident_id: str, exposure: Exposure) -> str:
    """The key of ``exposure``'s notice (``Scope.notices``): of the Patient records it
    covers, so one record's is ``notice_key`` of its id, as before people were grouped.
    A person's record that joins the scope in a later run makes a new notice covering
    all of theirs (told once more, never less), not one already sent that left it out."""
    return notice_key(incident_id, ",".join(exposure.covers))


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
        self.audit = audit
        self.pacing = pacing
        self.now_us = now_us
        self.journal = journal
        self.dsn = dsn
        self.delivery = Delivery(
            store=store, channels=channels, codes=codes, sender=sender, audit=audit,
            pacing=pacing, now_us=now_us, sleep=sleep,
        )  # fmt: skip
        self.sleep = sleep
        #: Set to stop after the batch in hand (a later run resumes).
        self.stop = threading.Event()
        self.owner = lease_owner()
        self._lanes: ThreadPoolExecutor | None = None

    # --- the run ---------------------------------------------------------------------------

    def run(self, scope: Scope, tiers: Sequence[str], advance: Advance | None = None) -> Progress:
        # The notices say which regulators were told: those whose report is filed now.
        scope = scope.with_filings(self.store.filed(scope.incident.incident_id))
        incident = scope.incident
        exposures = {notice_key_of(incident.incident_id, e): e for e in scope.notices(tiers)}
        progress = Progress(total=len(exposures))
        if not self.store.start_job(
            incident.incident_id, tiers, len(exposures), self.now_us(), owner=self.owner,
            lease_us=self._lease_us(), alive=owner_alive,
        ):  # fmt: skip
            raise JobRunning(
                f"the notices of incident {incident.incident_id} are being sent by another "
                "process; see `carevault notify status`"
            )
        try:
            # Notices, one a person (a person with two Patient records is one notice).
            self._record(Tag.NOTIFY_JOB_RUN, incident.incident_id, {"notices": len(exposures)})
            self.settle(incident.incident_id)
            self.take_bounces(incident.incident_id)
            self._send_all(scope, exposures, progress, advance)
            progress.down = sorted(self.delivery.down)
            letters = self.channels.get("letter")
            if isinstance(letters, LetterChannel):
                progress.print_file = letters.merge(incident.incident_id)
            if not (self.stop.is_set() or self.delivery.down):
                self.store.finish_job(incident.incident_id, self.now_us())
        finally:
            self.store.release_lease(incident.incident_id, self.owner)
        return progress

    def _send_all(
        self, scope: Scope, exposures: dict[str, Exposure], progress: Progress,
        advance: Advance | None,
    ) -> None:  # fmt: skip
        lanes = max(1, self.pacing.lanes)
        self._lanes = ThreadPoolExecutor(lanes, "notify-lane") if lanes > 1 else None
        try:
            iterator = iter(exposures.values())
            # A small first batch: the first notices leave without waiting for a whole
            # batch to be read and planned.
            size = min(self.pacing.batch, 2 * lanes)
            while not self.stop.is_set() and (batch := list(islice(iterator, size))):
                self._batch(scope, batch, progress, advance, first_pass=True)
                size = self.pacing.batch
            self._deferred(scope, exposures, progress, advance)
        finally:
            if self._lanes is not None:
                self._lanes.shutdown()
            self._lanes = None
            self.delivery.close()

    def _deferred(
        self, scope: Scope, exposures: dict[str, Exposure], progress: Progress,
        advance: Advance | None,
    ) -> None:  # fmt: skip
        """Deferred notices (a failure that may pass), when due, until none is left.
        Notices of patients the scope no longer names stay as they are (status lists
        them)."""
        incident_id = scope.incident.incident_id
        while not self.stop.is_set():
            waiting = [
                row
                for row in self.store.in_state(incident_id, states.PENDING)
                if row.notice_key in exposures and row.channel not in self.delivery.down
            ]
            if not waiting:
                return
            due = min(row.next_attempt_us for row in waiting)
            pause = (due - self.now_us()) / 1e6
            if pause > 0:
                self.sleep(min(pause, self.pacing.max_wait_seconds))
                self._renew(incident_id)
            ready = [row for row in waiting if row.next_attempt_us <= self.now_us()]
            batch = [exposures[row.notice_key] for row in ready]
            for start in range(0, len(batch), self.pacing.batch):
                self._batch(
                    scope, batch[start : start + self.pacing.batch], progress, advance,
                    first_pass=False,
                )  # fmt: skip
            self.take_bounces(incident_id)

    def _lease_us(self) -> int:
        return max(LEASE_US, int(4 * self.pacing.max_wait_seconds * 1e6))

    def _renew(self, incident_id: str) -> None:
        if not self.store.renew_lease(incident_id, self.owner, self.now_us(), self._lease_us()):
            # Taken over after our lease ran out (this process stalled): stop sending.
            self.stop.set()
            raise JobRunning(f"the send job of incident {incident_id} lost its lease")

    def settle(self, incident_id: str) -> int:
        """Notices a killed job left ``sending``: see ``recovery.settle``."""
        return settle(self.store, self.audit, incident_id, self.journal, self.now_us)

    def take_bounces(self, incident_id: str) -> int:
        """DSNs in the bounce mailbox: see ``recovery.take_bounces``."""
        return take_bounces(self.store, self.codes, self.dsn, self.now_us)

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
        self._renew(incident_id)
        keys = {e.patient_id: notice_key_of(incident_id, e) for e in batch}
        rows = self.store.rows(incident_id, list(keys.values()))
        now = self.now_us()
        todo = [
            e for e in batch
            if (row := rows.get(keys[e.patient_id])) is None
            or (row.state == states.PENDING and row.next_attempt_us <= now)
        ]  # fmt: skip
        if first_pass:
            _count_done(progress, [rows[keys[e.patient_id]] for e in batch
                                   if keys[e.patient_id] in rows and e not in todo])  # fmt: skip
        if not todo:
            if advance:
                advance(progress)
            return
        found = self.reader.people(todo, scope.changed)
        gone = [
            keys[e.patient_id]
            for e in todo
            if e.patient_id not in found and keys[e.patient_id] in rows
        ]
        self.store.set_state(gone, states.MISSING, last_error="no longer on record")
        self._plan(incident_id, todo, keys, rows, found, progress)
        rows = self.store.rows(incident_id, [keys[e.patient_id] for e in todo])
        ready = [
            Notice(
                e,
                keys[e.patient_id],
                person.recipient,
                person.pseudonym,
                rows[keys[e.patient_id]],
                person.covers,
            )
            for e in todo
            if rows[keys[e.patient_id]].state == states.PENDING
            and (person := found.get(e.patient_id)) is not None
        ]
        self.store.set_state([n.key for n in ready], states.SENDING)
        self.delivery.prepare(n.recipient for n in ready)
        for outcome, finished in self._deliver_all(scope, ready):
            _count_outcome(progress, outcome, finished, first_pass=first_pass)
            if advance:
                advance(progress)

    def _deliver_all(self, scope: Scope, ready: list[Notice]) -> list[tuple[str, float]]:
        def one(notice: Notice) -> tuple[str, float]:
            return self.delivery.deliver(scope.incident, notice), time.perf_counter()

        if self._lanes is None or len(ready) <= 1:
            return [one(notice) for notice in ready]
        return list(self._lanes.map(one, ready))

    def _plan(
        self,
        incident_id: str,
        todo: list[Exposure],
        keys: dict[str, str],
        rows: dict[str, NoticeRow],
        found: Found,
        progress: Progress,
    ) -> None:
        """The rows of notices not planned yet: who receives it, by which channel first,
        or why no one does (deceased, no way to reach them, no longer on record)."""
        new: list[dict[str, object]] = []
        skipped = []
        now = self.now_us()
        for exposure in todo:
            key = keys[exposure.patient_id]
            if key in rows:
                continue
            entry = found.get(exposure.patient_id)
            recipient = entry.recipient if entry else None
            state, language, who, channel = _plan_of(recipient)
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
                    "code_digest": self.codes.issued_digest(key, channel),
                    "created_us": now,
                }
            )
            if state != states.PENDING:
                progress.skipped += 1
                progress.done += 1
                skipped.append(
                    notice_event(
                        Tag.NOTIFY_NOTICE_SKIPPED, incident_id, entry.pseudonym if entry else None,
                        {"notice": key, "state": state}, self.now_us(), Outcome.FAILED,
                    )
                )  # fmt: skip
        self.store.insert(new)
        if skipped:
            self.audit.record(skipped)

    def _record(self, tag: Tag, incident_id: str, detail: dict[str, object]) -> None:
        self.audit.record([notice_event(tag, incident_id, None, detail, self.now_us())])


def _plan_of(recipient: Recipient | None) -> tuple[str, str, str, str]:
    """(state, language, who receives it, first channel) of a new notice."""
    if recipient is None:
        return states.MISSING, "en", "none", "none"
    who = "guardian" if recipient.guardian else "patient"
    channel = recipient.channels[0] if recipient.channels else "none"
    if recipient.deceased:
        state = states.DECEASED
    elif recipient.channels:
        state = states.PENDING
    else:
        state = states.UNREACHABLE
    return state, recipient.language, who, channel


def _count_done(progress: Progress, rows: list[NoticeRow]) -> None:
    """Notices a earlier run already took as far as it could."""
    for row in rows:
        if row.state == states.SENT:
            progress.sent += 1
        elif row.state in states.FINAL:
            progress.skipped += 1
        else:
            progress.deferred += 1
    progress.done += len(rows)


def _count_outcome(progress: Progress, outcome: str, finished: float, *, first_pass: bool) -> None:
    if outcome in states.FINAL:
        progress.done += 1
        if outcome == states.SENT:
            progress.sent += 1
            if progress.first_sent_at is None or finished < progress.first_sent_at:
                progress.first_sent_at = finished
        else:
            progress.skipped += 1
        if not first_pass:
            progress.deferred = max(0, progress.deferred - 1)
    elif first_pass:
        progress.deferred += 1
