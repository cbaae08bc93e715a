"""Adversary round 60, staff writes: Tuen Mun's front desk, nurse, doctor and pharmacist
(ordinary logins of one clinic) write to read or learn more than they may. Each attack is
sent as they sent it, on SQLite and PostgreSQL.

Found: a directory record that no clinic of the group holds (a Location imported from an
outside hospital, or written without ``managingOrganization``; an outside doctor's
PractitionerRole) was anyone's to write, so a desk could *claim* it for its own clinic by
naming its clinic there. Every patient record later placed through it (a visit at that
ward, a booking with that role) was then placed at the desk's clinic, and a visit or
booking loaded by the system registers its patient where it is placed: another clinic's
patient became registered at the desk's clinic, read whole by its desk and cared for by
its clinicians. Now a member of staff never places a directory record at a clinic of the
group it was not at (``domain.policy.claims_directory``).

Found too: a care team or referral by a doctor who cares for the patient opened the
record to any practitioner or clinic id it named, one no account holds included, so
whoever was given that id later (a locum's account, a clinic the group opens) read the
chart. A visit naming an outside practitioner already opened nothing; a vouching by staff
now opens the record only to practitioners and clinics of the group (``domain.care``).

The other attacks of the round hold, and are kept here as guards (named ``guard``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from carevault.ledger.events import Outcome, Tag
from tests.integration.access.group import (
    HKID_SYSTEM,
    TM,
    TODAY,
    TW,
    Group,
    booked_today,
    build_group,
    care_team,
    created,
    encounter,
    observation,
    referral,
    register_body,
    registered_patient,
)
from tests.support.client import FHIR_JSON, FhirTestClient, transfer_body
from tests.support.staff import Staff, make_staff

pytestmark = pytest.mark.postgres

JSON_PATCH = {"content-type": "application/json-patch+json"}
OUTSIDE = "hosp-qeh"


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    for built in build_group(services, api):
        hospital = {"resourceType": "Organization", "id": OUTSIDE, "name": "QEH"}
        assert api.put_json(f"/fhir/Organization/{OUTSIDE}", hospital).status_code == 201
        yield built


def _ref(kind: str, ident: str) -> dict[str, str]:
    return {"reference": f"{kind}/{ident}"}


def _patch(group: Group, who: Staff, path: str, body: Any) -> Any:
    return group.web.patch(
        path, content=json.dumps(body).encode(), headers={**who.headers, **JSON_PATCH}
    )


def _refused(response: Any, status: int = 403) -> None:
    assert response.status_code == status, response.text
    assert response.json()["resourceType"] == "OperationOutcome"


def _tw_patient_stays_closed(group: Group) -> None:
    """Tuen Mun's desk and doctor read Tsuen Wan's patient and chart as before: 403."""
    patient = group.tw_patient
    assert group.call(group.desk_tm, "GET", f"/fhir/Patient/{patient.id}").status_code == 403
    chart = f"/fhir/Observation/{patient.observation}"
    assert group.call(group.doctor_tm, "GET", chart).status_code == 403


def _visit_at_ward(patient: str) -> dict[str, Any]:
    """A visit at ward 7 with no ``serviceProvider``, as an imported history gives it."""
    return {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": _ref("Patient", patient),
        "location": [{"location": _ref("Location", "ward-7")}],
        "period": {"start": f"{TODAY.isoformat()}T09:00:00+08:00"},
    }


# --- found: directory records claimed for one's clinic ------------------------------------------


def _claim_ward(group: Group, how: str) -> Any:
    """Tuen Mun's desk names its clinic on ward 7, ``how``: the status it got."""
    claimed = {
        "resourceType": "Location",
        "id": "ward-7",
        "name": "Ward 7",
        "managingOrganization": _ref("Organization", TM),
    }
    if how == "PATCH":
        return _patch(
            group,
            group.desk_tm,
            "/fhir/Location/ward-7",
            [{"op": "add", "path": "/managingOrganization", "value": _ref("Organization", TM)}],
        )
    if how == "DELETE-then-PUT":
        assert group.call(group.desk_tm, "DELETE", "/fhir/Location/ward-7").status_code == 204
    return group.call(group.desk_tm, "PUT", "/fhir/Location/ward-7", claimed)


@pytest.mark.parametrize("how", ["PUT", "PATCH", "DELETE-then-PUT"])
@pytest.mark.parametrize("held_by", [None, OUTSIDE], ids=["no-organization", "outside-hospital"])
def test_a_desk_does_not_claim_a_ward_no_clinic_holds_to_register_the_patients_seen_there(
    group: Group, api: FhirTestClient, how: str, held_by: str | None
) -> None:
    ward: dict[str, Any] = {"resourceType": "Location", "id": "ward-7", "name": "Ward 7"}
    if held_by:
        ward["managingOrganization"] = _ref("Organization", held_by)
    assert api.put_json("/fhir/Location/ward-7", ward).status_code == 201

    claim = _claim_ward(group, how)
    # Tsuen Wan's patient's history is loaded by the system: a visit at the ward.
    created(api, _visit_at_ward(group.tw_patient.id))

    _tw_patient_stays_closed(group)
    _refused(claim)
    stored = api.get("/fhir/Location/ward-7")
    if how == "DELETE-then-PUT":  # an outside ward is anyone's to delete, as before
        assert stored.status_code == 410
    else:
        assert stored.json().get("managingOrganization") == ward.get("managingOrganization")
    refused = [
        e
        for e in group.events()
        if e.outcome is Outcome.DENIED
        and e.principal == f"staff:{group.desk_tm.account.username}"
        and e.tag in (Tag.FHIR_CREATE, Tag.FHIR_UPDATE)
    ]
    assert [e.resource_type for e in refused] == ["Location"]


def test_a_desk_does_not_claim_an_outside_doctors_role_to_register_the_patients_booked_with_it(
    group: Group, api: FhirTestClient
) -> None:
    outside = {"resourceType": "Practitioner", "id": "dr-qeh", "name": [{"family": "Ho"}]}
    assert api.put_json("/fhir/Practitioner/dr-qeh", outside).status_code == 201
    role = {
        "resourceType": "PractitionerRole",
        "id": "role-qeh",
        "active": True,
        "practitioner": _ref("Practitioner", "dr-qeh"),
        "organization": _ref("Organization", OUTSIDE),
    }
    assert api.put_json("/fhir/PractitionerRole/role-qeh", role).status_code == 201

    claim = group.call(
        group.desk_tm,
        "PUT",
        "/fhir/PractitionerRole/role-qeh",
        {**role, "organization": _ref("Organization", TM)},
    )
    booking = {
        "resourceType": "Appointment",
        "status": "booked",
        "start": f"{TODAY.isoformat()}T10:00:00+08:00",
        "end": f"{TODAY.isoformat()}T10:15:00+08:00",
        "participant": [
            {"actor": _ref("Patient", group.tw_patient.id), "status": "accepted"},
            {"actor": _ref("PractitionerRole", "role-qeh"), "status": "accepted"},
        ],
    }
    created(api, booking)

    _tw_patient_stays_closed(group)
    _refused(claim)
    stored = api.get("/fhir/PractitionerRole/role-qeh").json()
    assert stored["organization"] == _ref("Organization", OUTSIDE)


def test_a_clinic_keeps_and_names_its_directory_as_before(
    group: Group, api: FhirTestClient
) -> None:
    """Control: a desk writes its own rooms and changes them, names and changes an
    outside hospital's ward, and creates a room with no organization; a doctor's
    timetable naming only the doctor is put in the clinic's room; the system places a
    ward no clinic holds."""
    room = {
        "resourceType": "Location",
        "name": "Room 1",
        "managingOrganization": _ref("Organization", TM),
    }
    made = group.call(group.desk_tm, "POST", "/fhir/Location", room)
    assert made.status_code == 201, made.text
    room_id = made.json()["id"]
    renamed = group.call(
        group.desk_tm, "PUT", f"/fhir/Location/{room_id}", {**room, "id": room_id, "name": "R1"}
    )
    assert renamed.status_code == 200, renamed.text

    ward = {
        "resourceType": "Location",
        "id": "qeh-a",
        "name": "A&E",
        "managingOrganization": _ref("Organization", OUTSIDE),
    }
    assert group.call(group.desk_tm, "PUT", "/fhir/Location/qeh-a", ward).status_code == 201
    phoned = {**ward, "telecom": [{"system": "phone", "value": "+852 2958 8888"}]}
    assert group.call(group.desk_tm, "PUT", "/fhir/Location/qeh-a", phoned).status_code == 200
    bare = {"resourceType": "Location", "name": "Corridor"}
    assert group.call(group.desk_tm, "POST", "/fhir/Location", bare).status_code == 201

    timetable = {"resourceType": "Schedule", "actor": [_ref("Practitioner", "dr-tm")]}
    made = group.call(group.desk_tm, "POST", "/fhir/Schedule", timetable)
    assert made.status_code == 201, made.text
    schedule_id = made.json()["id"]
    in_room = {
        **timetable,
        "id": schedule_id,
        "actor": [*timetable["actor"], {"reference": f"Location/{room_id}"}],
    }
    moved = group.call(group.desk_tm, "PUT", f"/fhir/Schedule/{schedule_id}", in_room)
    assert moved.status_code == 200, moved.text

    placed = {"resourceType": "Location", "id": "ward-7", "name": "Ward 7"}
    assert api.put_json("/fhir/Location/ward-7", placed).status_code == 201
    placed["managingOrganization"] = _ref("Organization", TW)
    assert api.put_json("/fhir/Location/ward-7", placed).status_code == 200


def test_a_desk_of_two_clinics_does_not_move_a_room_from_one_to_the_other(
    group: Group,
) -> None:
    """A desk of both clinics moving Tuen Mun's room to Tsuen Wan: where a room is is
    the directory's (its integration app, or the system), not a desk's to change."""
    both = make_staff(group.services, Role.FRONT_DESK, [TM, TW])
    room = {
        "resourceType": "Location",
        "name": "Room 2",
        "managingOrganization": _ref("Organization", TM),
    }
    made = group.call(both, "POST", "/fhir/Location", room)
    assert made.status_code == 201, made.text
    room_id = made.json()["id"]
    moved = {**room, "id": room_id, "managingOrganization": _ref("Organization", TW)}
    _refused(group.call(both, "PUT", f"/fhir/Location/{room_id}", moved))


@pytest.mark.parametrize("kind", ["CareTeam", "ServiceRequest"])
def test_a_care_team_or_referral_opens_nothing_to_an_account_given_the_named_id_later(
    group: Group, kind: str
) -> None:
    """Tuen Mun's doctor, who cares for his patient, names on a care team (or refers the
    patient to) ``Practitioner/dr-later``, an id no account holds: it opened the record
    to whichever account an administrator gave that id later (a locum at Tsuen Wan a week
    on), as a visit naming an outside practitioner no longer does. Control: the same
    record naming Tsuen Wan's doctor, who works here, opens the chart to him."""
    patient = group.tm_patient

    def vouching(practitioner: str) -> dict[str, Any]:
        if kind == "CareTeam":
            return care_team(patient.id, practitioner)
        return referral(patient.id, f"Practitioner/{practitioner}")

    made = group.call(group.doctor_tm, "POST", f"/fhir/{kind}", vouching("dr-later"))
    assert made.status_code == 201, made.text
    later = make_staff(group.services, Role.PHYSICIAN, [TW], "dr-later")
    for path in (f"/fhir/Observation/{patient.observation}", f"/fhir/Patient/{patient.id}"):
        assert group.call(later, "GET", path).status_code == 403
    (written,) = [e for e in group.events(Tag.FHIR_CREATE) if e.resource_id == made.json()["id"]]
    assert written.detail["care"]["opens"] == []

    chart = f"/fhir/Observation/{patient.observation}"
    assert group.call(group.doctor_tw, "GET", chart).status_code == 403
    made = group.call(group.doctor_tm, "POST", f"/fhir/{kind}", vouching("dr-tw"))
    assert made.status_code == 201, made.text
    assert group.call(group.doctor_tw, "GET", chart).status_code == 200


def test_a_referral_opens_nothing_to_a_clinic_the_group_opens_later(group: Group) -> None:
    """Tuen Mun's doctor refers his patient to ``Organization/clinic-kt``, a clinic id no
    one works at (a clinic the group is about to open, or a made-up one): the referral
    opened the record to that id, so the clinicians of the clinic opened later read it.
    Control: a referral to Tsuen Wan opens the chart to its doctor."""
    patient = group.tm_patient
    made = group.call(
        group.doctor_tm,
        "POST",
        "/fhir/ServiceRequest",
        referral(patient.id, "Organization/clinic-kt"),
    )
    assert made.status_code == 201, made.text
    later = make_staff(group.services, Role.PHYSICIAN, ["clinic-kt"])
    chart = f"/fhir/Observation/{patient.observation}"
    assert group.call(later, "GET", chart).status_code == 403
    (written,) = [e for e in group.events(Tag.FHIR_CREATE) if e.resource_id == made.json()["id"]]
    assert written.detail["care"]["opens"] == []

    assert group.call(group.doctor_tw, "GET", chart).status_code == 403
    made = group.call(
        group.doctor_tm, "POST", "/fhir/ServiceRequest", referral(patient.id, f"Organization/{TW}")
    )
    assert made.status_code == 201, made.text
    assert group.call(group.doctor_tw, "GET", chart).status_code == 200


# --- guards: attacks that already fail ---------------------------------------------------------


def test_guard_a_patch_test_of_the_hkid_tells_a_desk_nothing(group: Group) -> None:
    """Guard: Tuen Mun's desk (which may write an HKID, never read one) tests its own
    patient's HKID with JSON Patch ``test``, the right number and a wrong one: the patch
    is applied to the desk's view, which holds no HKID, so both answer alike (409)."""
    path = f"/fhir/Patient/{group.tm_patient.id}"
    answers = []
    for guess in (group.tm_patient.hkid, "Z999999(9)"):
        tried = _patch(
            group,
            group.desk_tm,
            path,
            [
                {"op": "test", "path": "/identifier/0/value", "value": guess},
                {"op": "replace", "path": "/telecom/0/value", "value": "+852 9000 1111"},
            ],
        )
        answers.append((tried.status_code, tried.text.replace(guess, "G")))
    assert answers[0] == answers[1]
    assert answers[0][0] == 409
    stored = group.call(group.doctor_tm, "GET", path).json()
    assert stored["meta"]["versionId"] == "1"


def test_guard_a_patch_copying_a_hidden_reason_into_a_shown_element_fails(
    group: Group, api: FhirTestClient
) -> None:
    """Guard: the desk copies a visit's reason (clinical, withheld from it) into its
    ``type``, which it reads: the reason is not in its view (409), nothing written."""
    visit = {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": _ref("Patient", group.tm_patient.id),
        "serviceProvider": _ref("Organization", TM),
        "reasonCode": [{"text": "low mood for a month"}],
        "period": {"start": f"{TODAY.isoformat()}T09:00:00+08:00"},
    }
    visit_id = created(api, visit)
    path = f"/fhir/Encounter/{visit_id}"
    copied = _patch(
        group, group.desk_tm, path, [{"op": "copy", "from": "/reasonCode", "path": "/type"}]
    )
    _refused(copied, 409)
    assert "low mood" not in copied.text
    assert api.get(path).json()["meta"]["versionId"] == "1"


def test_guard_fhirpath_patch_is_refused_and_writes_nothing(group: Group) -> None:
    """Guard: FHIRPath Patch (a Parameters body) setting Tsuen Wan's patient's home
    clinic, or its own patient's: 415 before anything is read, nothing written."""
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {
                "name": "operation",
                "part": [
                    {"name": "type", "valueCode": "replace"},
                    {"name": "path", "valueString": "Patient.managingOrganization"},
                    {"name": "value", "valueReference": _ref("Organization", TM)},
                ],
            }
        ],
    }
    for patient in (group.tw_patient.id, group.tm_patient.id):
        response = group.web.patch(
            f"/fhir/Patient/{patient}",
            content=json.dumps(body).encode(),
            headers={**group.desk_tm.headers, **FHIR_JSON},
        )
        _refused(response, 415)
    _tw_patient_stays_closed(group)


@pytest.mark.parametrize(
    "period",
    [
        {"start": -400, "end": 400},  # back-dated, "lasting" two years
        {"start": 3650},  # forward-dated ten years
        {"start": -3650, "end": -3600},  # long ago
    ],
    ids=["back-dated-two-years-long", "forward-dated", "long-ago"],
)
def test_guard_a_visits_dates_open_no_window_around_today(
    group: Group, api: FhirTestClient, period: dict[str, int]
) -> None:
    """Guard: Tuen Mun's nurse records a visit of a Tuen Mun patient whom no one cares
    for now, dated to open a window around today (a visit counts as at most 31 days, and
    the window is 30 days before and 90 after it): the nurse and the doctor still cannot
    read the patient's chart. Control: the same visit dated today opens it."""
    nurse = make_staff(group.services, Role.NURSE, [TM], "dr-other")
    patient = registered_patient(api, TM, "Ho")
    chart = created(api, observation(patient))
    dated = {
        name: f"{(TODAY + timedelta(days=days)).isoformat()}T09:00:00+08:00"
        for name, days in period.items()
    }
    visit = {**encounter(patient, TM), "period": dated}
    assert group.call(nurse, "POST", "/fhir/Encounter", visit).status_code == 201
    for who in (nurse, group.doctor_tm):
        assert group.call(who, "GET", f"/fhir/Observation/{chart}").status_code == 403

    visit["period"] = {"start": f"{TODAY.isoformat()}T09:00:00+08:00"}
    assert group.call(nurse, "POST", "/fhir/Encounter", visit).status_code == 201
    assert group.call(nurse, "GET", f"/fhir/Observation/{chart}").status_code == 200


def test_guard_a_transaction_naming_another_clinics_patient_by_hkid_or_uuid_writes_nothing(
    group: Group,
) -> None:
    """Guard: Tuen Mun's doctor sends a transaction whose visit at Tuen Mun names Tsuen
    Wan's patient by HKID (a conditional reference), with an observation naming the
    visit by ``urn:uuid``; and one whose Patient entry (``urn:uuid``) is a conditional
    create matching that HKID. Neither writes anything or opens the patient."""
    by_hkid = f"Patient?identifier={HKID_SYSTEM}|{group.tw_patient.hkid}"
    visit = {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": by_hkid},
        "serviceProvider": _ref("Organization", TM),
        "participant": [{"individual": _ref("Practitioner", "dr-tm")}],
        "period": {"start": f"{TODAY.isoformat()}T09:00:00+08:00"},
    }
    note = {**observation("x"), "subject": {"reference": by_hkid}}
    note["encounter"] = {"reference": "urn:uuid:0c4b2c5e-0000-4000-8000-000000000001"}
    first = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:0c4b2c5e-0000-4000-8000-000000000001",
                "resource": visit,
                "request": {"method": "POST", "url": "Encounter"},
            },
            {"resource": note, "request": {"method": "POST", "url": "Observation"}},
        ],
    }
    twin = {
        "resourceType": "Patient",
        "identifier": [{"system": HKID_SYSTEM, "value": group.tw_patient.hkid}],
        "managingOrganization": _ref("Organization", TM),
    }
    uuid = "urn:uuid:0c4b2c5e-0000-4000-8000-000000000002"
    second = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": uuid,
                "resource": twin,
                "request": {
                    "method": "POST",
                    "url": "Patient",
                    "ifNoneExist": f"identifier={HKID_SYSTEM}|{group.tw_patient.hkid}",
                },
            },
            {
                "resource": {**visit, "subject": {"reference": uuid}},
                "request": {"method": "POST", "url": "Encounter"},
            },
        ],
    }
    before = len(group.events(Tag.FHIR_CREATE))
    for bundle in (first, second):
        answer = group.call(group.doctor_tm, "POST", "/fhir", bundle)
        assert answer.status_code in (404, 409), answer.text
        assert answer.json()["resourceType"] == "OperationOutcome"
        assert group.tw_patient.hkid not in answer.text
    made = [e for e in group.events(Tag.FHIR_CREATE) if e.outcome is Outcome.SUCCESS]
    assert len(made) == before
    _tw_patient_stays_closed(group)


@pytest.mark.parametrize("kind", ["EpisodeOfCare", "ReferralRequest"])
def test_guard_types_the_server_does_not_keep_open_nothing(group: Group, kind: str) -> None:
    """Guard: Tuen Mun's doctor writes an EpisodeOfCare (its care manager himself) or a
    DSTU3 ReferralRequest (to himself) for Tsuen Wan's patient: neither type is kept
    here, so the write is refused whole and opens nothing."""
    patient = _ref("Patient", group.tw_patient.id)
    me = _ref("Practitioner", "dr-tm")
    body: dict[str, Any] = (
        {
            "resourceType": kind,
            "status": "active",
            "patient": patient,
            "careManager": me,
            "managingOrganization": _ref("Organization", TM),
            "period": {"start": TODAY.isoformat()},
        }
        if kind == "EpisodeOfCare"
        else {"resourceType": kind, "status": "active", "subject": patient, "recipient": [me]}
    )
    answer = group.call(group.doctor_tm, "POST", f"/fhir/{kind}", body)
    _refused(answer, 404)
    assert answer.json()["issue"][0]["code"] == "not-supported"
    _tw_patient_stays_closed(group)


def test_guard_a_desk_reads_no_version_it_wrote_once_the_patient_left_its_clinic(
    group: Group,
) -> None:
    """Guard: Tuen Mun's desk writes a patient (version 1) and their new telephone
    (version 2); the officer transfers them to Tsuen Wan. The desk's own versions are
    shown under the stricter of then and now: its history and versions answer as its
    read of the patient does (403), nothing of them is given back."""
    made = group.call(
        group.desk_tm,
        "POST",
        "/fhir/Patient",
        {"resourceType": "Patient", "name": [{"family": "Tse"}], "birthDate": "1990-01-02"},
    )
    assert made.status_code == 201, made.text
    patient = made.json()["id"]
    path = f"/fhir/Patient/{patient}"
    body = {**made.json(), "telecom": [{"system": "phone", "value": "+852 9333 4444"}]}
    body.pop("meta")
    assert group.call(group.desk_tm, "PUT", path, body).status_code == 200
    moved = group.call(group.officer, "POST", f"{path}/$transfer", transfer_body(TW))
    assert moved.status_code == 200, moved.text

    for asked in (path, f"{path}/_history", f"{path}/_history/1", f"{path}/_history/2"):
        answer = group.call(group.desk_tm, "GET", asked)
        _refused(answer)
        assert "Tse" not in answer.text and "9333" not in answer.text
    assert group.call(group.desk_tw, "GET", path).status_code == 200


# --- closed after the round: a booking planted for another clinic's patient ---------------------


def _planted(group: Group) -> str:
    """Tuen Mun's desk books Tsuen Wan's patient at Tuen Mun (201, opens nothing: issue
    9): the booking's path."""
    made = group.call(
        group.desk_tm, "POST", "/fhir/Appointment", booked_today(group.tw_patient.id, TM)
    )
    assert made.status_code == 201, made.text
    return f"/fhir/Appointment/{made.json()['id']}"


def _with_note(group: Group, path: str) -> dict[str, Any]:
    body: dict[str, Any] = group.call(group.desk_tw, "GET", path).json()
    body.pop("meta")
    body["comment"] = "moved: 12 Sha Tsui Road, flat 3B"
    return body


@pytest.mark.parametrize("how", ["PUT", "PATCH", "transaction"])
def test_a_booking_planted_for_another_clinics_patient_does_not_carry_their_edits_back(
    group: Group, how: str
) -> None:
    """Tsuen Wan's desk finds the planted booking among its patient's and writes a note
    on it: refused (round 60 measured Tuen Mun's desk reading the note), nothing
    written, and recorded as refused; Tuen Mun's desk reads its booking as it wrote it."""
    path = _planted(group)
    before = group.call(group.desk_tm, "GET", path).json()
    body = _with_note(group, path)
    if how == "PUT":
        answer = group.call(group.desk_tw, "PUT", path, body)
    elif how == "PATCH":
        note = {"op": "add", "path": "/comment", "value": body["comment"]}
        answer = _patch(group, group.desk_tw, path, [note])
    else:
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [{"resource": body, "request": {"method": "PUT", "url": path[6:]}}],
        }
        answer = group.call(group.desk_tw, "POST", "/fhir", bundle)
    _refused(answer)
    assert "registered" in answer.text and "Sha Tsui" not in answer.text

    after = group.call(group.desk_tm, "GET", path)
    assert after.status_code == 200
    assert "Sha Tsui" not in after.text
    assert after.json()["meta"]["versionId"] == before["meta"]["versionId"]
    refused = [
        event
        for event in group.events()
        if event.principal == f"staff:{group.desk_tw.account.username}"
        and event.resource_id == path.rsplit("/", 1)[1]
        and event.outcome is Outcome.DENIED
    ]
    assert [event.tag for event in refused] == [Tag.FHIR_UPDATE]
    _tw_patient_stays_closed(group)


def test_the_patients_clinic_deletes_a_planted_booking_and_cannot_write_it_back(
    group: Group,
) -> None:
    """What the patient's clinic may do with a booking planted at another clinic: delete
    it (taking away tells the planter nothing new). Written again under the same id it
    would be Tuen Mun's record again: refused as the edit is."""
    path = _planted(group)
    body = _with_note(group, path)
    assert group.call(group.desk_tw, "DELETE", path).status_code in (200, 204)
    _refused(group.call(group.desk_tw, "PUT", path, body))
    assert group.call(group.desk_tm, "GET", path).status_code in (404, 410)


def test_a_clinic_changes_its_own_bookings_and_those_of_patients_registered_there(
    group: Group,
) -> None:
    """The rule takes nothing else away. Tuen Mun's desk changes the booking it wrote.
    Once the patient is registered at Tuen Mun too (they attend, and show their card:
    ``$register``), Tuen Mun has them, and Tsuen Wan's desk changes the booking there
    as before."""
    path = _planted(group)
    own = group.call(group.desk_tm, "GET", path).json()
    own.pop("meta")
    own["comment"] = "bring the referral letter"
    changed = group.call(group.desk_tm, "PUT", path, own)
    assert changed.status_code == 200, changed.text

    patient = group.tw_patient
    registered = group.call(
        group.desk_tm,
        "POST",
        "/fhir/Patient/$register",
        register_body(patient.hkid, patient.birth_date, TM),
    )
    assert registered.status_code == 200, registered.text
    edited = group.call(group.desk_tw, "PUT", path, _with_note(group, path))
    assert edited.status_code == 200, edited.text
