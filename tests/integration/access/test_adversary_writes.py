"""Holes an insider with an ordinary login found through writes (adversary pass of
December 2026), each sent as they sent it and what now answers. On SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

from carevault.bootstrap import build_services
from carevault.detect import alerts_as_dicts
from carevault.web.app import create_app
from tests.integration.access.group import (
    HKID_SYSTEM,
    TM,
    TW,
    Group,
    encounter,
    referral,
    register_body,
)
from tests.support.client import FhirTestClient


def _twin(hkid: str, **more: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "name": [{"family": "Decoy"}],
        "identifier": [{"system": HKID_SYSTEM, "value": hkid}],
        "birthDate": "1982-11-03",
        "managingOrganization": {"reference": f"Organization/{TM}"},
        **more,
    }


def test_a_desk_cannot_make_a_twin_of_another_clinics_patient(group: Group) -> None:
    """The desk made a decoy patient of its own with the other clinic's patient's HKID,
    then moved the decoy's birth date from guess to guess and asked ``$register`` each
    time: a wrong guess matched only the decoy ("already registered", 200, free), the
    right one both patients (409). The twin alone did harm too: every ``$register`` of
    the real patient, at any clinic, answered 409 until an officer merged them. A write
    that gives a Patient an HKID another clinic's record holds is now refused (409, as a
    conditional create that matched it), by POST, by PUT and by adding it to one of the
    desk's own patients, and counted as a failed registration."""
    patient, own = group.tw_patient, group.tm_patient
    posted = group.call(group.desk_tm, "POST", "/fhir/Patient", _twin(patient.hkid))
    put = group.call(group.desk_tm, "PUT", "/fhir/Patient/twin-1", _twin(patient.hkid, id="twin-1"))
    shown = group.call(group.desk_tm, "GET", f"/fhir/Patient/{own.id}").json()
    added = {**shown, "identifier": [{"system": HKID_SYSTEM, "value": patient.hkid}]}
    moved = group.call(group.desk_tm, "PUT", f"/fhir/Patient/{own.id}", added)
    then = group.call(
        group.desk_tm,
        "POST",
        "/fhir/Patient/$register",
        register_body(patient.hkid, patient.birth_date),
    )

    assert [posted.status_code, put.status_code, moved.status_code] == [409] * 3, posted.text
    assert group.call(group.desk_tm, "GET", "/fhir/Patient/twin-1").status_code == 404
    searched = group.call(group.doctor_tw, "GET", f"/fhir/Patient?identifier={patient.hkid}")
    assert searched.json().get("total") == 1
    assert then.status_code == 200  # no twin: the patient who attends registers at once


def test_the_twins_refusals_count_against_the_registration_throttle(group: Group) -> None:
    statuses = [
        group.call(group.desk_tm, "POST", "/fhir/Patient", _twin(group.tw_patient.hkid))
        for _ in range(6)
    ]

    assert [answer.status_code for answer in statuses] == [409] * 5 + [429]
    assert int(statuses[-1].headers["retry-after"]) > 0


def test_a_new_patient_or_the_desks_own_patient_with_their_own_hkid_is_written(
    group: Group,
) -> None:
    """What the rule leaves alone: a patient new to the group, and a clinic's own
    patient saved again with the HKID it holds already (by whoever may send it)."""
    new = {**_twin("G123456(A)"), "name": [{"family": "Ng"}]}
    created = group.call(group.desk_tm, "POST", "/fhir/Patient", new)
    own = group.tm_patient
    shown = group.call(group.doctor_tm, "GET", f"/fhir/Patient/{own.id}").json()
    saved = group.call(
        group.doctor_tm,
        "PUT",
        f"/fhir/Patient/{own.id}",
        {**shown, "identifier": [{"system": HKID_SYSTEM, "value": own.hkid}]},
    )

    assert created.status_code == 201, created.text
    assert saved.status_code == 200, saved.text


def test_registering_a_patient_the_clinic_holds_already_is_a_miss(group: Group) -> None:
    """A registration that registers no one (the patient is the clinic's already)
    counts as one that matched no one: what kept the decoy-twin fishing slow."""
    own = group.tm_patient
    statuses = [
        group.call(
            group.desk_tm,
            "POST",
            "/fhir/Patient/$register",
            register_body(own.hkid, own.birth_date),
        ).status_code
        for _ in range(6)
    ]

    assert statuses == [200] * 5 + [429]


def _care_now(group: Group, token: str, record: tuple[str, str]) -> bool:
    """Whether the holder of ``token`` has a care relationship with the patient of
    ``record`` now (not a break-the-glass grant: that is another field of the target)."""
    gate = group.services.gate
    assert gate.access is not None
    actor = gate.access.authenticate(token).actor
    head = gate.vault.locate(*record).head
    return gate.access.target(actor, head, gate.access.now_us()).care_relationship


def test_breaking_the_glass_is_not_turned_into_a_lasting_registration(group: Group) -> None:
    """A doctor broke the glass for another clinic's patient (an hour, reviewed), read
    the HKID and birth date the grant showed, registered the patient at his own clinic
    with them as if the patient stood at the desk, and recorded a visit there: the whole
    clinic then had the record, for good, after the grant ran out. What a grant shows is
    no proof of presence: the patient is registered by a colleague who sees them."""
    patient = group.tw_patient
    doctor = group.doctor_tm
    glass = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "reason", "valueString": "emergency-treatment"},
            {"name": "text", "valueString": "collapsed in the waiting room"},
        ],
    }
    granted = group.call(doctor, "POST", f"/fhir/Patient/{patient.id}/$break-glass", glass)
    assert granted.status_code == 200, granted.text
    shown = group.call(doctor, "GET", f"/fhir/Patient/{patient.id}").json()
    hkid, born = shown["identifier"][0]["value"], shown["birthDate"]

    registered = group.call(doctor, "POST", "/fhir/Patient/$register", register_body(hkid, born))
    visit = group.call(doctor, "POST", "/fhir/Encounter", encounter(patient.id, TM, "dr-tm"))

    assert registered.status_code == 403, registered.text
    assert "glass" in registered.json()["issue"][0]["diagnostics"]
    assert visit.status_code == 201, visit.text
    assert not _care_now(group, doctor.token, ("Observation", patient.observation))
    assert group.call(group.desk_tm, "GET", f"/fhir/Patient/{patient.id}").status_code == 403
    # The clinic's desk, who sees the patient present, still registers them.
    at_desk = group.call(
        group.desk_tm, "POST", "/fhir/Patient/$register", register_body(hkid, born)
    )
    assert at_desk.status_code == 200, at_desk.text


def test_a_referral_is_not_turned_into_a_lasting_registration(group: Group) -> None:
    """Tuen Mun's doctor referred his patient to Tsuen Wan's doctor: one care window,
    for that doctor alone (domain/care.py, rule 2). The doctor referred to read the HKID
    and birth date, registered the patient at Tsuen Wan with them and recorded a visit
    there: every clinician and the desk of Tsuen Wan then had the record, for good. What
    the record showed is no proof of presence; Tsuen Wan's desk registers the patient
    when they attend."""
    patient = group.tm_patient
    sent = group.call(
        group.doctor_tm, "POST", "/fhir/ServiceRequest", referral(patient.id, "Practitioner/dr-tw")
    )
    assert sent.status_code == 201, sent.text
    shown = group.call(group.doctor_tw, "GET", f"/fhir/Patient/{patient.id}").json()
    hkid, born = shown["identifier"][0]["value"], shown["birthDate"]

    registered = group.call(
        group.doctor_tw, "POST", "/fhir/Patient/$register", register_body(hkid, born)
    )
    visit = group.call(
        group.doctor_tw, "POST", "/fhir/Encounter", encounter(patient.id, TW, "dr-tw")
    )

    assert registered.status_code == 403, registered.text
    assert visit.status_code == 201, visit.text
    assert group.call(group.desk_tw, "GET", f"/fhir/Patient/{patient.id}").status_code == 403
    at_desk = group.call(
        group.desk_tw, "POST", "/fhir/Patient/$register", register_body(hkid, born)
    )
    assert at_desk.status_code == 200, at_desk.text


def _fish_through_two_servers(group: Group, guesses: int) -> list[int]:
    """The desk guesses the other clinic's patient's birth date with ``$register``, its
    requests shared between two server processes (two services on one database, as a
    deployment with two workers runs): the statuses."""
    patient = group.tw_patient
    second = build_services(group.services.settings)
    try:
        with FhirTestClient(create_app(second.settings, second)) as other:
            return [
                (group.web if n % 2 else other)
                .post_json(
                    "/fhir/Patient/$register",
                    register_body(patient.hkid, f"1982-11-{n + 3:02d}"),
                    **group.desk_tm.headers,
                )
                .status_code
                for n in range(guesses)
            ]
    finally:
        second.close()


def test_the_fishing_throttle_holds_across_server_processes(group: Group) -> None:
    """Two server processes give the desk five guesses between them, not five each:
    the throttle's count is in the database."""
    statuses = _fish_through_two_servers(group, 12)

    assert statuses == [404] * 5 + [429] * 7, statuses


def test_fishing_with_registrations_raises_an_alert(group: Group) -> None:
    """Every attempt is in the ledger, the throttled ones too: ``registration-fishing``
    counts them from every process (its response pauses the desk's sessions for a fresh
    code)."""
    statuses = _fish_through_two_servers(group, 12)
    assert 429 in statuses

    mine = [
        alert
        for alert in alerts_as_dicts(group.services)
        if alert["account"] == group.desk_tm.account.username
    ]
    assert [alert["detector"] for alert in mine] == ["registration-fishing"]
    assert mine[0]["severity"] == "medium"


def test_a_twin_with_the_hkid_sent_bare_or_under_another_system_is_refused(group: Group) -> None:
    """The HKID without its system, or under a local OID: the desks' lookup by number
    alone (``identifier=<hkid>``) would find the twin as well."""
    hkid = group.tw_patient.hkid
    bare = _twin(hkid, identifier=[{"value": hkid}])
    local = _twin(hkid, identifier=[{"system": "urn:oid:1.2.3.4", "value": hkid.lower()}])

    answers = [group.call(group.desk_tm, "POST", "/fhir/Patient", body) for body in (bare, local)]

    assert [answer.status_code for answer in answers] == [409, 409], answers[0].text


def test_a_twin_of_a_patient_at_a_locked_clinic_is_refused_and_counted(group: Group) -> None:
    """While containment locks the other clinic, its patients are ones the desk may not
    read: a twin is refused (409) and counted, not answered 503 uncounted (an oracle
    the throttle would never slow)."""
    body = {
        "mode": "clinic-lock",
        "target": TW,
        "reason": "incident 42",
        "totp": group.officer.totp(),
    }
    locked = group.web.post("/admin/containment", json=body, headers=group.officer.headers)
    assert locked.status_code == 201, locked.text
    statuses = [
        group.call(group.desk_tm, "POST", "/fhir/Patient", _twin(group.tw_patient.hkid))
        for _ in range(6)
    ]

    assert [answer.status_code for answer in statuses] == [409] * 5 + [429]


def test_new_patients_are_written_whatever_is_in_flight_and_after_honest_misses(
    group: Group,
) -> None:
    """Only a refusal counts: four walk-ins new to the group (``$register`` 404, then
    a new record each) leave the desk free to write, and a write that is not refused
    never holds another."""
    fresh = ["G123456(A)", "K123456(0)", "Z683365(A)", "P103322(4)", "R123456(A)", "M123456(6)"]
    answers = []
    for number, hkid in enumerate(fresh):
        if number < 4:
            missed = group.call(
                group.desk_tm, "POST", "/fhir/Patient/$register", register_body(hkid, "1990-01-01")
            )
            assert missed.status_code == 404, missed.text
        new = {**_twin(hkid), "name": [{"family": f"Walk-in {number}"}]}
        answers.append(group.call(group.desk_tm, "POST", "/fhir/Patient", new).status_code)

    assert answers == [201] * len(fresh)
