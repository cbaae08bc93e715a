"""Adversary round 57, care a person made alone, through a second login: Dr In holds two
logins naming Practitioner dr-in (a physician's and a nurse's), books a VIP with one and
reads the chart with the other, or corroborates with one what the other booked. Care a
person made alone explains none of their own reads, whichever of their logins made it
(SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from carevault.detect import alerts_as_dicts
from carevault.domain.roles import Role
from carevault.ledger.events import AuditEvent, Tag
from tests.integration.detect.conftest import (
    RAISE_ONLY,
    Clinic,
    clinic_patients,
    clinic_settings,
    opened_clinic,
    raising_clinic,
    vip_clinic,
)
from tests.integration.detect.test_self_made_care import _booking as booking
from tests.support.ledgers import patient_pseudonym
from tests.support.staff import Staff, make_staff


@pytest.fixture
def clinic(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Clinic]:
    with vip_clinic(backend, tmp_path, request, 4) as opened:
        yield opened


def _booking(patient: str, status: str = "booked", **more: Any) -> dict[str, Any]:
    """Today's booking of ``patient`` with Dr In."""
    return booking(patient, "dr-in", status, **more)


def _book(clinic: Clinic, who: Staff, patient: str) -> str:
    response = clinic.web.post_json("/fhir/Appointment", _booking(patient), **who.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _vip_alerts(clinic: Clinic) -> list[str]:
    return [a["account"] for a in alerts_as_dicts(clinic.services) if a["detector"] == "vip"]


def test_a_booking_made_with_ones_other_login_does_not_explain_ones_read(clinic: Clinic) -> None:
    """Dr In books the VIP with the nurse's login and reads the chart with the
    physician's: the booking was made by the person alone, as if one login had made it."""
    physician = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-a"], "dr-in")
    nurse = make_staff(clinic.services, Role.NURSE, ["clinic-a"], "dr-in")
    celebrity = clinic.patients[0]
    _book(clinic, nurse, celebrity)
    assert clinic.read(physician, celebrity) == 200  # care goes on: the read is allowed
    assert _vip_alerts(clinic) == [physician.account.username]


def test_a_booking_set_arrived_by_ones_other_login_is_not_corroborated(clinic: Clinic) -> None:
    """Dr In books the VIP with the physician's login and "checks them in" (or moves the
    booking) with the nurse's: no one else wrote a version, so nothing corroborates it."""
    physician = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-a"], "dr-in")
    nurse = make_staff(clinic.services, Role.NURSE, ["clinic-a"], "dr-in")
    arrived, moved = clinic.patients[:2]
    booking = _book(clinic, physician, arrived)
    response = clinic.web.put_json(
        f"/fhir/Appointment/{booking}",
        {**_booking(arrived, "arrived"), "id": booking},
        **nurse.headers,
    )
    assert response.status_code == 200, response.text
    booking = _book(clinic, physician, moved)
    response = clinic.web.put_json(
        f"/fhir/Appointment/{booking}",
        {**_booking(moved, comment="moved to 10:00"), "id": booking},
        **nurse.headers,
    )
    assert response.status_code == 200, response.text
    assert [clinic.read(physician, p) for p in (arrived, moved)] == [200, 200]
    assert _vip_alerts(clinic) == [physician.account.username] * 2  # one for each VIP


def test_a_colleagues_booking_still_explains_and_so_does_a_desks_check_in(clinic: Clinic) -> None:
    """Held: the same bookings made or checked in by someone else (another practitioner,
    the desk) explain Dr In's reads as before; and a booking Dr In's nurse login made
    explains a colleague's read."""
    physician = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-a"], "dr-in")
    nurse = make_staff(clinic.services, Role.NURSE, ["clinic-a"], "dr-in")
    colleague = make_staff(clinic.services, Role.NURSE, ["clinic-a"], "dr-lee")
    by_colleague, checked_in, for_colleague = clinic.patients[:3]
    _book(clinic, colleague, by_colleague)
    booking = _book(clinic, nurse, checked_in)
    response = clinic.web.put_json(
        f"/fhir/Appointment/{booking}",
        {**_booking(checked_in, "arrived"), "id": booking},
        **clinic.desk.headers,
    )
    assert response.status_code == 200, response.text
    _book(clinic, nurse, for_colleague)
    assert [clinic.read(physician, p) for p in (by_colleague, checked_in)] == [200, 200]
    assert clinic.read(colleague, for_colleague) == 200
    assert _vip_alerts(clinic) == []


@pytest.fixture
def wide_budget(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Clinic]:
    """Clinic A's 45 patients; a clinician's budget (200 an hour) far above breadth's
    floor (20 distinct unexplained patients in ten minutes)."""
    with raising_clinic(
        backend,
        tmp_path,
        request,
        clinic_patients(),
        release_budget="physician=200/400,nurse=200/400",
    ) as opened:
        yield opened


def _breadth(clinic: Clinic) -> list[str]:
    return [a["account"] for a in alerts_as_dicts(clinic.services) if a["detector"] == "breadth"]


def test_forty_unexplained_patients_read_by_one_login_are_too_broad(wide_budget: Clinic) -> None:
    """Held, and the yardstick of the next test: one login reading 40 patients no care
    explains in ten minutes (twice breadth's floor of 20) is a breadth alert."""
    doctor = make_staff(wide_budget.services, Role.PHYSICIAN, ["clinic-a"], "dr-in")
    assert [wide_budget.read(doctor, p) for p in wide_budget.patients[:40]] == [200] * 40
    assert doctor.account.username in _breadth(wide_budget)


def test_forty_unexplained_patients_split_across_two_logins_are_too_broad(
    wide_budget: Clinic,
) -> None:
    """Held since stop 46 (breadth counts the person): Dr In reads the same 40 patients,
    20 with the physician's login and 20 with the nurse's (both naming Practitioner
    dr-in), each login at breadth's floor: an alert, as for one login reading them all."""
    physician = make_staff(wide_budget.services, Role.PHYSICIAN, ["clinic-a"], "dr-in")
    nurse = make_staff(wide_budget.services, Role.NURSE, ["clinic-a"], "dr-in")
    patients = wide_budget.patients
    assert [wide_budget.read(physician, p) for p in patients[:20]] == [200] * 20
    assert [wide_budget.read(nurse, p) for p in patients[20:40]] == [200] * 20
    assert _breadth(wide_budget) != []


@pytest.fixture
def suspending(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Clinic]:
    """Clinic A with the built-in responses (high: suspend, medium: step-up) and one VIP."""
    settings = clinic_settings(backend, tmp_path, request)
    with opened_clinic(settings, clinic_patients(6, "Star", "Famous")) as opened:
        detection = opened.services.detection
        assert detection is not None
        detection.flags.set(
            "vip", patient_pseudonym(opened.services, opened.patients[0]), "staff:test-officer"
        )
        yield opened


def test_a_doctor_suspended_for_snooping_reads_no_more_through_another_login(
    suspending: Clinic,
) -> None:
    """Dr In's physician login opens a VIP no care explains (high): the detectors suspend
    it. The nurse's login naming the same practitioner read on, as if someone else: the
    suspension held a login, where the budget and the throttle hold the person."""
    physician = make_staff(suspending.services, Role.PHYSICIAN, ["clinic-a"], "dr-in")
    nurse = make_staff(suspending.services, Role.NURSE, ["clinic-a"], "dr-in")
    colleague = make_staff(suspending.services, Role.NURSE, ["clinic-a"], "dr-lee")
    assert suspending.read(physician, suspending.patients[0]) == 200
    (alert,) = alerts_as_dicts(suspending.services)
    assert (alert["detector"], alert["action"]) == ("vip", "suspend")
    assert suspending.read(physician, suspending.patients[1]) == 401
    assert suspending.read(nurse, suspending.patients[1]) == 401
    # Held: someone else, and a login naming no practitioner, read on.
    assert suspending.read(colleague, suspending.patients[1]) == 200
    assert suspending.read(suspending.desk, suspending.patients[1]) == 200


def test_a_doctors_officer_login_is_suspended_with_their_physician_login(
    suspending: Clinic,
) -> None:
    """Dr Wong is a physician and, with a second login, a privacy officer: the detectors
    suspending the physician login suspend the officer login too, since another officer
    (the clinic's) can undo it; that officer still works."""
    physician = make_staff(suspending.services, Role.PHYSICIAN, ["clinic-a"], "dr-wong")
    officer = make_staff(suspending.services, Role.PRIVACY_OFFICER, ["clinic-a"], "dr-wong")
    assert suspending.read(physician, suspending.patients[0]) == 200
    (alert,) = alerts_as_dicts(suspending.services)  # the detectors judge the read
    assert (alert["account"], alert["action"]) == (physician.account.username, "suspend")
    assert suspending.read(officer, suspending.patients[1]) == 401
    assert suspending.read(suspending.officer, suspending.patients[1]) == 200
    suspended = {
        item.target
        for item in suspending.services.containment.refresh().active
        if item.mode.value == "account-suspended"
    }
    assert suspended == {physician.account.username, officer.account.username}


def test_kin_read_with_a_login_hr_did_not_identify_is_still_kin(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """HR identified Dr In's physician login (home address, HKID number); Dr In opens
    their spouse's record (same home) and their own with the nurse's login naming the
    same practitioner. The nurse's login had no tokens: the spouse raised nothing and
    their own record was "a co-worker's". Kin is the person's, whichever login reads."""
    from carevault.detect.desk import OfficerCode
    from tests.integration.detect.test_snooping import HOME, _create, _hkid, _patient

    settings = clinic_settings(
        backend, tmp_path, request, detect_responses=RAISE_ONLY, detect_kin_grace_seconds=0
    )
    with opened_clinic(settings, clinic_patients(4)) as clinic:
        detection = clinic.services.detection
        assert detection is not None
        physician = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-a"], "dr-in")
        nurse = make_staff(clinic.services, Role.NURSE, ["clinic-a"], "dr-in")
        officer = OfficerCode(clinic.officer.account.username, clinic.officer.totp())
        detection.desk.identify(
            officer, physician.account.username, address_lines=HOME, hkid=_hkid(1)
        )
        own = _create(clinic, _patient("In", ["Flat A, 3/F", "12 Hill Rd"], _hkid(1)))
        spouse = _create(clinic, _patient("Lee", ["FLAT A 3/F", "12 HILL ROAD"]))
        assert [clinic.read(nurse, p) for p in (spouse, own)] == [200, 200]
        found = {a["detector"]: a["account"] for a in alerts_as_dicts(clinic.services)}
        assert found == {
            "same-address": nurse.account.username,
            "own-record": nurse.account.username,
        }


def test_a_login_asked_for_a_fresh_code_leaves_the_persons_other_logins_watched(
    suspending: Clinic,
) -> None:
    """Held since stop 46: Dr In covers the front desk with a desk login (naming
    Practitioner dr-in) and opens the VIP there (medium for a desk: step-up). Their nurse
    login reads on without a fresh code, as stop 46 designed, and is watched
    (``after-step-up``) from the one step-up of the desk login."""
    desk = make_staff(suspending.services, Role.FRONT_DESK, ["clinic-a"], "dr-in")
    nurse = make_staff(suspending.services, Role.NURSE, ["clinic-a"], "dr-in")
    assert suspending.read(desk, suspending.patients[0]) == 200
    (alert,) = alerts_as_dicts(suspending.services)
    assert (alert["account"], alert["action"]) == (desk.account.username, "step-up")
    assert suspending.read(desk, suspending.patients[1]) == 401
    assert suspending.read(nurse, suspending.patients[1]) == 200
    stepped = [
        AuditEvent.from_canonical(data).detail.get("account")
        for _, data in suspending.services.audit_ledger.store.entries()
        if AuditEvent.from_canonical(data).tag == Tag.DETECT_STEP_UP
    ]
    assert stepped == [desk.account.username]


def _glass(clinic: Clinic, doctor: Staff, patient: str, operation: str) -> Any:
    return clinic.web.post_json(
        f"/fhir/Patient/{patient}/{operation}",
        {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "reason", "valueCode": "emergency-treatment"},
                {"name": "text", "valueString": "collapsed in the waiting room"},
            ],
        },
        **doctor.headers,
    )


def test_an_officer_does_not_find_their_own_doctors_glass_justified(
    raising: Clinic,
) -> None:
    """Dr Wong breaks the glass with the physician login and finds the grant justified
    with the officer login naming the same Practitioner: the review checked only that the
    reviewer was an officer. Refused now, recorded; another officer reviews it."""
    from carevault.access.breakglass import BreakGlassError

    doctor = make_staff(raising.services, Role.PHYSICIAN, ["clinic-a"], "dr-wong")
    officer = make_staff(raising.services, Role.PRIVACY_OFFICER, ["clinic-a"], "dr-wong")
    granted = _glass(raising, doctor, raising.patients[0], "$break-glass")
    assert granted.status_code == 200, granted.text
    [grant] = raising.services.break_glass.queue()
    review = raising.services.glass_review
    with pytest.raises(BreakGlassError, match="another privacy officer"):
        review.review(officer.account.username, grant.grant_id, "justified")
    assert [g.grant_id for g in raising.services.break_glass.queue()] == [grant.grant_id]
    refused = [
        e
        for _, data in raising.services.audit_ledger.store.entries()
        if (e := AuditEvent.from_canonical(data)).tag == Tag.ACCESS_BREAK_GLASS_REVIEWED
    ]
    assert [e.outcome.value for e in refused] == ["denied"]
    review.review(raising.officer.account.username, grant.grant_id, "justified")
    assert raising.services.break_glass.queue() == []


def test_an_officer_does_not_approve_their_own_doctors_emergency_access(
    raising: Clinic,
) -> None:
    """Patient data is offline (the clinic's officer took it); Dr Wong asks for emergency
    access with the physician login and approved it with the officer login: the approval
    compared accounts, not people. Refused now (403), the grant waits for someone else."""
    doctor = make_staff(raising.services, Role.PHYSICIAN, ["clinic-a"], "dr-wong")
    officer = make_staff(raising.services, Role.PRIVACY_OFFICER, ["clinic-a"], "dr-wong")
    started = raising.web.post(
        "/admin/containment",
        json={"mode": "phi-offline", "reason": "drill", "totp": raising.officer.totp()},
        headers=raising.officer.headers,
    )
    assert started.status_code == 201, started.text
    asked = _glass(raising, doctor, raising.patients[0], "$emergency-access")
    assert asked.status_code == 202, asked.text
    grant = asked.json()["parameter"][0]["valueString"]
    own = raising.web.post(
        f"/admin/emergency/{grant}/approve", json={"totp": officer.totp()}, **_h(officer)
    )
    assert own.status_code == 403, own.text
    assert not raising.services.break_glass.get(grant).approved
    path = f"/fhir/Patient/{raising.patients[0]}"
    assert raising.web.get(path, headers=doctor.headers).status_code == 503


def _h(who: Staff) -> dict[str, Any]:
    return {"headers": who.headers}


@pytest.fixture
def raising(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Clinic]:
    with raising_clinic(backend, tmp_path, request, clinic_patients(3)) as opened:
        yield opened


def test_the_officer_who_took_data_offline_does_not_approve_with_another_login(
    raising: Clinic,
) -> None:
    """Dr Wong takes patient data offline with one officer login and approved a
    colleague's emergency access with their other officer login (the two-officer rule
    compared usernames). Refused now (403); the clinic's other officer approves."""
    first = make_staff(raising.services, Role.PRIVACY_OFFICER, ["clinic-a"], "dr-wong")
    second = make_staff(raising.services, Role.PRIVACY_OFFICER, ["clinic-a"], "dr-wong")
    doctor = make_staff(raising.services, Role.PHYSICIAN, ["clinic-a"], "dr-lee")
    started = raising.web.post(
        "/admin/containment",
        json={"mode": "phi-offline", "reason": "drill", "totp": first.totp()},
        headers=first.headers,
    )
    assert started.status_code == 201, started.text
    asked = _glass(raising, doctor, raising.patients[0], "$emergency-access")
    assert asked.status_code == 202, asked.text
    grant = asked.json()["parameter"][0]["valueString"]
    own = raising.web.post(
        f"/admin/emergency/{grant}/approve", json={"totp": second.totp()}, **_h(second)
    )
    assert own.status_code == 403, own.text
    other = raising.web.post(
        f"/admin/emergency/{grant}/approve",
        json={"totp": raising.officer.totp()},
        **_h(raising.officer),
    )
    assert other.status_code == 200, other.text


def test_an_officer_does_not_record_what_hr_knows_of_their_own_doctors_login(
    raising: Clinic,
) -> None:
    """Dr Wong's officer login re-identified their physician login with another home
    and HKID: the tokens the snooping detectors judge Dr Wong by were replaced by the
    person judged. Refused now, recorded; another officer records them."""
    from carevault.detect.desk import OfficerCode, OfficerRefused

    doctor = make_staff(raising.services, Role.PHYSICIAN, ["clinic-a"], "dr-wong")
    officer = make_staff(raising.services, Role.PRIVACY_OFFICER, ["clinic-a"], "dr-wong")
    detection = raising.services.detection
    assert detection is not None
    own = OfficerCode(officer.account.username, officer.totp())
    with pytest.raises(OfficerRefused, match="another privacy officer"):
        detection.desk.identify(own, doctor.account.username, address_lines=["1 Nowhere Road"])
    other = OfficerCode(raising.officer.account.username, raising.officer.totp())
    assert detection.desk.identify(other, doctor.account.username, surname="WONG") == ["surname"]


def test_an_officer_is_suspended_only_while_someone_else_can_undo_it(
    suspending: Clinic,
) -> None:
    """The clinic's other officer is suspended; Dr Wong holds two officer logins and
    opens the VIP with one (high). The detectors suspended it, counting Dr Wong's other
    login as the officer who could undo it, which since round 56 may not (it is the same
    person): no one could. Now the login steps up instead, as the last officer does."""
    suspending.services.admin.suspend(
        "operator:host", suspending.officer.account.username, reason="on leave"
    )
    first = make_staff(suspending.services, Role.PRIVACY_OFFICER, ["clinic-a"], "dr-wong")
    make_staff(suspending.services, Role.PRIVACY_OFFICER, ["clinic-a"], "dr-wong")
    assert suspending.read(first, suspending.patients[0]) == 200
    (alert,) = alerts_as_dicts(suspending.services)
    assert (alert["account"], alert["action"]) == (first.account.username, "step-up")
    found = suspending.services.accounts.find(first.account.username)
    assert found is not None and not found.suspended
