"""Adversary round 72: what patient data offline leaves open (SQLite and PostgreSQL).

While PHI-offline is on (thrown by an officer, or by the detectors' automatic response
to a breach), a read by id of a Patient who has an open booking is answered with the
patient's name ("name only, for the day's appointments", so the desks can keep
booking). The gate returns that name-only decision from ``Gate._contain_read`` before
the access policy is asked (``Gate._decide_read``: ``if contained is not None: return
contained``), so it is given to anyone signed in: Tuen Mun's front desk, doctor or
pharmacist read the name of Tsuen Wan's patient, which they are refused (403) while
patient data is online. Any open booking will do, at any clinic and on any day, and a
desk may write one itself at its own clinic for another clinic's patient (it opens
nothing while patient data is online).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from carevault.bootstrap import Services
from carevault.containment.service import Officer
from carevault.containment.state import Mode
from carevault.domain.roles import Role
from tests.integration.access.group import TM, TODAY, TW, Group, booked_today, build_group, created
from tests.support.client import FhirTestClient
from tests.support.staff import make_staff

pytestmark = pytest.mark.postgres


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _offline(group: Group) -> None:
    officer = Officer(group.officer.account.username, group.officer.totp())
    group.services.contain.start(officer, Mode.PHI_OFFLINE, None, "suspected breach")


def test_offline_a_desk_reads_another_clinics_patients_name_through_their_own_booking(
    group: Group, api: FhirTestClient
) -> None:
    """Tsuen Wan books its patient next month (the system, as seeding does). Tuen Mun's
    desk is refused the patient while data is online, and reads their name once an
    officer takes patient data offline."""
    tw = group.tw_patient
    booking = booked_today(tw.id, TW)
    later = (TODAY + timedelta(days=30)).isoformat()
    booking["start"], booking["end"] = f"{later}T10:00:00+08:00", f"{later}T10:15:00+08:00"
    created(api, booking)
    path = f"/fhir/Patient/{tw.id}"
    assert group.call(group.desk_tm, "GET", path).status_code == 403

    _offline(group)

    answer = group.call(group.desk_tm, "GET", path)
    # Expected: refused as online (403), or 503 as every other patient data read.
    assert answer.status_code in (403, 503), answer.text
    assert "Lee" not in answer.text


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.PHYSICIAN, Role.PHARMACIST])
def test_offline_a_booking_planted_at_ones_own_clinic_opens_the_name(
    group: Group, role: Role
) -> None:
    """Tuen Mun's desk writes a booking at Tuen Mun for Tsuen Wan's patient (allowed: it
    opens nothing online). Once patient data is offline, Tuen Mun's staff of any role read
    the patient's name by id."""
    tw = group.tw_patient
    planted = group.call(group.desk_tm, "POST", "/fhir/Appointment", booked_today(tw.id, TM))
    assert planted.status_code == 201, planted.text
    reader = (
        group.desk_tm
        if role is Role.FRONT_DESK
        else make_staff(group.services, role, [TM], "dr-tm" if role is Role.PHYSICIAN else None)
    )
    path = f"/fhir/Patient/{tw.id}"
    assert group.call(reader, "GET", path).status_code == 403

    _offline(group)

    answer = group.call(reader, "GET", path)
    assert answer.status_code in (403, 503), answer.text
    assert "Lee" not in answer.text


def test_guard_offline_the_clinics_own_patient_without_a_booking_is_offline(
    group: Group,
) -> None:
    """What the name-only answer is for, and what it leaves out, as it stands."""
    _offline(group)
    own = group.call(group.desk_tm, "GET", f"/fhir/Patient/{group.tm_patient.id}")
    assert own.status_code == 503, own.text


def test_a_clinic_lock_tells_another_clinics_staff_which_ids_are_that_clinics(
    group: Group, api: FhirTestClient
) -> None:
    """Low: while Tsuen Wan is locked, Tuen Mun's desk is answered 503 "this clinic's
    patient data is locked" for the id of a Tsuen Wan patient or record, where it is
    answered 403 (no clinic named) for records of other clinics it may not read: the lock
    is checked before the policy (``Gate._contain_read``), so a list of ids is
    sorted by clinic (a third clinic's patient is answered 403)."""
    tw = group.tw_patient
    third = registered_patient_elsewhere(api)
    officer = Officer(group.officer.account.username, group.officer.totp())
    group.services.contain.start(officer, Mode.CLINIC_LOCK, TW, "suspected breach")

    at_tw = group.call(group.desk_tm, "GET", f"/fhir/Patient/{tw.id}")
    elsewhere = group.call(group.desk_tm, "GET", f"/fhir/Patient/{third}")
    assert elsewhere.status_code == 403, elsewhere.text
    # Expected: answered as any other record the desk may not read.
    assert at_tw.status_code == elsewhere.status_code, at_tw.text

    # Writes too (the review of this round): a refused DELETE or PUT changes nothing,
    # so it was a free probe answered 503 for the locked clinic's ids alone.
    body = {"resourceType": "Patient", "name": [{"family": "Probe"}]}
    for method, path, sent in [
        ("DELETE", f"/fhir/Patient/{tw.id}", None),
        ("DELETE", f"/fhir/Observation/{tw.observation}", None),
        ("PUT", f"/fhir/Patient/{tw.id}", {**body, "id": tw.id}),
    ]:
        answer = group.call(group.desk_tm, method, path, sent)
        assert answer.status_code == 403, (method, path, answer.text)
    third_put = {**body, "id": third}
    answer = group.call(group.desk_tm, "PUT", f"/fhir/Patient/{third}", third_put)
    assert answer.status_code == 403, answer.text
    # Those who may change the locked clinic's records are told it is locked.
    own = group.call(group.doctor_tw, "DELETE", f"/fhir/Observation/{tw.observation}")
    assert own.status_code == 503 and "locked" in own.text, own.text


def registered_patient_elsewhere(api: FhirTestClient) -> str:
    """A patient of a third clinic of the group (Yuen Long), registered by the system."""
    made = api.post_json(
        "/fhir/Patient",
        {
            "resourceType": "Patient",
            "name": [{"family": "Ng"}],
            "managingOrganization": {"reference": "Organization/clinic-yl"},
        },
    )
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def test_offline_a_patient_launch_app_reads_names_beyond_its_patient(
    services: Services, api: FhirTestClient
) -> None:
    """An app Tuen Mun's doctor launched for one patient (``patient/*.rs``) reads only
    that patient online; offline, it reads the name of another patient who has a booking
    (``Gate._check_patient_context`` comes after the name-only decision is returned)."""
    from tests.integration.access.browser import APP_SCOPES, REDIRECT_URI

    services.clients.add(
        "smart-app",
        "Bedside app",
        confidential=False,
        scopes=APP_SCOPES,
        redirect_uris=[REDIRECT_URI],
    )
    built = build_group(services, api)
    group = next(built)
    try:
        _launched_app_reads_beyond(group, api)
    finally:
        built.close()


def _launched_app_reads_beyond(group: Group, api: FhirTestClient) -> None:
    from tests.integration.access.browser import (
        AuthRequest,
        bearer,
        code_from,
        read_picker_page,
        submit_login,
    )
    from tests.support.staff import PASSWORD

    web, doctor = group.web, group.doctor_tm
    other = group.tw_patient
    created(api, booked_today(other.id, TW))
    request = AuthRequest(
        "smart-app", "http://testserver/fhir", scope="openid fhirUser launch/patient patient/*.rs"
    )
    page = submit_login(web, request, doctor.login.username, PASSWORD, doctor.totp())
    picker = read_picker_page(page.text)
    chosen = web.post(
        "/auth/launch",
        data={**picker.hidden, "patient": group.tm_patient.id},
        follow_redirects=False,
    )
    body = web.post("/auth/token", data=request.exchange(code_from(chosen, request))).json()
    token = bearer(body["access_token"])
    assert web.get(f"/fhir/Patient/{other.id}", headers=token).status_code == 403

    _offline(group)

    answer = web.get(f"/fhir/Patient/{other.id}", headers=token)
    assert answer.status_code in (403, 503), answer.text
