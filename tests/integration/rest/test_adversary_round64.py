"""Adversary round 64, reading more through writes: Tuen Mun's front desk and doctor
(ordinary logins of one clinic) write to read Tsuen Wan's patients' records, or to learn
of them: moves of a record to their clinic, break-the-glass writes, care teams and
referrals, conditional writes on another clinic's patient, bookings naming two patients,
types the server does not keep. Each attack is sent as they sent it, on SQLite and
PostgreSQL.

Found: a clinician whose right to change another clinic's record is theirs alone (Tsuen
Wan's doctor referred its patient to Tuen Mun's doctor; or a break-the-glass grant)
moved the record to their own clinic: Tuen Mun's doctor named his clinic as the
provider of the patient's Tsuen Wan visit (or the clinic of their Tsuen Wan booking), by
``PUT``, JSON Patch or a transaction's entry, and Tuen Mun's front desk read it (403,
then 200), for good, beyond the referral's care window. The visit's care went with it:
Tsuen Wan's own doctor, whose only care of the patient was that visit, no longer read the
patient's chart (200, then 403). Now a member of staff moves a patient's record only to
a clinic it belonged to already, or from a clinic of their own (``domain.policy.may_move``,
``Gate._refuse_moved_from_afar``).

Found too: Tuen Mun's desk, refused a read of Tsuen Wan's visit (403, no clinic named),
sent it back naming an outside hospital as provider and Tuen Mun's doctor, and was told
"Practitioner/dr-tm ... does not work at clinic-tw": the practitioners a visit names were
judged against the clinic it would stay at before the write was judged on the stored
record. Now they are judged after it.

The other attacks of the round hold, and are kept here as guards (named ``guard``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from tests.integration.access.group import (
    TM,
    TODAY,
    TW,
    Group,
    booked_today,
    build_group,
    created,
    encounter,
    referral,
    registered_patient,
)
from tests.support.client import FhirTestClient
from tests.support.staff import Staff, make_staff

pytestmark = pytest.mark.postgres

JSON_PATCH = {"content-type": "application/json-patch+json"}
GLASS = {
    "resourceType": "Parameters",
    "parameter": [
        {"name": "reason", "valueString": "emergency-treatment"},
        {"name": "text", "valueString": "collapsed in the waiting room"},
    ],
}


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _ref(kind: str, ident: str) -> dict[str, str]:
    return {"reference": f"{kind}/{ident}"}


def _refused(response: Any, status: int = 403) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["resourceType"] == "OperationOutcome"
    return body


def _words(response: Any) -> str:
    return str(_refused(response)["issue"][0]["diagnostics"])


def _tw_visit(api: FhirTestClient, group: Group) -> str:
    """The id of Tsuen Wan's patient's one visit (at Tsuen Wan, written by the system:
    the care Tsuen Wan's clinicians have of them)."""
    found = api.get(f"/fhir/Encounter?patient={group.tw_patient.id}").json()
    assert found["total"] == 1, found
    return str(found["entry"][0]["resource"]["id"])


def _referred(group: Group) -> None:
    """Tsuen Wan's doctor refers their patient to Tuen Mun's doctor, who then reads the
    chart (a care relationship of his own, for one care window; not his clinic's)."""
    sent = referral(group.tw_patient.id, "Practitioner/dr-tm")
    assert group.call(group.doctor_tw, "POST", "/fhir/ServiceRequest", sent).status_code == 201
    chart = f"/fhir/Observation/{group.tw_patient.observation}"
    assert group.call(group.doctor_tm, "GET", chart).status_code == 200


def _moved_to_tm(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` (a visit or a booking, as read) naming Tuen Mun as its clinic."""
    moved = {key: value for key, value in body.items() if key != "meta"}
    if moved["resourceType"] == "Encounter":
        moved["serviceProvider"] = _ref("Organization", TM)
    else:
        moved["participant"] = [
            each
            for each in moved["participant"]
            if not each["actor"]["reference"].startswith("Organization/")
        ] + [{"actor": _ref("Organization", TM), "status": "accepted"}]
    return moved


def _send(group: Group, who: Staff, how: str, path: str, body: dict[str, Any]) -> Any:
    """``body`` written to ``path`` by ``who``, ``how``: alone, as JSON Patch of the
    element that names the clinic, or as a transaction's entry."""
    if how == "PATCH":
        element = "serviceProvider" if body["resourceType"] == "Encounter" else "participant"
        patch = [{"op": "replace", "path": f"/{element}", "value": body[element]}]
        return group.web.patch(
            path, content=json.dumps(patch).encode(), headers={**who.headers, **JSON_PATCH}
        )
    if how == "transaction":
        entry = {"resource": body, "request": {"method": "PUT", "url": path.removeprefix("/fhir/")}}
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [entry]}
        return group.call(who, "POST", "/fhir", bundle)
    return group.call(who, "PUT", path, body)


# --- found: a record moved to one's clinic by a right that is one's own ------------------------


@pytest.mark.parametrize("how", ["PUT", "PATCH", "transaction"])
@pytest.mark.parametrize("kind", ["Encounter", "Appointment"])
def test_a_referred_doctor_does_not_move_the_patients_record_into_his_clinics_view(
    group: Group, api: FhirTestClient, kind: str, how: str
) -> None:
    """Tuen Mun's doctor, referred Tsuen Wan's patient, names his clinic on the
    patient's Tsuen Wan visit (its ``serviceProvider``) or booking (its Organization
    participant). Measured before: 200, Tuen Mun's desk read the record (was 403), and
    for the visit Tsuen Wan's doctor no longer read the patient's chart (its care had
    gone to Tuen Mun with it). Now 403 and nothing written: he may change the record,
    not open it to his clinic."""
    tw = group.tw_patient
    record = _tw_visit(api, group) if kind == "Encounter" else created(api, booked_today(tw.id, TW))
    path = f"/fhir/{kind}/{record}"
    assert group.call(group.desk_tm, "GET", path).status_code == 403
    _referred(group)
    shown = group.call(group.doctor_tm, "GET", path)
    assert shown.status_code == 200, shown.text

    answer = _send(group, group.doctor_tm, how, path, _moved_to_tm(shown.json()))
    assert "clinic where you do not work" in _words(answer)

    assert group.call(group.desk_tm, "GET", path).status_code == 403
    assert api.get(path).json()["meta"]["versionId"] == "1"
    chart = f"/fhir/Observation/{tw.observation}"
    assert group.call(group.doctor_tw, "GET", chart).status_code == 200
    # His right to change it stands: the same record kept at Tsuen Wan is written.
    kept = {key: value for key, value in shown.json().items() if key != "meta"}
    kept["status"] = "cancelled" if kind == "Appointment" else "finished"
    assert group.call(group.doctor_tm, "PUT", path, kept).status_code == 200
    assert group.call(group.desk_tm, "GET", path).status_code == 403


def test_guard_a_desk_that_may_not_change_the_record_is_refused_as_before(
    group: Group, api: FhirTestClient
) -> None:
    """The new refusal is told only to who may change the stored record (and so read
    it): Tuen Mun's desk sending the same move of Tsuen Wan's visit is refused in the
    words it got before, which a read of the record already tells (403)."""
    path = f"/fhir/Encounter/{_tw_visit(api, group)}"
    body = _moved_to_tm(api.get(path).json())
    words = _words(group.call(group.desk_tm, "PUT", path, body))
    assert "not at any of your clinics" in words and "do not work" not in words


def test_a_doctor_under_a_grant_does_not_move_the_patients_record_to_his_clinic(
    group: Group,
) -> None:
    """Tuen Mun's doctor breaks the glass for Tsuen Wan's patient (which opens their
    health record to treat) and puts the patient's observation in a visit he wrote at
    his clinic. Measured before: 200, the observation placed at Tuen Mun (no one there
    read it without care, so nothing leaked then); now refused by the same rule: a grant
    is his, for a while, not his clinic's."""
    tw = group.tw_patient
    granted = group.call(group.doctor_tm, "POST", f"/fhir/Patient/{tw.id}/$break-glass", GLASS)
    assert granted.status_code == 200, granted.text
    visit = group.call(group.doctor_tm, "POST", "/fhir/Encounter", encounter(tw.id, TM, "dr-tm"))
    assert visit.status_code == 201, visit.text
    path = f"/fhir/Observation/{tw.observation}"
    body = {k: v for k, v in group.call(group.doctor_tm, "GET", path).json().items() if k != "meta"}
    answer = group.call(
        group.doctor_tm, "PUT", path, {**body, "encounter": _ref("Encounter", visit.json()["id"])}
    )
    assert "clinic where you do not work" in _words(answer)
    # Treating under the grant is unchanged: the same observation, corrected, is written.
    assert (
        group.call(group.doctor_tm, "PUT", path, {**body, "status": "amended"}).status_code == 200
    )


def test_guard_moves_that_open_a_record_to_no_one_new_are_made_as_before(
    group: Group, api: FhirTestClient, services: Services
) -> None:
    """What must keep working: a desk of both clinics moves its booking of Tuen Mun's
    patient from Tuen Mun to Tsuen Wan (it belonged to a clinic of theirs); Tuen Mun's
    desk moves Tsuen Wan's booking of a patient registered at both to Tuen Mun (where
    the patient is registered: open there already); the referred doctor writes a visit
    of his own at his clinic (201, placed there, as any create)."""
    both = make_staff(services, Role.FRONT_DESK, [TM, TW])
    mine = group.call(both, "POST", "/fhir/Appointment", booked_today(group.tm_patient.id, TM))
    assert mine.status_code == 201, mine.text
    path = f"/fhir/Appointment/{mine.json()['id']}"
    moved = _moved_to_tm(mine.json())
    moved["participant"][-1] = {"actor": _ref("Organization", TW), "status": "accepted"}
    assert group.call(both, "PUT", path, moved).status_code == 200
    assert group.call(group.desk_tw, "GET", path).status_code == 200

    shared = registered_patient(api, TW, "Yip")
    booking = created(api, booked_today(shared, TW))
    created(api, encounter(shared, TM))  # the system registers them at Tuen Mun too
    path = f"/fhir/Appointment/{booking}"
    shown = group.call(group.desk_tm, "GET", path)
    assert shown.status_code == 200, shown.text
    assert group.call(group.desk_tm, "PUT", path, _moved_to_tm(shown.json())).status_code == 200

    _referred(group)
    own = encounter(group.tw_patient.id, TM, "dr-tm")
    assert group.call(group.doctor_tm, "POST", "/fhir/Encounter", own).status_code == 201


OUTSIDE = "hosp-qeh"


@pytest.mark.parametrize("whose", ["their-patient", "our-patient"])
def test_a_desk_is_not_told_the_clinic_of_a_visit_it_may_not_read(
    group: Group, api: FhirTestClient, whose: str
) -> None:
    """Tuen Mun's desk, refused a read of a visit (403, no clinic named), sends it back
    naming an outside hospital as provider (so the update would keep the visit where it
    is) and a doctor: Tuen Mun's, then Tsuen Wan's. Measured before: "names
    Practitioner/dr-tm, who does not work at clinic-tw" for Tuen Mun's doctor, the plain
    refusal for Tsuen Wan's: the clinic of a record it may not read, named; and by
    naming each clinic's doctor in turn, which clinic it is (the practitioners were
    judged against it before the write was judged on the stored record). Now the words
    a read's refusal has, whoever is named, and naming no clinic."""
    hospital = {"resourceType": "Organization", "id": OUTSIDE, "name": "QEH"}
    assert api.put_json(f"/fhir/Organization/{OUTSIDE}", hospital).status_code == 201
    visit = _tw_visit(api, group)
    path = f"/fhir/Encounter/{visit}"
    patient = group.tw_patient.id if whose == "their-patient" else group.tm_patient.id
    answers = []
    for doctor in ("dr-tm", "dr-tw", None):
        body = {**encounter(patient, OUTSIDE, doctor), "id": visit}
        answers.append(_words(group.call(group.desk_tm, "PUT", path, body)))
    assert answers == [answers[0]] * 3, answers
    assert TW not in answers[0] and "does not work" not in answers[0]
    assert api.get(path).json()["meta"]["versionId"] == "1"


def test_guard_who_may_change_a_record_is_still_told_whom_it_may_not_name(
    group: Group, api: FhirTestClient
) -> None:
    """Guard: the refusal of a visit naming another clinic's doctor is as before for a
    desk's own new visit, and for the referred doctor sending Tsuen Wan's visit back
    naming himself (he reads it: he is told it is at Tsuen Wan, where he does not work)."""
    own = encounter(group.tm_patient.id, TM, "dr-tw")
    words = _words(group.call(group.desk_tm, "POST", "/fhir/Encounter", own))
    assert "Practitioner/dr-tw, who does not work at clinic-tm" in words
    visit = _tw_visit(api, group)
    _referred(group)
    path = f"/fhir/Encounter/{visit}"
    body = {k: v for k, v in group.call(group.doctor_tm, "GET", path).json().items() if k != "meta"}
    body["participant"] = [{"individual": _ref("Practitioner", "dr-tm")}]
    words = _words(group.call(group.doctor_tm, "PUT", path, body))
    assert "Practitioner/dr-tm, who does not work at clinic-tw" in words


# --- held: kept as guards -------------------------------------------------------------------------


def test_guard_writes_under_a_grant_open_nothing_to_anyone_else(
    group: Group, services: Services
) -> None:
    """Guard: under a grant for Tsuen Wan's patient, Tuen Mun's doctor refers the
    patient to a colleague (201: a referral is health data, which the grant opens to
    treat) and names the colleague on a care team (403: a grant does not open a visit's
    records to change), and puts himself as the patient's doctor (403): the colleague
    reads nothing, the desk nothing."""
    tw = group.tw_patient
    colleague = make_staff(services, Role.PHYSICIAN, [TM], "dr-other")
    granted = group.call(group.doctor_tm, "POST", f"/fhir/Patient/{tw.id}/$break-glass", GLASS)
    assert granted.status_code == 200, granted.text
    sent = referral(tw.id, "Practitioner/dr-other")
    assert group.call(group.doctor_tm, "POST", "/fhir/ServiceRequest", sent).status_code == 201
    team = {
        "resourceType": "CareTeam",
        "status": "active",
        "subject": _ref("Patient", tw.id),
        "participant": [{"member": _ref("Practitioner", "dr-other")}],
    }
    _refused(group.call(group.doctor_tm, "POST", "/fhir/CareTeam", team))
    patient = group.call(group.doctor_tm, "GET", f"/fhir/Patient/{tw.id}").json()
    patient["generalPractitioner"] = [_ref("Practitioner", "dr-tm")]
    _refused(group.call(group.doctor_tm, "PUT", f"/fhir/Patient/{tw.id}", patient))
    for who in (colleague, group.desk_tm):
        for path in (f"/fhir/Patient/{tw.id}", f"/fhir/Observation/{tw.observation}"):
            assert group.call(who, "GET", path).status_code == 403, path


def test_guard_conditional_writes_on_another_clinics_patient_tell_nothing_of_their_bookings(
    group: Group, api: FhirTestClient
) -> None:
    """Guard: Tuen Mun's desk books, at its clinic, two of Tsuen Wan's patients (one
    with a Tsuen Wan booking it may not see, one with none), then counts, conditionally
    updates and conditionally deletes ``Appointment?patient=[id]``: each pair answered
    alike (count 1, its own booking updated, then deleted); the hidden booking never
    makes a 412, and is untouched."""
    busy = group.tw_patient.id
    quiet = registered_patient(api, TW, "Ho")
    hidden = created(api, booked_today(busy, TW))
    answers: dict[str, list[Any]] = {busy: [], quiet: []}
    for patient in (busy, quiet):
        planted = group.call(group.desk_tm, "POST", "/fhir/Appointment", booked_today(patient, TM))
        assert planted.status_code == 201, planted.text
        query = f"/fhir/Appointment?patient={patient}"
        count = group.call(group.desk_tm, "GET", f"{query}&_summary=count")
        update = group.call(group.desk_tm, "PUT", query, booked_today(patient, TM))
        delete = group.call(group.desk_tm, "DELETE", query)
        gone = group.call(group.desk_tm, "GET", f"/fhir/Appointment/{planted.json()['id']}")
        answers[patient] = [
            (count.status_code, count.json()["total"]),
            (update.status_code, update.json()["id"] == planted.json()["id"]),
            delete.status_code,
            gone.status_code,
        ]
    assert answers[busy] == answers[quiet] == [(200, 1), (200, True), 204, 410]
    assert api.get(f"/fhir/Appointment/{hidden}").json()["meta"]["versionId"] == "1"


def test_guard_a_booking_naming_two_patients_opens_neither_to_the_writer(group: Group) -> None:
    """Guard: Tuen Mun's desk books its patient with Tsuen Wan's as a second
    participant, and its doctor books Tsuen Wan's patient first with his own and
    himself: each is the first patient's record (201), the include of its patients
    gives the desk its own patient only, Tsuen Wan's doctor finds the doctor's booking
    (their patient's record) and not the desk's, and Tuen Mun's doctor still reads
    nothing of Tsuen Wan's patient."""
    tw, tm = group.tw_patient, group.tm_patient
    second = {"actor": _ref("Patient", tw.id), "status": "accepted"}
    desk_booking = booked_today(tm.id, TM)
    desk_booking["participant"].append(second)
    made = group.call(group.desk_tm, "POST", "/fhir/Appointment", desk_booking)
    assert made.status_code == 201, made.text
    included = group.call(
        group.desk_tm,
        "GET",
        f"/fhir/Appointment?_id={made.json()['id']}&_include=Appointment:patient",
    )
    assert included.status_code == 200, included.text
    patients = [
        entry["resource"]["id"]
        for entry in included.json()["entry"]
        if entry["resource"]["resourceType"] == "Patient"
    ]
    assert patients == [tm.id]
    doctors_booking = booked_today(tw.id, TM, "dr-tm")
    doctors_booking["participant"].append({"actor": _ref("Patient", tm.id), "status": "accepted"})
    made = group.call(group.doctor_tm, "POST", "/fhir/Appointment", doctors_booking)
    assert made.status_code == 201, made.text
    theirs = group.call(group.doctor_tw, "GET", f"/fhir/Appointment?patient={tw.id}").json()
    assert [entry["resource"]["id"] for entry in theirs["entry"]] == [made.json()["id"]]
    assert group.call(group.doctor_tm, "GET", f"/fhir/Patient/{tw.id}").status_code == 403
    chart = f"/fhir/Observation/{tw.observation}"
    assert group.call(group.doctor_tm, "GET", chart).status_code == 403
    assert group.call(group.desk_tm, "GET", f"/fhir/Patient/{tw.id}/$everything").status_code == 403


@pytest.mark.parametrize("kind", ["Provenance", "Binary", "Consent", "Linkage", "List"])
def test_guard_types_not_kept_here_take_nothing(group: Group, kind: str) -> None:
    """Guard: a Provenance naming Tsuen Wan's record as its target, a Binary whose
    security context is Tsuen Wan's patient, a Consent, a Linkage of the two patients and
    a List of Tsuen Wan's observation, by Tuen Mun's doctor: none is a type kept here
    (404 ``not-supported``), so none is stored or read back, and nothing opens."""
    tw = group.tw_patient
    body: dict[str, Any] = {
        "resourceType": kind,
        "target": [_ref("Observation", tw.observation)],
        "securityContext": _ref("Patient", tw.id),
        "patient": _ref("Patient", tw.id),
        "item": [
            {"type": "source", "resource": _ref("Patient", tw.id)},
            {"type": "alternate", "resource": _ref("Patient", group.tm_patient.id)},
        ],
        "entry": [{"item": _ref("Observation", tw.observation)}],
        "recorded": f"{TODAY.isoformat()}T09:00:00+08:00",
    }
    answer = group.call(group.doctor_tm, "POST", f"/fhir/{kind}", body)
    assert _refused(answer, 404)["issue"][0]["code"] == "not-supported"
    chart = f"/fhir/Observation/{tw.observation}"
    assert group.call(group.doctor_tm, "GET", chart).status_code == 403


# --- closed after the round: deletes from afar --------------------------------------------------


def test_a_referred_doctor_does_not_take_the_patients_care_from_their_own_clinic(
    group: Group, api: FhirTestClient
) -> None:
    """Tuen Mun's doctor, referred Tsuen Wan's patient, deleted the patient's one Tsuen
    Wan visit (204: care opened a visit's records to change): Tsuen Wan's own doctor no
    longer read the patient's observation (measured: 200, then 403). Closed after the
    round (stop 52): a clinician's own care opens another clinic's records to read and
    change, not to delete (``domain.policy.may_delete``); the visit stays, and with it
    Tsuen Wan's care. Tsuen Wan's own doctor still deletes it."""
    visit = _tw_visit(api, group)
    chart = f"/fhir/Observation/{group.tw_patient.observation}"
    assert group.call(group.doctor_tw, "GET", chart).status_code == 200
    _referred(group)
    path = f"/fhir/Encounter/{visit}"
    refused = group.call(group.doctor_tm, "DELETE", path)
    assert refused.status_code == 403, refused.text
    assert refused.json()["resourceType"] == "OperationOutcome"
    assert "not delete" in refused.text
    assert group.call(group.doctor_tm, "GET", path).status_code == 200
    assert group.call(group.doctor_tw, "GET", chart).status_code == 200
    assert group.call(group.doctor_tw, "DELETE", path).status_code == 204
