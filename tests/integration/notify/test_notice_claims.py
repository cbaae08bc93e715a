"""What a notice says was done is what is on record: the PCPD is said to be told only
once its report is recorded as filed."""

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
    assert PCPD not in _sent_to(clinic, "alice@example.com")


def test_a_filed_pcpd_report_is_named_in_the_notices(clinic: Clinic) -> None:
    scope = parse_scope(clinic.scope)
    open_clocks(clinic.services, scope)
    store = NoticeStore(clinic.services.engine)
    incident = scope.incident.incident_id
    store.close_clock(incident, "pcpd", decision="filed", filed_us=clinic.services.now_us())
    send_job(clinic.services).run(scope, ("confirmed",))
    assert PCPD in _sent_to(clinic, "alice@example.com")
