"""Who may act on whom on the staff page, and why the officer opens a patient's data:
no officer issues another officer a new authenticator, a clinic manager acts on no one
at or above their own level, and only two purposes open a patient's report."""

from __future__ import annotations

import pytest

from carevault.bootstrap import Services
from carevault.containment.state import Mode
from carevault.domain.roles import Role
from tests.integration.web.console.conftest import Browser
from tests.support.console import (
    CHAN,
    CLINIC_A,
    CLINIC_B,
    MovableClock,
    Person,
    add_person,
    csrf_of,
    ledger_events,
)
from tests.support.staff import open_token

pytestmark = pytest.mark.postgres


def _tags(svc: Services) -> list[str]:
    return [e["tag"] for e in ledger_events(svc)]


def test_an_officer_cannot_issue_another_officer_a_new_authenticator(
    signed_in: Browser, console_services: Services, officer: Person, second_officer: Person
) -> None:
    theirs = signed_in(second_officer)
    client = signed_in(officer)
    person = client.get(f"/console/staff/{second_officer.username}").text
    assert "/authenticator" not in person
    token = csrf_of(client.get("/console/staff").text)
    for target in (second_officer, officer):
        refused = client.post(
            f"/console/staff/{target.username}/authenticator",
            data={"csrf": token, "totp": officer.code()},
        )
        assert refused.status_code == 403
        assert "secret" not in refused.text and "<svg" not in refused.text
    # Nothing changed: the colleague is still signed in and their authenticator works.
    assert theirs.get("/console/dashboard", follow_redirects=False).status_code == 200
    assert console_services.accounts.confirm_totp(second_officer.username, second_officer.code())
    assert "admin:staff:totp-reset" not in _tags(console_services)
    refusals = [e for e in ledger_events(console_services) if e["tag"] == "console:request:refused"]
    assert [e["principal"] for e in refusals[-2:]] == ["staff:officer1"] * 2
    assert "carevault staff reset-totp" in refusals[-1]["reason"]


def test_a_manager_acts_on_no_officer_and_no_other_manager(
    signed_in: Browser,
    console_services: Services,
    manager: Person,
    officer: Person,
    clock: MovableClock,
) -> None:
    peer = add_person(console_services, clock, "manager7", Role.CLINIC_MANAGER, [CLINIC_A])
    desk = add_person(console_services, clock, "desk7", Role.FRONT_DESK, [CLINIC_A])
    signed_in(peer), signed_in(officer)
    desk_account = console_services.accounts.find(desk.username)
    assert desk_account is not None
    open_token(console_services, desk_account, "user/*.cruds")  # the desk is signed in to an app
    client = signed_in(manager)
    listing = client.get("/console/staff").text
    assert desk.username in listing and manager.username in listing
    assert peer.username not in listing and officer.username not in listing
    token = csrf_of(listing)
    for above in (peer, officer):
        assert client.get(f"/console/staff/{above.username}").status_code == 404
        (session,) = console_services.sessions.list_for(above.account_id)
        refused = client.post(f"/console/sessions/{session.session_id}/end", data={"csrf": token})
        assert refused.status_code == 403
        assert console_services.sessions.list_for(above.account_id) != []
    for action in ("suspend", "reinstate", "authenticator"):
        response = client.post(
            f"/console/staff/{officer.username}/{action}",
            data={"csrf": token, "totp": manager.code(), "reason": "x"},
        )
        assert response.status_code == 403
    account = console_services.accounts.find(officer.username)
    assert account is not None and not account.suspended
    refusals = [e for e in ledger_events(console_services) if e["tag"] == "console:request:refused"]
    assert {e["principal"] for e in refusals} == {"staff:manager1"}
    (own,) = console_services.sessions.list_for(desk.account_id)
    ended = client.post(f"/console/sessions/{own.session_id}/end", data={"csrf": token})
    assert ended.status_code in (200, 303)
    assert console_services.sessions.list_for(desk.account_id) == []


@pytest.mark.parametrize("purpose", ["TREAT", "HOPERAT", "ETREAT", "patrqt", ""])
def test_a_purpose_other_than_patient_request_or_compliance_opens_nothing(
    signed_in: Browser, console_services: Services, officer: Person, purpose: str
) -> None:
    client = signed_in(officer)
    token = csrf_of(client.get("/console/patients").text)
    before = len(ledger_events(console_services))
    for path in ("", "/report.json", "/letter.pdf"):
        response = client.get(f"/console/patients/{CHAN.patient_id}{path}?purpose={purpose}")
        assert response.status_code == 400, path
        assert CHAN.english_name not in response.text
    found = client.post(
        "/console/patients", data={"csrf": token, "identifier": CHAN.mrn, "purpose": purpose}
    )
    assert found.status_code == 400 and CHAN.english_name not in found.text
    assert len(ledger_events(console_services)) == before


def test_patient_request_and_compliance_open_the_report_with_that_purpose(
    signed_in: Browser, console_services: Services, officer: Person
) -> None:
    client = signed_in(officer)
    for purpose in ("PATRQT", "HCOMPL"):
        response = client.get(f"/console/patients/{CHAN.patient_id}?purpose={purpose}")
        assert response.status_code == 200
        read = [
            e
            for e in ledger_events(console_services)
            if e["tag"] == "fhir:resource:read" and e.get("principal") == "staff:officer1"
        ]
        assert read and read[-1]["purpose"] == purpose
    assert client.get(f"/console/patients/{CHAN.patient_id}").status_code == 200


def test_a_manager_sees_the_containment_of_their_own_clinics_staff_only(
    signed_in: Browser,
    console_services: Services,
    manager: Person,
    officer: Person,
    physician: Person,
    clock: MovableClock,
) -> None:
    """The containment page shows a manager what stops everyone (patient data offline),
    and of what names staff or a clinic only their own clinics': another clinic's
    suspended desk, the officer's reason for it, its lock and its doctor's pending
    emergency grant are not theirs to read (adversary round 41), as the staff page
    lists only their own clinics' staff. An officer sees it all."""
    from carevault.containment.service import Officer

    ours = add_person(console_services, clock, "desk8", Role.FRONT_DESK, [CLINIC_A])
    theirs = add_person(console_services, clock, "desk9", Role.FRONT_DESK, [CLINIC_B])
    doctor_b = add_person(console_services, clock, "doctor9", Role.PHYSICIAN, [CLINIC_B])
    contain = console_services.contain
    contain.start(Officer(officer.username, officer.code()), Mode.PHI_OFFLINE, None, "breach")
    for person, why in ((ours, "lost phone ours"), (theirs, "gossip about a colleague")):
        contain.start(
            Officer(officer.username, officer.code()), Mode.ACCOUNT_SUSPENDED, person.username, why
        )
    contain.start(
        Officer(officer.username, officer.code()), Mode.CLINIC_LOCK, CLINIC_B, "flooded server"
    )
    grants = {
        who.username: console_services.gate.break_glass(
            who.caller,
            CHAN.patient_id,
            "emergency-treatment",
            "Collapsed in the waiting room",
            emergency=True,
        ).grant_id
        for who in (physician, doctor_b)
    }

    page = signed_in(manager).get("/console/containment").text
    assert "lost phone ours" in page and ours.username in page
    assert "gossip about a colleague" not in page and theirs.username not in page
    assert "flooded server" not in page
    assert "Patient data offline" in page
    assert physician.display_name in page and doctor_b.display_name not in page
    assert "/approve" not in page  # a manager approves nothing
    everything = signed_in(officer).get("/console/containment").text
    for seen in ("lost phone ours", "gossip about a colleague", "flooded server"):
        assert seen in everything
    for grant_id in grants.values():
        assert f"/console/emergency/{grant_id}/approve" in everything
