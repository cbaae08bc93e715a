"""Notices from the incident module's own scope document: an incident declared for the
attacker's address, its scope computed from the ledger, each patient notified once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from carevault.incidents import Actor, declare_case, scope_document
from carevault.notify import store as states
from carevault.notify.scope import parse_scope
from carevault.notify.service import send_job
from carevault.notify.store import NoticeStore
from tests.integration.notify.conftest import PEOPLE, Clinic

pytestmark = pytest.mark.postgres


def test_an_incident_scope_feeds_the_send_job(clinic: Clinic) -> None:
    now = datetime.now(UTC)
    case = {
        "title": "A reception login used from abroad",
        "since": (now - timedelta(hours=1)).isoformat(),
        "until": (now + timedelta(minutes=1)).isoformat(),
        "addresses": ["203.0.113.66"],
    }
    incident = declare_case(clinic.services, Actor("staff:officer.test"), case)
    document = scope_document(clinic.services, incident.incident_id)
    scope = parse_scope(document)
    confirmed = {e.patient_id for e in scope.exposures(("confirmed",))}
    assert confirmed == {clinic.ids[p.key] for p in PEOPLE}
    progress = send_job(clinic.services).run(scope, ("confirmed", "decrypted"))
    assert progress.sent == len(PEOPLE) - 1 and progress.skipped == 1
    rows = NoticeStore(clinic.services.engine).rows(str(incident.incident_id))
    assert sum(1 for row in rows.values() if row.state == states.SENT) == len(PEOPLE) - 1
    recipients = [to for recipients, _ in clinic.sink.messages for to in recipients]
    assert len(recipients) == len(set(recipients)) == 6
