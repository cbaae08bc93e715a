"""An officer does not narrow, close or decide on an incident that names another login
of their own person (an account naming the same practitioner: the release budget's
person) as compromised, as they do not for one naming their own login (adversary round
41) or dismiss an alert about it (round 56). Another officer still may."""

from __future__ import annotations

import pytest

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from carevault.incidents import Actor, IncidentError, declare_case, incidents_for
from carevault.incidents.model import Amendment, Status
from carevault.ledger.events import Outcome, Tag
from carevault.notify.actions import named_accounts
from tests.support.console import ledger_events
from tests.support.staff import PASSWORD

pytestmark = pytest.mark.postgres

WINDOW = {"since": "2026-01-01", "until": "2026-01-02T00:00:00+00:00"}


def _staff(services: Services, username: str, role: Role, practitioner: str | None) -> str:
    services.accounts.add(username, username, role, ["clinic-tm"], PASSWORD, practitioner)
    return f"staff:{username}"


def test_an_officer_does_not_close_the_incident_about_their_other_login(
    services: Services,
) -> None:
    doctor = _staff(services, "wongdoc", Role.PHYSICIAN, "dr-wong")
    own = _staff(services, "wongoff", Role.PRIVACY_OFFICER, "dr-wong")
    other = _staff(services, "leeoff", Role.PRIVACY_OFFICER, "dr-lee")
    lone = _staff(services, "hooff", Role.PRIVACY_OFFICER, None)
    incident = declare_case(
        services, Actor(other), {"title": "snooping", "accounts": ["wongdoc"], **WINDOW}
    ).incident_id
    incidents = incidents_for(services)
    before = incidents.get(incident)
    closing = Amendment(status=Status.CLOSED)

    with pytest.raises(IncidentError, match="another privacy officer"):
        incidents.amend(Actor(own), incident, closing, step_up=lambda action: own)

    assert incidents.get(incident) == before
    refused = [e for e in ledger_events(services) if e["tag"] == Tag.INCIDENT_AMEND_REFUSED]
    assert refused and refused[-1]["principal"] == own
    assert refused[-1]["outcome"] == Outcome.DENIED
    # The incident's named accounts, as notices' decisions read them, hold the person's
    # every login: none of them decides on it either.
    assert {doctor, own} <= set(named_accounts(services, str(incident)))
    assert other not in named_accounts(services, str(incident))
    # Another officer (and one naming no practitioner) is no one the incident names.
    assert lone not in named_accounts(services, str(incident))
    closed = incidents.amend(Actor(other), incident, closing, step_up=lambda action: other)
    assert closed.status is Status.CLOSED
