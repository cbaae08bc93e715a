"""Who the notifying system is in the ledger, and the entries it writes about notices."""

from __future__ import annotations

from carevault.gate import Caller
from carevault.ledger.events import AuditEvent, Outcome, Tag

#: Who reads patients' contact details to notify them, and why (every read is a ledger
#: entry under this principal and purpose).
NOTIFY_CALLER = Caller(principal="system:notify", purpose="breach-notification")


def notice_event(
    tag: Tag,
    incident_id: str,
    pseudonym: str | None,
    detail: dict[str, object],
    at_us: int,
    outcome: Outcome = Outcome.SUCCESS,
) -> AuditEvent:
    """A ledger entry of the notify job about one notice (or the job), naming the patient
    only by pseudonym."""
    return AuditEvent(
        tag=tag,
        outcome=outcome,
        at_us=at_us,
        principal=NOTIFY_CALLER.principal,
        purpose=NOTIFY_CALLER.purpose,
        patient_pseudonym=pseudonym,
        resource_type="Patient" if pseudonym else None,
        reason=f"incident {incident_id}",
        detail=detail,
    )
