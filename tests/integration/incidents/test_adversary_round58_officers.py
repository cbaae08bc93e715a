"""Adversary round 58 (officers): an incident that names an officer's session.

An incident names what is believed compromised: accounts, and also sessions (a stolen
token, a hijacked console cookie). Round 41 refused narrowing or closing an incident,
or deciding not to notify a regulator, to an officer the incident names; round 56
extended it to every login of their person. Both judged only the incident's accounts:
an incident naming the officer's own session (their console session was seen reading
patients from an address abroad) was closed by that officer with their own fresh code,
and their "not-notify" decision stopped the regulator's clock.
"""

from __future__ import annotations

import pytest

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from carevault.incidents import Actor, IncidentError, declare_case, incidents_for
from carevault.incidents.model import Amendment, Status
from carevault.ledger.events import Outcome, Tag
from carevault.notify.actions import named_accounts
from tests.support.console import ledger_events
from tests.support.staff import PASSWORD, open_token

pytestmark = pytest.mark.postgres

WINDOW = {"since": "2026-01-01", "until": "2026-01-02T00:00:00+00:00"}


def _staff(services: Services, username: str, role: Role, practitioner: str | None) -> str:
    services.accounts.add(username, username, role, ["clinic-tm"], PASSWORD, practitioner)
    return f"staff:{username}"


def _session_of(services: Services, username: str) -> str:
    account = services.accounts.find(username)
    assert account is not None
    open_token(services, account, "user/*.cruds")
    (session,) = services.sessions.list_for(account.account_id)
    return session.session_id


def test_an_officer_whose_session_is_named_does_not_close_or_narrow_the_incident(
    services: Services,
) -> None:
    """Hole (round 58): the incident names the officer's session, not their account;
    they closed it (and moved its window off their reads) with their own code."""
    own = _staff(services, "kwokoff", Role.PRIVACY_OFFICER, None)
    other = _staff(services, "leeoff", Role.PRIVACY_OFFICER, "dr-lee")
    session = _session_of(services, "kwokoff")
    incident = declare_case(
        services, Actor(other), {"title": "stolen cookie", "sessions": [session], **WINDOW}
    ).incident_id
    incidents = incidents_for(services)
    before = incidents.get(incident)

    for amendment in (
        Amendment(status=Status.CLOSED),
        Amendment(since_us=before.since_us + 3_600_000_000),
    ):
        with pytest.raises(IncidentError, match="another privacy officer"):
            incidents.amend(Actor(own), incident, amendment, step_up=lambda action: own)
        assert incidents.get(incident) == before
    refused = [e for e in ledger_events(services) if e["tag"] == Tag.INCIDENT_AMEND_REFUSED]
    assert refused and refused[-1]["principal"] == own
    assert refused[-1]["outcome"] == Outcome.DENIED
    # A regulator's decision reads the same names: the officer does not decide on it.
    assert own in named_accounts(services, str(incident))
    assert other not in named_accounts(services, str(incident))
    # Another officer still closes it.
    closed = incidents.amend(
        Actor(other), incident, Amendment(status=Status.CLOSED), step_up=lambda action: other
    )
    assert closed.status is Status.CLOSED


def test_a_named_session_holds_every_login_of_its_officers_person(services: Services) -> None:
    """The session of Dr Wong's physician login is named: Dr Wong's officer login is
    the person the incident is about, as for an account named (round 56)."""
    _staff(services, "wongdoc", Role.PHYSICIAN, "dr-wong")
    own = _staff(services, "wongoff", Role.PRIVACY_OFFICER, "dr-wong")
    other = _staff(services, "leeoff", Role.PRIVACY_OFFICER, "dr-lee")
    session = _session_of(services, "wongdoc")
    incident = declare_case(
        services, Actor(other), {"title": "stolen token", "sessions": [session], **WINDOW}
    ).incident_id
    incidents = incidents_for(services)

    with pytest.raises(IncidentError, match="another privacy officer"):
        incidents.amend(
            Actor(own), incident, Amendment(status=Status.CLOSED), step_up=lambda action: own
        )
    assert own in named_accounts(services, str(incident))
    assert incidents.get(incident).status is Status.OPEN
