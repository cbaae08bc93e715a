"""``$register`` of a patient no one has recorded seeing: the first clinic where the
person stands and proves who they are becomes their home, and every other tie ends
(adversary round 79's planted patient; ``gate.registration._register_first_presence``).

Tuen Mun's desk writes a patient under the HKID and birth date of someone who has never
attended the group, and may book them; the person first comes to Tsuen Wan, whose desk
registers that record as told. What Tsuen Wan then records is not Tuen Mun's to read,
as it would not be had Tsuen Wan's desk written a record of its own: Tuen Mun registers
the person when they come (a registration the ledger and the detectors weigh). A record
anyone has seen the person in (a clinician's, billing's, the system's) keeps its ties,
as before (SQLite and PostgreSQL).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import update

from carevault.access.registrations import CACHE_SECONDS
from carevault.bootstrap import Services
from carevault.detect import alerts_as_dicts
from carevault.domain.roles import Role
from carevault.ledger.events import Outcome, Tag
from carevault.vault.tables import resource_version
from tests.integration.access.group import (
    EXTENDED_HEALTHCARE,
    HKID_SYSTEM,
    TM,
    TW,
    Group,
    booked_today,
    build_group,
    coverage,
    encounter,
    observation,
    register_body,
)
from tests.integration.gate.presence import (
    NEW_BORN,
    NEW_HKID,
    booked_at_tuen_mun,
    clinics,
    planted,
    registered_at_tsuen_wan,
    retyped,
    second_number_beside,
    seen_with_a_reason,
    tsuen_wan_records_a_result,
)
from tests.integration.gate.test_sensitive_items import HIV_TYPE
from tests.support.client import FhirTestClient
from tests.support.server import environment, invoke_cli
from tests.support.staff import make_staff

pytestmark = pytest.mark.postgres


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _principal(group: Group) -> str:
    return f"staff:{group.desk_tw.account.username}"


def test_a_record_booked_at_the_clinic_that_wrote_it_does_not_catch_what_the_first_clinic_records(
    group: Group,
) -> None:
    """The insider books the planted patient with its doctor first (care at Tuen Mun
    for the booking's window), then the person comes to Tsuen Wan. The registration ends
    Tuen Mun's tie and the care its booking opened: Tuen Mun's doctor is refused what
    Tsuen Wan records (403), and the booking opens nothing when written again."""
    patient = planted(group)
    first = booked_at_tuen_mun(group, patient)
    assert group.call(group.doctor_tm, "GET", f"/fhir/Patient/{patient}").status_code == 200

    registered_at_tsuen_wan(group)
    result = tsuen_wan_records_a_result(group, patient)

    assert clinics(group, patient) == {TW}
    assert group.call(group.doctor_tm, "GET", f"/fhir/Observation/{result}").status_code == 403
    assert group.call(group.doctor_tm, "GET", f"/fhir/Patient/{patient}").status_code == 403
    booked_at_tuen_mun(group, patient)  # 201: a booking where they are not registered
    moved = {**booked_today(patient, TM, "dr-tm"), "id": first, "comment": "moved"}
    again = group.call(group.desk_tm, "PUT", f"/fhir/Appointment/{first}", moved)
    assert again.status_code == 200, again.text
    assert group.call(group.doctor_tm, "GET", f"/fhir/Observation/{result}").status_code == 403


def test_the_registration_moves_the_home_and_says_so_in_the_ledger(group: Group) -> None:
    """The registering desk reads the patient as its clinic's; the record's new version
    names Tsuen Wan as its home; the ledger holds the registration (why, where from)
    and the Patient's update by the desk that made it, in the same transaction."""
    patient = planted(group)

    answer = registered_at_tsuen_wan(group)

    assert answer.json()["id"] == patient
    assert answer.json()["managingOrganization"] == {"reference": f"Organization/{TW}"}
    assert answer.json()["meta"]["versionId"] == "2"
    [registered] = [
        event
        for event in group.events(Tag.PATIENT_REGISTERED)
        if event.resource_id == patient and event.outcome == Outcome.SUCCESS
    ]
    assert registered.reason.startswith("registered on first proof of presence")
    assert registered.detail["home_from"] == TM
    assert registered.detail["clinic"] == TW
    assert registered.principal == _principal(group)
    [updated] = [
        event
        for event in group.events(Tag.FHIR_UPDATE)
        if event.resource_id == patient and event.principal == _principal(group)
    ]
    assert updated.detail["version"] == 2
    assert updated.patient_pseudonym == registered.patient_pseudonym


def test_the_clinic_that_wrote_the_record_registers_the_person_when_they_come(
    group: Group,
) -> None:
    """The honest case the rule costs something: a patient Tuen Mun's desk wrote (a
    booking by telephone) goes to Tsuen Wan first. When they come to Tuen Mun, its desk
    registers them on the number and birth date they show; Tuen Mun's doctor, with a
    visit, reads what Tsuen Wan recorded, as for any patient registered at two clinics."""
    patient = planted(group)
    registered_at_tsuen_wan(group)
    result = tsuen_wan_records_a_result(group, patient)
    assert group.call(group.desk_tm, "GET", f"/fhir/Patient/{patient}").status_code == 403

    again = group.call(
        group.desk_tm, "POST", "/fhir/Patient/$register", register_body(NEW_HKID, NEW_BORN)
    )

    assert again.status_code == 200, again.text
    assert clinics(group, patient) == {TM, TW}
    assert again.json()["managingOrganization"] == {"reference": f"Organization/{TW}"}
    visit = group.call(group.doctor_tm, "POST", "/fhir/Encounter", encounter(patient, TM, "dr-tm"))
    assert visit.status_code == 201, visit.text
    assert group.call(group.doctor_tm, "GET", f"/fhir/Observation/{result}").status_code == 200


def test_guard_a_patient_seen_at_their_clinic_keeps_it_when_registered_elsewhere(
    group: Group,
) -> None:
    """Tuen Mun's patient, seen there (a visit and an observation, written by the
    system), registers at Tsuen Wan: Tuen Mun stays their home and its doctor still
    reads their result; only the registration is added."""
    patient = group.tm_patient
    answer = group.call(
        group.desk_tw,
        "POST",
        "/fhir/Patient/$register",
        register_body(patient.hkid, patient.birth_date),
    )

    assert answer.status_code == 200, answer.text
    assert answer.json()["managingOrganization"] == {"reference": f"Organization/{TM}"}
    assert clinics(group, patient.id) == {TM, TW}
    read = group.call(group.doctor_tm, "GET", f"/fhir/Observation/{patient.observation}")
    assert read.status_code == 200
    history = group.call(group.doctor_tm, "GET", f"/fhir/Patient/{patient.id}/_history")
    assert history.json()["total"] == 1


def test_guard_a_clinicians_record_keeps_the_ties_of_a_record_a_desk_wrote(
    group: Group,
) -> None:
    """A patient Tuen Mun's desk wrote and its doctor then saw (an observation of his,
    on a booking): registered at Tsuen Wan, they stay Tuen Mun's too."""
    patient = planted(group)
    booked_at_tuen_mun(group, patient)
    seen = group.call(group.doctor_tm, "POST", "/fhir/Observation", observation(patient))
    assert seen.status_code == 201, seen.text

    answer = registered_at_tsuen_wan(group)

    assert answer.json()["managingOrganization"] == {"reference": f"Organization/{TM}"}
    assert clinics(group, patient) == {TM, TW}
    result = tsuen_wan_records_a_result(group, patient)
    assert group.call(group.doctor_tm, "GET", f"/fhir/Observation/{result}").status_code == 200


def test_a_desk_registering_its_own_clinics_patient_again_changes_nothing(group: Group) -> None:
    """Tuen Mun's desk registers the patient it wrote at Tuen Mun: already its clinic's
    (a counted miss, as before); the home does not move and nothing ends."""
    patient = planted(group)

    again = group.call(
        group.desk_tm, "POST", "/fhir/Patient/$register", register_body(NEW_HKID, NEW_BORN)
    )

    assert again.status_code == 200, again.text
    assert clinics(group, patient) == {TM}
    history = group.call(group.doctor_tm, "GET", f"/fhir/Patient/{patient}/_history")
    assert history.json()["total"] == 1


# The review of the rule's first version (6e850414; docs/threat-model.md, "Review of stop
# 62"): each test failed on it, but the two left open (strict xfails).


def test_plant_on_a_seen_patient_of_the_desks_own_is_refused_for_an_officer(
    group: Group,
) -> None:
    """Round 79's reasoned variant, run by the reviewer: Tuen Mun's desk types the
    newcomer's HKID and birth date onto a Tuen Mun patient someone has seen (the
    system's visit and observation). The first version took the record as seen and
    registered it at Tsuen Wan, and Tuen Mun's doctor read the HIV result Tsuen Wan then
    recorded. The care was recorded of whoever the record was before the number was
    typed: Tsuen Wan's registration is refused (409, for the privacy officer), counted as
    a miss; nothing is registered or moved, and a visit Tsuen Wan writes opens nothing."""
    victim_chart = group.tm_patient.id
    retyped(group, victim_chart)

    answer = group.call(
        group.desk_tw, "POST", "/fhir/Patient/$register", register_body(NEW_HKID, NEW_BORN)
    )

    assert answer.status_code == 409, answer.text
    assert "privacy officer" in answer.text
    assert victim_chart not in answer.text and "Chan" not in answer.text
    assert clinics(group, victim_chart) == {TM}
    [refused] = [
        event
        for event in group.events(Tag.PATIENT_REGISTERED)
        if event.principal == f"staff:{group.desk_tw.account.username}"
    ]
    assert refused.outcome != Outcome.SUCCESS
    visit = group.call(
        group.doctor_tw, "POST", "/fhir/Encounter", encounter(victim_chart, TW, "dr-tw")
    )
    assert visit.status_code == 201, visit.text  # a visit where they are not registered
    chart = group.call(group.doctor_tw, "GET", f"/fhir/Observation/{group.tm_patient.observation}")
    assert chart.status_code == 403, chart.text  # ... opens nothing


def test_a_number_typed_after_the_care_and_seen_since_is_registered_as_ever(
    group: Group,
) -> None:
    """The honest case of the rule above: a Tuen Mun patient seen before they had an
    HKID on record (a child, a visitor), given it at a later visit and seen at that visit
    (an observation after the number), registers at Tsuen Wan as any patient does; Tuen
    Mun keeps its home. Before that visit, Tsuen Wan's registration waits for the
    privacy officer (409)."""
    made = group.call(
        group.desk_tm,
        "POST",
        "/fhir/Patient",
        {"resourceType": "Patient", "name": [{"family": "Ho"}], "birthDate": "2015-06-01"},
    )
    assert made.status_code == 201, made.text
    chart = str(made.json()["id"])
    booked_at_tuen_mun(group, chart)
    first = group.call(group.doctor_tm, "POST", "/fhir/Observation", observation(chart))
    assert first.status_code == 201, first.text
    retyped(group, chart)
    waits = group.call(
        group.desk_tw, "POST", "/fhir/Patient/$register", register_body(NEW_HKID, NEW_BORN)
    )
    assert waits.status_code == 409, waits.text
    noted = group.call(group.doctor_tm, "POST", "/fhir/Observation", observation(chart))
    assert noted.status_code == 201, noted.text

    answer = registered_at_tsuen_wan(group)

    assert answer.json()["managingOrganization"] == {"reference": f"Organization/{TM}"}
    assert clinics(group, chart) == {TM, TW}


def test_planter_told_when_the_person_came_registers_them_again_under_an_alert(
    group: Group,
) -> None:
    """The planter learns the person came elsewhere (its read of the record turns 403)
    and registers them again by what it typed, after the first visit: a registration by
    knowledge, which the design lets any desk make (in the ledger; the person's access
    report does not list registrations: left open). It registered no one new to the
    detectors, which counted only misses; now a registration at a clinic that was the
    patient's home until their record moved away raises ``re-registration`` (low: for
    a person to judge), naming the account."""
    patient = planted(group)
    assert group.call(group.desk_tm, "GET", f"/fhir/Patient/{patient}").status_code == 200
    registered_at_tsuen_wan(group)
    assert group.call(group.desk_tm, "GET", f"/fhir/Patient/{patient}").status_code == 403
    tsuen_wan_records_a_result(group, patient)

    again = group.call(
        group.desk_tm, "POST", "/fhir/Patient/$register", register_body(NEW_HKID, NEW_BORN)
    )

    assert again.status_code == 200, again.text
    raised = [a for a in alerts_as_dicts(group.services) if a["detector"] == "re-registration"]
    assert [(a["account"], a["severity"], a["action"]) for a in raised] == [
        (group.desk_tm.account.username, "low", "raise")
    ]


def test_guard_a_first_registration_elsewhere_raises_nothing(group: Group) -> None:
    """The registrations that are no return: Tsuen Wan's (the first presence) and Tuen
    Mun's of Tsuen Wan's seen patient."""
    planted(group)
    registered_at_tsuen_wan(group)
    patient = group.tw_patient
    other = group.call(
        group.desk_tm,
        "POST",
        "/fhir/Patient/$register",
        register_body(patient.hkid, patient.birth_date),
    )
    assert other.status_code == 200, other.text

    raised = [a for a in alerts_as_dicts(group.services) if a["detector"] == "re-registration"]
    assert raised == []


def test_a_doctors_visit_with_a_diagnosis_keeps_the_patients_ties(group: Group) -> None:
    """Tuen Mun's doctor sees the desk's new patient and records the visit with its
    diagnosis (clinical elements of an Encounter), no Observation yet. Tsuen Wan's desk
    registers them: the patient has real care at Tuen Mun and keeps it (the first
    version counted visits by type alone, and the doctor lost his own visit)."""
    patient = planted(group)
    made = seen_with_a_reason(group, patient)

    answer = registered_at_tsuen_wan(group)

    assert answer.json()["managingOrganization"] == {"reference": f"Organization/{TM}"}
    assert clinics(group, patient) == {TM, TW}
    read = group.call(group.doctor_tm, "GET", f"/fhir/Encounter/{made}")
    assert read.status_code == 200, read.text


def test_a_deleted_result_still_says_the_patient_was_seen(group: Group) -> None:
    """A Tuen Mun patient whose only observation was deleted (entered in error) was
    seen all the same: a registration elsewhere leaves their home (the first version
    took them as never seen, for any desk knowing the number and birth date to take)."""
    patient = planted(group)
    booked_at_tuen_mun(group, patient)
    seen = group.call(group.doctor_tm, "POST", "/fhir/Observation", observation(patient))
    assert seen.status_code == 201, seen.text
    gone = group.call(group.doctor_tm, "DELETE", f"/fhir/Observation/{seen.json()['id']}")
    assert gone.status_code == 204, gone.text

    answer = registered_at_tsuen_wan(group)

    assert answer.json()["managingOrganization"] == {"reference": f"Organization/{TM}"}


@pytest.mark.xfail(strict=True, reason="review62 low: open")
def test_register_answer_tells_whether_the_person_was_seen_anywhere(group: Group) -> None:
    """The registering desk's answer differs between a patient with health data (home
    unchanged, version 1) and one without (home = the desk's clinic, version 2): one bit
    about health data anywhere in the group, to a role that reads none."""
    seen = registered_at_tsuen_wan(group, group.tm_patient.hkid, group.tm_patient.birth_date).json()
    planted(group)
    unseen = registered_at_tsuen_wan(group).json()
    assert seen["managingOrganization"] == unseen["managingOrganization"]


def test_the_clinic_that_wrote_the_record_cannot_take_the_home_back_mid_visit(
    group: Group,
) -> None:
    """Tsuen Wan registers the newcomer who stands at its desk; before its doctor records
    anything, Tuen Mun's desk (which knows the proof) registers them too. The first
    version moved the home back to Tuen Mun, and Tsuen Wan's doctor was refused the
    result (403), as often as the planter liked. Tsuen Wan's registration says the
    person stood there: Tuen Mun's is an ordinary one, added beside it; Tsuen Wan keeps
    the home and its doctor records the result."""
    patient = planted(group)
    registered_at_tsuen_wan(group)
    back = group.call(
        group.desk_tm, "POST", "/fhir/Patient/$register", register_body(NEW_HKID, NEW_BORN)
    )
    assert back.status_code == 200, back.text
    assert back.json()["managingOrganization"] == {"reference": f"Organization/{TW}"}
    assert clinics(group, patient) == {TM, TW}
    visit = group.call(group.doctor_tw, "POST", "/fhir/Encounter", encounter(patient, TW, "dr-tw"))
    assert visit.status_code == 201, visit.text
    result = group.call(
        group.doctor_tw, "POST", "/fhir/Observation", observation(patient, "HIV-1 RNA 20000")
    )
    assert result.status_code == 201, result.text


def test_a_desk_saving_its_view_of_a_doctors_visit_does_not_date_the_care_anew(
    group: Group,
) -> None:
    """The doctor records a visit with its reason; the desk then types a newcomer's HKID
    and birth date onto the patient, and saves its view of the visit back (the reason it
    was not shown is kept). The visit's new version carries the doctor's reason on, but
    is no care since the number was typed: the registration elsewhere is refused (409),
    as for the plant on a seen chart."""
    patient = planted(group)
    made = seen_with_a_reason(group, patient)
    retyped(group, patient, "A123457(1)", "1985-05-05")
    visit_path = f"/fhir/Encounter/{made}"
    desk_view = group.call(group.desk_tm, "GET", visit_path).json()
    assert "reasonCode" not in desk_view
    desk_view.pop("meta")
    resaved = group.call(group.desk_tm, "PUT", visit_path, desk_view)
    assert resaved.status_code == 200, resaved.text

    answer = group.call(
        group.desk_tw, "POST", "/fhir/Patient/$register", register_body("A123457(1)", "1985-05-05")
    )

    assert answer.status_code == 409, answer.text
    assert clinics(group, patient) == {TM}


# The second review (docs/threat-model.md, "Review of stop 62"): each failed before its
# mend.


def test_a_newcomers_number_added_beside_a_seen_patients_own_is_refused_for_an_officer(
    group: Group,
) -> None:
    """Tuen Mun's desk adds the newcomer's HKID as a second identifier of Chan, a patient
    its doctor has seen (Chan's own number, which the desk may not read, is kept), with
    the newcomer's birth date; the doctor sees Chan again in ordinary work. Tsuen Wan
    registered the newcomer on Chan's chart: its doctor read Chan's results, and Tuen
    Mun's doctor what Tsuen Wan recorded. A person has one HKID: a record holding two
    refuses a registration by either (409, for the privacy officer), counted."""
    chart = group.tm_patient.id
    second_number_beside(group, chart)
    noted = group.call(group.doctor_tm, "POST", "/fhir/Observation", observation(chart))
    assert noted.status_code == 201, noted.text

    answer = group.call(
        group.desk_tw, "POST", "/fhir/Patient/$register", register_body(NEW_HKID, NEW_BORN)
    )

    assert answer.status_code == 409, answer.text
    assert answer.json() == waiting_for_the_officer(group, "A123457(1)", "1985-05-05")
    assert chart not in answer.text
    assert clinics(group, chart) == {TM}


def test_a_coverage_billing_records_before_a_visit_is_no_attendance(group: Group) -> None:
    """Billing records the insurance of the desk's new patient before any visit (its
    ordinary work, group-wide): the first version took the coverage for attendance, and
    the plant kept its ties. A coverage says nothing of a visit: the home moves."""
    billing = make_staff(group.services, Role.BILLING, [TM])
    patient = planted(group)
    made = group.call(billing, "POST", "/fhir/Coverage", coverage(patient, EXTENDED_HEALTHCARE))
    assert made.status_code == 201, made.text

    answer = registered_at_tsuen_wan(group)

    assert answer.json()["managingOrganization"] == {"reference": f"Organization/{TW}"}
    assert clinics(group, patient) == {TW}


def test_a_record_that_fails_its_integrity_check_refuses_the_registration_naming_nothing(
    group: Group,
) -> None:
    """A version of a Tuen Mun booking whose ciphertext was altered: the registration
    fails closed (500, nothing moved), and its answer no longer names the booking, which
    the registering desk may not know of."""
    patient = planted(group)
    booking = booked_at_tuen_mun(group, patient)
    with group.services.vault.engine.begin() as connection:
        connection.execute(
            update(resource_version)
            .where(resource_version.c.resource_id == booking)
            .values(sealed=b"\x01" * 64)
        )

    answer = group.call(
        group.desk_tw, "POST", "/fhir/Patient/$register", register_body(NEW_HKID, NEW_BORN)
    )

    assert answer.status_code == 500, answer.text
    assert booking not in answer.text and "integrity" in answer.text
    assert clinics(group, patient) == {TM}


# The third review (docs/threat-model.md, "Review of stop 62"): each failed before its
# mend.


def waiting_for_the_officer(group: Group, hkid: str, born: str) -> Any:
    """The answer to a registration sent to the privacy officer for another reason (a
    seen chart given a number after its care), to compare answers with."""
    made = group.call(
        group.desk_tm,
        "POST",
        "/fhir/Patient",
        {"resourceType": "Patient", "name": [{"family": "Ng"}], "birthDate": born},
    )
    assert made.status_code == 201, made.text
    patient = str(made.json()["id"])
    booked_at_tuen_mun(group, patient)
    noted = group.call(group.doctor_tm, "POST", "/fhir/Observation", observation(patient))
    assert noted.status_code == 201, noted.text
    retyped(group, patient, hkid, born)
    answer = group.call(group.desk_tw, "POST", "/fhir/Patient/$register", register_body(hkid, born))
    assert answer.status_code == 409, answer.text
    return answer.json()


def test_a_passport_number_shaped_like_an_hkid_is_no_second_number(group: Group) -> None:
    """A patient holding their HKID and a passport number of two letters and seven
    digits (shaped like an HKID, its check digit not one) was sent to the officer at
    every registration, for good; an HKID is counted only where its check digit holds."""
    body = {
        "resourceType": "Patient",
        "name": [{"family": "Lam"}],
        "birthDate": NEW_BORN,
        "identifier": [
            {"system": HKID_SYSTEM, "value": NEW_HKID},
            {"system": "http://hl7.org/fhir/sid/passport-AUS", "value": "PA1234567"},
        ],
    }
    made = group.call(group.desk_tm, "POST", "/fhir/Patient", body)
    assert made.status_code == 201, made.text

    answer = registered_at_tsuen_wan(group)

    assert answer.json()["id"] == made.json()["id"]


def test_a_number_typed_with_a_sensitive_code_is_no_second_number(
    group: Group, api: FhirTestClient
) -> None:
    """Tuen Mun's seen patient also holds an HIV clinic's number shaped like an HKID
    (typed with HIV disease, cut from every desk's view). Tsuen Wan's desk registering
    by the patient's HKID was sent to the officer, which told it the hidden number is
    there; such a number is not counted, as no registration matches by it."""
    path = f"/fhir/Patient/{group.tm_patient.id}"
    stored = api.get(path).json()
    number = {"system": "urn:tm:hiv-clinic", "value": "HV123456(7)", "type": HIV_TYPE}
    numbered = api.put_json(path, {**stored, "identifier": [*stored["identifier"], number]})
    assert numbered.status_code == 200, numbered.text

    answer = registered_at_tsuen_wan(group, group.tm_patient.hkid, group.tm_patient.birth_date)

    assert answer.json()["id"] == group.tm_patient.id


def test_the_officer_registering_a_never_seen_plant_ends_the_planters_ties(
    group: Group,
) -> None:
    """A plant given two numbers (the newcomer's and another) is sent to the officer,
    not moved by Tsuen Wan's desk; the officer, following the runbook, registered the
    person at Tsuen Wan beside Tuen Mun's home, and Tuen Mun's doctor, booked by its
    desk, read what Tsuen Wan recorded. No one has recorded seeing the person: the
    officer's registration moves the home as a first presence does, and Tuen Mun keeps
    no tie."""
    body = {
        "resourceType": "Patient",
        "name": [{"family": "Yip"}],
        "birthDate": NEW_BORN,
        "identifier": [
            {"system": HKID_SYSTEM, "value": NEW_HKID},
            {"system": HKID_SYSTEM, "value": "A123457(1)"},
        ],
    }
    made = group.call(group.desk_tm, "POST", "/fhir/Patient", body)
    assert made.status_code == 201, made.text
    patient = str(made.json()["id"])
    sent = group.call(
        group.desk_tw, "POST", "/fhir/Patient/$register", register_body(NEW_HKID, NEW_BORN)
    )
    assert sent.status_code == 409, sent.text
    settings = group.services.settings
    env = environment(settings.home, settings.database_url)

    done = invoke_cli(
        env,
        "patients",
        "register",
        f"Patient/{patient}",
        "--clinic",
        TW,
        "--reason",
        "identity-confirmed",
        "--officer",
        group.officer.account.username,
        "--totp",
        group.officer.totp(),
    )

    assert done.returncode == 0, done.stderr
    assert clinics(group, patient) == {TW}
    time.sleep(CACHE_SECONDS + 0.1)
    result = tsuen_wan_records_a_result(group, patient)
    booked_at_tuen_mun(group, patient)
    assert group.call(group.doctor_tm, "GET", f"/fhir/Observation/{result}").status_code == 403


def test_a_registration_is_in_the_patients_access_report(group: Group) -> None:
    """Who registered the patient where opened their record to a clinic's staff: the
    desk's first presence and the planter's registration after it are both lines of the
    patient's access report (neither was: third review of stop 62)."""
    patient = planted(group)
    registered_at_tsuen_wan(group)
    again = group.call(
        group.desk_tm, "POST", "/fhir/Patient/$register", register_body(NEW_HKID, NEW_BORN)
    )
    assert again.status_code == 200, again.text
    group.services.audit_ledger.checkpoints.make("test")

    report = group.web.get(
        f"/audit/patients/{patient}/access-report", headers=group.officer.headers
    )

    assert report.status_code == 200, report.text
    registered = [
        line for line in report.json()["accesses"] if line["action"] == "fhir:patient:registered"
    ]
    assert len(registered) == 2
    assert {line["outcome"] for line in registered} == {"success"}


def test_a_visit_a_doctor_records_while_the_registration_weighs_stops_the_move(
    group: Group, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tuen Mun's doctor, who has the booked patient in front of him, records a visit with
    its reason between the weighing of Tsuen Wan's registration and its move: the move
    was let through (its last check looked only at results and claims), and the doctor's
    visit lost its reason to him. Now any record of care, visit or booking written in
    between asks for another try (adversary round 80)."""
    from carevault.gate import registration

    patient = planted(group)
    booked_at_tuen_mun(group, patient)
    weigh = registration._seen
    written: list[str] = []

    def seen_while_the_doctor_writes(*args: Any, **kwargs: Any) -> registration.Seen:
        answer = weigh(*args, **kwargs)
        visit = encounter(patient, TM, "dr-tm")
        visit["reasonCode"] = [{"text": "chest pain"}]
        made = group.call(group.doctor_tm, "POST", "/fhir/Encounter", visit)
        assert made.status_code == 201, made.text
        written.append(str(made.json()["id"]))
        return answer

    monkeypatch.setattr(registration, "_seen", seen_while_the_doctor_writes)
    answer = group.call(
        group.desk_tw, "POST", "/fhir/Patient/$register", register_body(NEW_HKID, NEW_BORN)
    )
    monkeypatch.setattr(registration, "_seen", weigh)

    assert answer.status_code == 409, answer.text
    assert "changed while it was being registered" in answer.text
    assert clinics(group, patient) == {TM}
    own = group.call(group.doctor_tm, "GET", f"/fhir/Encounter/{written[0]}")
    assert own.status_code == 200 and "chest pain" in own.text
    # Tried again, the registration weighs the doctor's visit: the person was seen.
    registered_at_tsuen_wan(group)
    assert clinics(group, patient) == {TM, TW}
