"""What a send job does first: settle the notices a killed run left in doubt, and take
the bounces (DSNs) that came back since the last run."""

from __future__ import annotations

import hmac
import mailbox
from collections.abc import Callable
from pathlib import Path

from carevault.ledger.events import Tag
from carevault.ledger.trail import AuditTrail
from carevault.notify import store as states
from carevault.notify.audit import notice_event
from carevault.notify.codes import CodeKeys
from carevault.notify.mailboxes import journal_keys, read_bounces
from carevault.notify.store import NoticeRow, NoticeStore


def settle(
    store: NoticeStore,
    audit: AuditTrail,
    incident_id: str,
    journal: Path | None,
    now_us: Callable[[], int],
) -> int:
    """Notices a killed job left ``sending``: sent if the relay's journal holds them,
    else due again (under the same key). The number settled as sent."""
    doubtful = store.in_state(incident_id, states.SENDING)
    if not doubtful:
        return 0
    held = journal_keys(journal)
    sent = [row.notice_key for row in doubtful if row.channel == "email" and row.notice_key in held]
    # ``sent`` and its ledger entry commit together (a kill here leaves both undone, and
    # the next run settles the same notices again).
    store.settle_sent(
        sent, now_us(), audit,
        [
            notice_event(Tag.NOTIFY_NOTICE_SENT, incident_id, None,
                         {"notice": key, "channel": "email", "settled": "journal"}, now_us())
            for key in sent
        ],
    )  # fmt: skip
    settled = set(sent)
    again = [row.notice_key for row in doubtful if row.notice_key not in settled]
    store.set_state(again, states.PENDING, next_attempt_us=0)
    return len(sent)


def _went_to(codes: CodeKeys, row: NoticeRow, address: str) -> bool:
    """Whether the email of ``row``'s notice went to ``address``."""
    return (
        row.channel == "email"
        and row.address_digest is not None
        and hmac.compare_digest(codes.address_digest("email", address), row.address_digest)
    )


def take_bounces(
    store: NoticeStore, codes: CodeKeys, dsn: Path | None, now_us: Callable[[], int]
) -> int:
    """DSNs in the bounce mailbox: mark the address, send the notice another way. The
    number of notices due again."""
    found = read_bounces(dsn)
    if not found or dsn is None:
        return 0
    rows = store.by_message([b.notice_key for b in found])
    requeued = []
    for bounce in found:
        row = rows.get(bounce.notice_key)
        if row is None or not bounce.address or not _went_to(codes, row, bounce.address):
            # Anyone may mail the bounce address a "DSN": one naming a notice we did not
            # send, or an address that notice did not go to (a patient's own Message-ID
            # beside a neighbour's address), marked that address bounced, and every later
            # notice to it skipped email (adversary round 59). Only a notice's own
            # address, as its message went, bounces.
            continue
        store.add_bounce(
            codes.address_digest("email", bounce.address), "email",
            f"DSN {bounce.status}", now_us(),
        )  # fmt: skip
        if row.state == states.SENT and row.channel == "email":
            requeued.append(row.notice_key)
    store.set_state(requeued, states.PENDING, next_attempt_us=0, attempts=0)
    box = mailbox.Maildir(str(dsn), create=False)
    for bounce in found:
        box.discard(bounce.mail_key)
    return len(requeued)
