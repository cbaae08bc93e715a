"""Writes never widen access: each hole an insider with an ordinary login found through
writes, sent as they sent it, and what now answers (issue 9). On SQLite and PostgreSQL.

A change is allowed only on what is stored as well as on what is sent; old versions keep
the patient and clinic they had; a written record never opens a patient's record to its
writer; a transaction's refused read writes nothing.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from carevault.access.throttle import REGISTRATION
from carevault.domain.roles import Role
from carevault.ledger.events import Outcome, Tag
from tests.integration.access.group import (
    HKID_SYSTEM,
    TM,
    TODAY,
    TW,
    Group,
    booked_today,
    care_team,
    encounter,
    observation,
    referral,
    register_body,
)
from tests.support.client import FhirTestClient, transfer_body
from tests.support.staff import make_staff

# --- updates are judged on what is stored ------------------------------------------------------


@pytest.mark.parametrize("keeps_clinic", [False, True], ids=["moves-clinic", "keeps-clinic"])
def test_a_front_desk_cannot_take_over_another_clinics_patient_by_update(
    group: Group, keeps_clinic: bool
) -> None:
    patient = group.tw_patient.id
    assert group.call(group.desk_tm, "GET", f"/fhir/Patient/{patient}").status_code == 403
    hijack: dict[str, Any] = {
        "resourceType": "Patient",
        "id": patient,
        "name": [{"family": "Hijacked"}],
    }
    if not keeps_clinic:
        hijack["managingOrganization"] = {"reference": f"Organization/{TM}"}

    response = group.call(group.desk_tm, "PUT", f"/fhir/Patient/{patient}", hijack)

    assert response.status_code == 403
    own = group.call(group.desk_tw, "GET", f"/fhir/Patient/{patient}")
    assert own.status_code == 200
    assert own.json()["name"][0]["family"] == "Lee"
    assert own.json()["meta"]["versionId"] == "1"
    (denied,) = [e for e in group.events(Tag.FHIR_UPDATE) if e.outcome is Outcome.DENIED]
    assert denied.principal == f"staff:{group.desk_tm.account.username}"
    assert "Hijacked" not in denied.canonical().decode()


def test_a_physician_cannot_move_an_observation_to_his_own_patient(group: Group) -> None:
    observation_id = group.tw_patient.observation
    path = f"/fhir/Observation/{observation_id}"
    assert group.call(group.doctor_tm, "GET", path).status_code == 403
    moved = {**observation(group.tm_patient.id, "HbA1c 7.2 %"), "id": observation_id}

    response = group.call(group.doctor_tm, "PUT", path, moved)

    assert response.status_code == 403
    assert group.call(group.doctor_tm, "GET", f"{path}/_history/1").status_code == 403
    treating = group.call(group.doctor_tw, "GET", path)
    assert treating.status_code == 200
    assert treating.json()["subject"]["reference"] == f"Patient/{group.tw_patient.id}"


def test_no_update_moves_a_record_to_another_patient_even_with_rights_on_both(
    group: Group,
) -> None:
    both = make_staff(group.services, Role.PHYSICIAN, [TM, TW], "dr-other")
    observation_id = group.tw_patient.observation
    moved = {**observation(group.tm_patient.id), "id": observation_id}

    response = group.call(both, "PUT", f"/fhir/Observation/{observation_id}", moved)

    assert response.status_code == 403
    assert "another patient" in response.json()["issue"][0]["diagnostics"]
    assert group.call(both, "GET", f"/fhir/Observation/{observation_id}").json()["subject"] == {
        "reference": f"Patient/{group.tw_patient.id}"
    }


def test_a_patient_update_without_a_clinic_keeps_the_home_clinic(group: Group) -> None:
    patient = group.tw_patient.id
    current = group.call(group.desk_tw, "GET", f"/fhir/Patient/{patient}").json()
    current.pop("managingOrganization")
    current["telecom"] = [{"system": "phone", "value": "+852 9000 0000"}]

    response = group.call(group.desk_tw, "PUT", f"/fhir/Patient/{patient}", current)

    assert response.status_code == 200, response.text
    assert response.json()["managingOrganization"] == {"reference": f"Organization/{TW}"}


def _move_to_tuen_mun(group: Group, patient: str) -> None:
    """The privacy officer transfers the patient from Tsuen Wan to Tuen Mun."""
    moved = group.call(
        group.officer,
        "POST",
        f"/fhir/Patient/{patient}/$transfer",
        transfer_body(TM),
    )
    assert moved.status_code == 200, moved.text


def _renamed_then_moved(group: Group, api: FhirTestClient) -> str:
    """Tsuen Wan's patient, renamed three times there (versions 2-4), then transferred to
    Tuen Mun (version 5): its id."""
    patient = group.tw_patient.id
    for given in ("Ka Yan", "Ka Yee", "Wing"):
        body = api.get(f"/fhir/Patient/{patient}").json()
        body["name"][0]["given"] = [given]
        assert api.put_json(f"/fhir/Patient/{patient}", body).status_code == 200
    _move_to_tuen_mun(group, patient)
    return patient


# --- old versions keep the facts they had --------------------------------------------------------


def test_a_transferred_patients_old_versions_stay_with_the_old_clinic(group: Group) -> None:
    patient = group.tw_patient.id
    _move_to_tuen_mun(group, patient)

    assert group.call(group.desk_tw, "GET", f"/fhir/Patient/{patient}").status_code == 403
    assert group.call(group.desk_tm, "GET", f"/fhir/Patient/{patient}").status_code == 200
    assert (
        group.call(group.desk_tm, "GET", f"/fhir/Patient/{patient}/_history/1").status_code == 403
    )
    history = group.call(group.desk_tm, "GET", f"/fhir/Patient/{patient}/_history").json()
    assert [entry["resource"]["meta"]["versionId"] for entry in history["entry"]] == ["2"]
    (transferred,) = [
        e for e in group.events(Tag.PATIENT_TRANSFERRED) if e.outcome is Outcome.SUCCESS
    ]
    assert transferred.detail | {"from": TW, "to": TM, "reason": "patient-moved"} == (
        transferred.detail
    )


@pytest.mark.parametrize("level", ["/fhir/Patient/_history", "/fhir/_history"])
def test_history_pages_never_count_the_versions_one_may_not_read(
    group: Group, api: FhirTestClient, level: str
) -> None:
    """Hole: type and system history cut pages among candidate versions, then left out
    the refused ones. Paging one by one, a front desk that gained a transferred patient
    got an empty page (with a next link) for each change the old clinic had made before
    the transfer: how many, and in what order with the rest. Pages now hold only what
    the caller may read, and a next link only if more of that follows."""
    patient = _renamed_then_moved(group, api)

    pages: list[list[str]] = []
    url: str | None = f"{level}?_count=1"
    while url is not None and len(pages) < 50:
        shown = group.call(group.desk_tm, "GET", url).json()
        pages.append([entry["fullUrl"] for entry in shown.get("entry", [])])
        url = _next_link(shown)

    assert all(len(page) == 1 for page in pages), pages
    seen = [page[0] for page in pages]
    assert len(seen) == len(set(seen))
    assert sum(1 for shown in seen if f"Patient/{patient}" in shown) == 1  # version 5 only


def _next_link(bundle: dict[str, Any]) -> str | None:
    url = next((ln["url"] for ln in bundle["link"] if ln["relation"] == "next"), None)
    return None if url is None else url.removeprefix("http://testserver")


def _paging(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


@pytest.mark.parametrize("level", ["/fhir/Patient/_history", "/fhir/_history"])
def test_a_history_cursor_is_opaque_and_only_its_callers(
    group: Group, api: FhirTestClient, level: str
) -> None:
    """Hole: the next link's ``_offset`` was a position among candidate versions, so its
    gap from the versions shown counted those the caller may not read, and a previous
    link counted back among candidates. The position now goes out sealed: every cursor
    looks alike whatever was passed over, there is no previous link, and a cursor
    altered, or sent by anyone but the caller it was given to, is refused (400)."""
    _renamed_then_moved(group, api)

    cursors: list[str] = []
    seen: list[str] = []
    url: str | None = f"{level}?_count=1"
    while url is not None and len(cursors) < 50:
        shown = group.call(group.desk_tm, "GET", url).json()
        assert "previous" not in {ln["relation"] for ln in shown["link"]}
        seen += [entry["fullUrl"] + entry["response"]["etag"] for entry in shown["entry"]]
        url = _next_link(shown)
        if url is not None:
            cursors.append(_paging(url)["_offset"])
    assert cursors and len(seen) == len(set(seen)) == len(cursors) + 1
    assert not any(cursor.isdigit() for cursor in cursors)
    assert len({len(cursor) for cursor in cursors}) == 1
    # The system sees every version: its cursors look the same as the desk's.
    first = api.get(f"{level}?_count=1").json()
    own = _next_link(first)
    assert own is not None and len(_paging(own)["_offset"]) == len(cursors[0])

    asked = f"{level}?_count=1&_offset={cursors[0]}"
    assert group.call(group.desk_tm, "GET", asked).status_code == 200
    tampered = cursors[0][:10] + ("A" if cursors[0][10] != "A" else "B") + cursors[0][11:]
    for who, path in (
        (group.desk_tm, f"{level}?_count=1&_offset={tampered}"),
        (group.desk_tw, asked),
        (group.desk_tm, f"{level}?_count=1&_offset=3"),
        (group.desk_tm, f"{level}?_count=1&_offset={cursors[0]}&_since=2020-01-01"),
    ):
        refused = group.call(who, "GET", path)
        assert refused.status_code == 400, (path, refused.text)
        assert refused.json()["resourceType"] == "OperationOutcome"
    other_level = "/fhir/_history" if level != "/fhir/_history" else "/fhir/Patient/_history"
    assert (
        group.call(group.desk_tm, "GET", f"{other_level}?_count=1&_offset={cursors[0]}").status_code
        == 400
    )


@pytest.mark.parametrize(
    ("who", "clinics", "reason", "status"),
    [
        (Role.FRONT_DESK, [TM, TW], "patient-moved", 403),
        (Role.CLINIC_MANAGER, [TM], "patient-moved", 403),
        (Role.CLINIC_MANAGER, [TM, TW], "patient-moved", 200),
        (Role.PRIVACY_OFFICER, [TM], "because I say so", 400),
    ],
)
def test_only_an_officer_or_the_manager_of_both_clinics_transfers_a_patient(
    group: Group, who: Role, clinics: list[str], reason: str, status: int
) -> None:
    caller = make_staff(group.services, who, clinics)
    patient = group.tw_patient.id

    response = group.call(
        caller, "POST", f"/fhir/Patient/{patient}/$transfer", transfer_body(TM, reason)
    )

    assert response.status_code == status, response.text
    home = group.call(group.desk_tw, "GET", f"/fhir/Patient/{patient}").status_code
    assert home == (403 if status == 200 else 200)


# --- a write never opens a record to its writer --------------------------------------------------


def test_an_encounter_at_ones_own_clinic_opens_nothing_for_another_clinics_patient(
    group: Group,
) -> None:
    patient = group.tw_patient
    visit = encounter(patient.id, TM, "dr-tm")

    created = group.call(group.doctor_tm, "POST", "/fhir/Encounter", visit)

    assert created.status_code == 201, created.text
    assert group.call(group.doctor_tm, "GET", f"/fhir/Patient/{patient.id}").status_code == 403
    found = group.call(group.doctor_tm, "GET", f"/fhir/Observation?patient={patient.id}").json()
    assert found["total"] == 0
    (written,) = [e for e in group.events(Tag.FHIR_CREATE) if e.resource_id == created.json()["id"]]
    assert written.detail["care"]["opens"] == []
    assert "not registered" in written.detail["care"]["reason"]


def test_an_appointment_booked_at_ones_own_location_opens_nothing(group: Group) -> None:
    patient = group.tw_patient.id
    booking = booked_today(patient, TM, "dr-tm")
    booking["participant"] = booking["participant"][:2]  # the patient and the clinic only

    created = group.call(group.desk_tm, "POST", "/fhir/Appointment", booking)

    assert created.status_code == 201, created.text
    assert group.call(group.doctor_tm, "GET", f"/fhir/Patient/{patient}").status_code == 403


def _refused_naming(response: Any, element: str) -> None:
    """A 422 OperationOutcome that names ``element``, never the patient's HKID."""
    assert response.status_code == 422, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert element in re.sub(r"\[\d+\]", "", outcome["issue"][0]["diagnostics"])
    assert "C668668" not in response.text


@pytest.mark.parametrize("kind", ["Appointment", "Encounter"])
def test_a_desk_cannot_route_its_patient_to_another_clinics_doctor(group: Group, kind: str) -> None:
    """Hole: a visit or appointment opens the record to every practitioner it names (rule
    1 of domain/care.py). A front desk of Tsuen Wan booked its own patient, at its own
    clinic, with Tuen Mun's doctor, and that doctor read the patient's clinical record: a
    referral no clinician made. Naming a practitioner of the group who does not work at
    the record's clinic is refused; a referral (ServiceRequest) by a treating clinician is
    the way to another clinic's doctor."""
    patient = group.tw_patient
    path = f"/fhir/Observation/{patient.observation}"
    body = (
        booked_today(patient.id, TW, "dr-tm")
        if kind == "Appointment"
        else encounter(patient.id, TW, "dr-tm")
    )

    response = group.call(group.desk_tw, "POST", f"/fhir/{kind}", body)

    assert response.status_code == 403, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "Practitioner/dr-tm" in outcome["issue"][0]["diagnostics"]
    assert group.call(group.doctor_tm, "GET", path).status_code == 403
    found = group.call(group.desk_tw, "GET", f"/fhir/{kind}?patient={patient.id}").json()
    assert found["total"] == (1 if kind == "Encounter" else 0)  # yesterday's visit only
    (denied,) = [e for e in group.events(Tag.FHIR_CREATE) if e.outcome is Outcome.DENIED]
    assert denied.principal == f"staff:{group.desk_tw.account.username}"
    # The clinic's own doctor may be named, and opens the record as before.
    own = (
        booked_today(patient.id, TW, "dr-tw")
        if kind == "Appointment"
        else encounter(patient.id, TW, "dr-tw")
    )
    assert group.call(group.desk_tw, "POST", f"/fhir/{kind}", own).status_code == 201


def test_a_booking_with_an_outside_practitioner_opens_nothing_to_a_later_account(
    group: Group,
) -> None:
    """A practitioner no one here works as (a visiting specialist, a made-up id) may be
    named on a booking, but it opens them nothing: an account given that practitioner
    id later, at another clinic, would otherwise read the patient for the whole window."""
    patient = group.tw_patient
    booked = group.call(
        group.desk_tw, "POST", "/fhir/Appointment", booked_today(patient.id, TW, "dr-other")
    )
    assert booked.status_code == 201, booked.text

    joined = make_staff(group.services, Role.PHYSICIAN, [TM], "dr-other")

    path = f"/fhir/Observation/{patient.observation}"
    assert group.call(joined, "GET", path).status_code == 403
    (written,) = [e for e in group.events(Tag.FHIR_CREATE) if e.resource_id == booked.json()["id"]]
    assert written.detail["care"]["opens"] == [
        opened for opened in written.detail["care"]["opens"] if opened.get("clinic") == TW
    ]


def test_an_update_cannot_add_another_clinics_doctor_to_a_booking(group: Group) -> None:
    patient = group.tw_patient
    created = group.call(
        group.desk_tw, "POST", "/fhir/Appointment", booked_today(patient.id, TW, "dr-tw")
    )
    assert created.status_code == 201, created.text
    booking = created.json()
    booking["participant"].append(
        {"actor": {"reference": "Practitioner/dr-tm"}, "status": "accepted"}
    )

    response = group.call(group.desk_tw, "PUT", f"/fhir/Appointment/{booking['id']}", booking)

    assert response.status_code == 403, response.text
    path = f"/fhir/Observation/{patient.observation}"
    assert group.call(group.doctor_tm, "GET", path).status_code == 403


def test_a_record_cannot_be_placed_at_another_clinic(group: Group) -> None:
    patient = group.tm_patient.id

    response = group.call(group.desk_tm, "POST", "/fhir/Encounter", encounter(patient, TW))

    assert response.status_code == 403
    assert "your clinics" in response.json()["issue"][0]["diagnostics"]


def test_a_care_team_written_by_someone_without_care_opens_nothing(group: Group) -> None:
    patient = group.tw_patient.id
    team = care_team(patient, "dr-tm", TM)

    created = group.call(group.doctor_tm, "POST", "/fhir/CareTeam", team)

    assert created.status_code == 201, created.text
    assert group.call(group.doctor_tm, "GET", f"/fhir/Patient/{patient}").status_code == 403


def test_a_care_team_with_no_period_vouches_for_one_care_window_only(group: Group) -> None:
    patient = group.tw_patient
    team = care_team(patient.id, "dr-tm")

    created = group.call(group.doctor_tw, "POST", "/fhir/CareTeam", team)

    assert created.status_code == 201, created.text
    path = f"/fhir/Observation/{patient.observation}"
    assert group.call(group.doctor_tm, "GET", path).status_code == 200
    (written,) = [e for e in group.events(Tag.FHIR_CREATE) if e.resource_id == created.json()["id"]]
    (opened,) = written.detail["care"]["opens"]
    assert opened["practitioner"] == "Practitioner/dr-tm"
    window = group.services.settings.care_days_after * 86_400 * 1_000_000
    assert opened["until"] <= written.at_us + window


def test_a_vouching_never_opens_more_for_its_writer(group: Group) -> None:
    patient = group.tw_patient.id
    team = care_team(patient, "dr-tw", TW)

    created = group.call(group.doctor_tw, "POST", "/fhir/CareTeam", team)

    assert created.status_code == 201
    (written,) = [e for e in group.events(Tag.FHIR_CREATE) if e.resource_id == created.json()["id"]]
    assert written.detail["care"]["opens"] == []


def test_a_referral_by_the_treating_doctor_opens_the_record_to_the_doctor_referred_to(
    group: Group,
) -> None:
    patient = group.tw_patient
    path = f"/fhir/Observation/{patient.observation}"
    by_stranger = group.call(
        group.doctor_tm, "POST", "/fhir/ServiceRequest", referral(patient.id, "Practitioner/dr-tm")
    )
    assert by_stranger.status_code == 403  # writing an order needs a care relationship
    assert group.call(group.doctor_tm, "GET", path).status_code == 403

    by_treating = group.call(
        group.doctor_tw, "POST", "/fhir/ServiceRequest", referral(patient.id, "Practitioner/dr-tm")
    )

    assert by_treating.status_code == 201, by_treating.text
    assert group.call(group.doctor_tm, "GET", path).status_code == 200


# --- a patient's record always names its patient ------------------------------------------------


@pytest.mark.parametrize(
    "subject",
    [
        {"reference": "http://testserver/fhir/Patient/{id}"},
        {"reference": "{id}", "type": "Patient"},
        {"identifier": {"system": HKID_SYSTEM, "value": "C668668(9)"}},
        {"reference": "Patient?identifier=C668668(9)"},
        {"reference": "#p1"},
        {"display": "Lee Siu Ming"},
        None,
    ],
    ids=["absolute", "typed", "logical", "conditional", "contained", "display", "none"],
)
def test_a_record_that_names_its_patient_in_no_way_the_vault_follows_is_refused(
    group: Group, api: FhirTestClient, subject: dict[str, Any] | None
) -> None:
    """Hole: the vault finds a record's patient only in a relative reference
    ``Patient/[id]``. The treating doctor wrote an HIV result with the subject as an
    absolute URL (as FHIR clients often send it), as ``type`` and id, or by HKID: the
    record was stored as no one's (no patient, no clinic, sealed under the directory
    key), and any physician of any clinic read it by id, with no care relationship. A
    patient's record must name its patient so; anything else is refused (422)."""
    patient = group.tw_patient
    body = observation(patient.id, "HIV-1 viral load 200 copies/mL")
    if subject is None:
        del body["subject"]
    else:
        body["subject"] = json.loads(json.dumps(subject).replace("{id}", patient.id))
        if subject.get("reference") == "#p1":
            body["contained"] = [{"resourceType": "Patient", "id": "p1", "active": True}]

    response = group.call(group.doctor_tw, "POST", "/fhir/Observation", body)

    _refused_naming(response, "Observation.subject")
    assert api.get("/fhir/Observation").json()["total"] == 2  # the group's own, only


def _outside_booking(patient: str, outside: dict[str, Any]) -> dict[str, Any]:
    booking = booked_today(patient, TW, "dr-tw")
    booking["participant"][2] = {"actor": outside, "status": "accepted"}
    return booking


@pytest.mark.parametrize(
    "outside",
    [
        {"display": "Dr Chan Tai Man (Queen Mary Hospital)"},
        {"identifier": {"system": "urn:hk:mchk", "value": "M12345"}, "display": "Dr Chan"},
        {"reference": "https://ehr.example.org/fhir/Practitioner/77"},
        {"reference": "urn:uuid:6f1d1f0e-0000-4000-8000-000000000077", "type": "Practitioner"},
    ],
    ids=["display", "identifier", "absolute-practitioner", "typed-practitioner"],
)
def test_an_appointment_with_an_outside_doctor_is_accepted_and_opens_nothing(
    group: Group, outside: dict[str, Any]
) -> None:
    """R4 lets an Appointment's participant be anyone, by name or identifier only or at
    another server: such a participant is no patient, and the booking that names its
    patient as Patient/[id] is taken (it was refused whole, 422). The vault follows only
    relative references, so it opens the record to no one."""
    patient = group.tw_patient
    booked = group.call(
        group.desk_tw, "POST", "/fhir/Appointment", _outside_booking(patient.id, outside)
    )

    assert booked.status_code == 201, booked.text
    joined = make_staff(group.services, Role.PHYSICIAN, [TM], "77")
    path = f"/fhir/Observation/{patient.observation}"
    assert group.call(joined, "GET", path).status_code == 403
    assert group.call(group.doctor_tm, "GET", path).status_code == 403
    (written,) = [e for e in group.events(Tag.FHIR_CREATE) if e.resource_id == booked.json()["id"]]
    # No practitioner window; at most the patient's own clinic, which reads it already.
    assert all(opened.get("clinic") == TW for opened in written.detail["care"]["opens"])


@pytest.mark.parametrize(
    "actor",
    [
        {"reference": "https://ehr.example.org/fhir/Patient/{id}"},
        {"reference": "http://testserver/fhir/Patient/{id}"},
        {"reference": "Patient?identifier=C668668(9)"},
        {"reference": "#p1"},
        {"identifier": {"system": HKID_SYSTEM, "value": "C668668(9)"}, "type": "Patient"},
        {"reference": "https://ehr.example.org/opaque/77"},
    ],
    ids=["absolute", "own-base", "conditional", "contained", "typed-identifier", "untyped"],
)
def test_an_appointment_naming_a_patient_the_vault_cannot_follow_is_refused(
    group: Group, actor: dict[str, Any]
) -> None:
    patient = group.tw_patient
    outside = json.loads(json.dumps(actor).replace("{id}", patient.id))
    body = _outside_booking(patient.id, outside)
    if actor.get("reference") == "#p1":
        body["contained"] = [{"resourceType": "Patient", "id": "p1", "active": True}]

    response = group.call(group.desk_tw, "POST", "/fhir/Appointment", body)

    _refused_naming(response, "Appointment.participant.actor")


def test_an_update_cannot_unname_a_records_patient(group: Group) -> None:
    patient = group.tw_patient
    path = f"/fhir/Observation/{patient.observation}"
    record = group.call(group.doctor_tw, "GET", path).json()
    record["subject"] = {"reference": f"http://testserver/fhir/Patient/{patient.id}"}

    response = group.call(group.doctor_tw, "PUT", path, record)

    assert response.status_code == 422, response.text
    assert group.call(group.doctor_tm, "GET", path).status_code == 403


def test_a_record_already_stored_without_its_patient_is_no_directory_record(
    group: Group, api: FhirTestClient
) -> None:
    """What the hole above left in the vault (and what the system may still write): a
    clinical record whose patient the vault never found. It is not a directory record
    any clinician may read: health data needs a care relationship with a patient, which
    no one has with no one; its other data stays with its clinic."""
    body = observation(group.tw_patient.id, "HIV-1 viral load 200 copies/mL")
    body["subject"] = {"reference": f"http://testserver/fhir/Patient/{group.tw_patient.id}"}
    stored = api.post_json("/fhir/Observation", body)
    assert stored.status_code == 201, stored.text
    path = f"/fhir/Observation/{stored.json()['id']}"
    booking = {
        "resourceType": "Appointment",
        "status": "booked",
        "start": f"{TODAY.isoformat()}T10:00:00+08:00",
        "participant": [{"actor": {"reference": f"Organization/{TW}"}, "status": "accepted"}],
        "comment": "HIV counselling",
    }
    booked = api.post_json("/fhir/Appointment", booking)
    assert booked.status_code == 201, booked.text
    booking_path = f"/fhir/Appointment/{booked.json()['id']}"

    for doctor in (group.doctor_tm, group.doctor_tw):
        assert group.call(doctor, "GET", path).status_code == 403
        assert group.call(doctor, "GET", f"{path}/_history/1").status_code == 403
    assert group.call(group.desk_tm, "GET", booking_path).status_code == 403
    assert group.call(group.desk_tw, "GET", booking_path).status_code == 200


# --- registration at a new clinic needs the patient's presence ----------------------------------


def test_registering_a_present_patient_opens_them_to_the_new_clinic(group: Group) -> None:
    patient = group.tw_patient
    wrong = group.call(
        group.desk_tm, "POST", "/fhir/Patient/$register", register_body(patient.hkid, "1982-11-03")
    )
    assert wrong.status_code == 404
    assert group.call(group.desk_tm, "GET", f"/fhir/Patient/{patient.id}").status_code == 403

    registered = group.call(
        group.desk_tm,
        "POST",
        "/fhir/Patient/$register",
        register_body("c 668668 9", patient.birth_date, TM),
    )

    assert registered.status_code == 200, registered.text
    shown = registered.json()
    assert shown["id"] == patient.id
    assert "identifier" not in shown  # the front desk cannot read HKIDs back
    assert group.call(group.desk_tm, "GET", f"/fhir/Patient/{patient.id}").status_code == 200
    assert (
        group.call(group.doctor_tm, "GET", f"/fhir/Observation/{patient.observation}").status_code
        == 403
    )
    visit = group.call(group.desk_tm, "POST", "/fhir/Encounter", encounter(patient.id, TM))
    assert visit.status_code == 201
    assert (
        group.call(group.doctor_tm, "GET", f"/fhir/Observation/{patient.observation}").status_code
        == 200
    )
    outcomes = [e.outcome for e in group.events(Tag.PATIENT_REGISTERED)]
    assert outcomes == [Outcome.FAILED, Outcome.SUCCESS]


def test_a_desk_fishing_for_patients_is_stopped(group: Group) -> None:
    guesses = [f"1982-11-{day:02d}" for day in range(3, 9)]
    statuses = [
        group.call(
            group.desk_tm,
            "POST",
            "/fhir/Patient/$register",
            register_body(group.tw_patient.hkid, born),
        )
        for born in guesses
    ]

    assert [response.status_code for response in statuses] == [404] * 5 + [429]
    assert 0 < int(statuses[-1].headers["retry-after"]) <= REGISTRATION.first_wait_seconds


def test_registration_at_a_clinic_one_does_not_work_at_is_refused(group: Group) -> None:
    patient = group.tm_patient
    response = group.call(
        group.desk_tm,
        "POST",
        "/fhir/Patient/$register",
        register_body(patient.hkid, patient.birth_date, TW),
    )

    assert response.status_code == 403
    assert group.call(group.desk_tw, "GET", f"/fhir/Patient/{patient.id}").status_code == 403


# --- a transaction is all or nothing, reads included ---------------------------------------------


def test_a_transaction_with_a_forbidden_read_writes_nothing(group: Group) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {"resourceType": "Patient", "name": [{"family": "Smuggled"}]},
                "request": {"method": "POST", "url": "Patient"},
            },
            {"request": {"method": "GET", "url": f"Patient/{group.tw_patient.id}"}},
        ],
    }

    response = group.call(group.desk_tm, "POST", "/fhir", bundle)

    assert response.status_code == 403
    found = group.call(group.desk_tm, "GET", "/fhir/Patient?family=Smuggled").json()
    assert found["total"] == 0
    desk = f"staff:{group.desk_tm.account.username}"
    created = [e for e in group.events(Tag.FHIR_CREATE) if e.principal == desk]
    assert [e.outcome for e in created] == [Outcome.DENIED]


def test_a_transactions_reads_see_its_writes(group: Group) -> None:
    patient = group.tm_patient.id
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:0f7a3c52-7a56-4f2f-9d1e-2c1c3b1f0a11",
                "resource": encounter(patient, TM),
                "request": {"method": "POST", "url": "Encounter"},
            },
            {"request": {"method": "GET", "url": f"Encounter?patient={patient}"}},
        ],
    }

    response = group.call(group.desk_tm, "POST", "/fhir", bundle)

    assert response.status_code == 200, response.text
    _, searched = response.json()["entry"]
    assert searched["resource"]["total"] == 2  # the visit of yesterday and this one


# --- a deleted record is still someone's -------------------------------------------------------


def _delete_patient_and_records(group: Group, api: FhirTestClient) -> str:
    """The other clinic deletes a patient (a duplicate merged away, say): records first."""
    patient = group.tw_patient.id
    for kind in ("Observation", "Encounter"):
        found = api.get(f"/fhir/{kind}?patient={patient}").json()
        for entry in found.get("entry", []):
            deleted = api.delete(f"/fhir/{kind}/{entry['resource']['id']}")
            assert deleted.status_code == 204, deleted.text
    assert api.delete(f"/fhir/Patient/{patient}").status_code == 204
    return patient


def test_a_deleted_patient_cannot_be_brought_back_at_another_clinic(
    group: Group, api: FhirTestClient
) -> None:
    """Hole: a PUT on a deleted record was judged as a create (no stored record), yet the
    Patient it wrote kept the deleted patient's pseudonym. A front desk of another clinic
    put the id (seen in a Patient.link, a referral) back at their own clinic; the record
    came back with the old patient's identity in the vault, a visit there opened care to
    it, and the clinic's physician read the old clinic's deleted clinical history."""
    patient = _delete_patient_and_records(group, api)
    back = {
        "resourceType": "Patient",
        "id": patient,
        "name": [{"family": "Lee"}],
        "managingOrganization": {"reference": f"Organization/{TM}"},
    }

    response = group.call(group.desk_tm, "PUT", f"/fhir/Patient/{patient}", back)

    assert response.status_code == 403, response.text
    group.call(group.doctor_tm, "POST", "/fhir/Encounter", encounter(patient, TM, "dr-tm"))
    # A deletion is told only to who may read the record: to this clinic, unknown, by
    # its old versions as by a read (a 403 there told that the id had been a record).
    old = f"/fhir/Observation/{group.tw_patient.observation}/_history/1"
    assert group.call(group.doctor_tm, "GET", old).status_code == 404
    assert group.call(group.doctor_tm, "GET", f"/fhir/Patient/{patient}").status_code == 404
    first = group.call(group.doctor_tm, "GET", f"/fhir/Patient/{patient}/_history/1")
    assert first.status_code == 404  # not the HKID, name and phone of the deleted patient
    # The clinic that deleted the patient may still bring them back where they were.
    again = {**back, "managingOrganization": {"reference": f"Organization/{TW}"}}
    restored = group.call(group.desk_tw, "PUT", f"/fhir/Patient/{patient}", again)
    assert restored.status_code == 201, restored.text


def test_a_deleted_record_cannot_come_back_as_another_patients(
    group: Group, api: FhirTestClient
) -> None:
    """A deleted observation brought back under another patient by id: refused as any
    update that moves a record to another patient is."""
    observation_id = group.tw_patient.observation
    assert api.delete(f"/fhir/Observation/{observation_id}").status_code == 204
    moved = {**observation(group.tm_patient.id), "id": observation_id}

    response = group.call(group.doctor_tm, "PUT", f"/fhir/Observation/{observation_id}", moved)

    assert response.status_code == 403, response.text
    still = group.call(group.doctor_tm, "GET", f"/fhir/Observation/{observation_id}")
    assert still.status_code == 404  # the other clinic's deletion is not told
