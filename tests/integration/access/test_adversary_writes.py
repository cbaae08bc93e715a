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


def test_a_desk_cannot_fish_for_a_birth_date_through_a_decoy_twin(group: Group) -> None:
    """The desk registers a decoy patient of its own with the other clinic's patient's
    HKID, then moves the decoy's birth date from guess to guess and asks ``$register``
    each time: a wrong guess matched only the decoy ("already registered", 200, not
    counted), the right one both patients (409). Misses cost nothing, so the fishing
    throttle never stopped it; knowing the birth date, the desk drops the decoy and
    registers the patient for real. A registration that registers no one now counts as
    a failed attempt, as a registration that matched no one does."""
    patient = group.tw_patient
    decoy: dict[str, Any] = {
        "resourceType": "Patient",
        "name": [{"family": "Decoy"}],
        "identifier": [{"system": HKID_SYSTEM, "value": patient.hkid}],
        "birthDate": "1982-11-03",
        "managingOrganization": {"reference": f"Organization/{TM}"},
    }
    created = group.call(group.desk_tm, "POST", "/fhir/Patient", decoy)
    assert created.status_code == 201, created.text
    decoy_id = created.json()["id"]
    statuses = []
    for born in [f"1982-11-{day:02d}" for day in range(3, 9)] + [patient.birth_date]:
        moved = {**decoy, "id": decoy_id, "birthDate": born}
        assert group.call(group.desk_tm, "PUT", f"/fhir/Patient/{decoy_id}", moved).is_success
        asked = group.call(
            group.desk_tm, "POST", "/fhir/Patient/$register", register_body(patient.hkid, born)
        )
        statuses.append(asked.status_code)

    assert statuses == [200] * 5 + [429, 429]
    assert group.call(group.desk_tm, "DELETE", f"/fhir/Patient/{decoy_id}").is_success
    again = group.call(
        group.desk_tm,
        "POST",
        "/fhir/Patient/$register",
        register_body(patient.hkid, patient.birth_date),
    )
    assert again.status_code == 429
    assert group.call(group.desk_tm, "GET", f"/fhir/Patient/{patient.id}").status_code == 403


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
