"""What a notice says was done is what is on record: the PCPD is said to be told only
once its report is recorded as filed, the access to be stopped only once containment is
recorded for the incident."""

from __future__ import annotations

from email.message import Message

import pytest

from carevault.notify.reporting import open_clocks
from carevault.notify.scope import parse_scope
from carevault.notify.service import send_job
from carevault.notify.store import NoticeStore
from tests.integration.notify.conftest import Clinic

pytestmark = pytest.mark.postgres

PCPD = "Office of the Privacy Commissioner for Personal Data"


def _text(message: Message) -> str:
    part = message.get_body(preferencelist=("plain",))  # type: ignore[attr-defined]
    return str(part.get_content())


def _sent_to(clinic: Clinic, address: str) -> str:
    found = [message for to, message, _ in clinic.sink.parsed() if to == [address]]
    assert len(found) == 1
    return _text(found[0])


def test_notices_name_the_pcpd_only_after_its_report_is_filed(clinic: Clinic) -> None:
    scope = parse_scope(clinic.scope)
    open_clocks(clinic.services, scope)
    send_job(clinic.services).run(scope, ("confirmed",))
    text = _sent_to(clinic, "alice@example.com")
    assert PCPD not in text
    assert "We stopped the access" not in text and "working to cut off" in text


def test_a_filed_pcpd_report_is_named_in_the_notices(clinic: Clinic) -> None:
    scope = parse_scope(clinic.scope)
    open_clocks(clinic.services, scope)
    store = NoticeStore(clinic.services.engine)
    incident = scope.incident.incident_id
    store.close_clock(incident, "pcpd", decision="filed", filed_us=clinic.services.now_us())
    send_job(clinic.services).run(scope, ("confirmed",))
    assert PCPD in _sent_to(clinic, "alice@example.com")


def test_recorded_containment_is_said_to_have_stopped_the_access(clinic: Clinic) -> None:
    document = {**clinic.scope, "incident": {**clinic.scope["incident"], "containment": [
        {"id": 1, "mode": "account-suspended", "target": "mallory", "reason": "phished",
         "started_at": "2026-12-01T09:00:00Z", "started_by": "staff:ada", "released_at": None},
    ]}}  # fmt: skip
    send_job(clinic.services).run(parse_scope(document), ("confirmed",))
    assert "We stopped the access" in _sent_to(clinic, "alice@example.com")


def test_a_read_only_switch_alone_is_not_said_to_have_stopped_the_access(
    clinic: Clinic,
) -> None:
    # Read-only stops changes; whoever was reading reads on. A notice that said the
    # access was stopped would tell the patient something the record does not hold.
    document = {**clinic.scope, "incident": {**clinic.scope["incident"], "containment": [
        {"id": 2, "mode": "read-only", "target": None, "reason": "writes frozen",
         "started_at": "2026-12-01T09:00:00Z", "started_by": "staff:ada", "released_at": None},
    ]}}  # fmt: skip
    send_job(clinic.services).run(parse_scope(document), ("confirmed",))
    text = _sent_to(clinic, "alice@example.com")
    assert "We stopped the access" not in text and "working to cut off" in text
