"""An integration client's records of care attest no one's presence, and it writes care
only about its clinics' patients (adversary round 80).

A client of clinic A (its secret stolen, or misused) loaded a newcomer's record under
their HKID and birth date with a visit of its own carrying a reason: when the person
first came to clinic B, B's desk registered them as seen (the client's visit was care),
their home stayed A, and the client read the HIV result B's doctor recorded. One secret
did what takes a desk and a doctor of A together. Now care written only by integration
clients sends the registration to the privacy officer, whose registration of a person
no one else recorded seeing is a first presence; and a client writing health data or a
claim about another clinic's patient is refused, as a doctor without care is.

SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from carevault.domain.roles import Role
from carevault.fhir.normalise import HKID_SYSTEM
from carevault.gate import Caller
from carevault.gate.registration import OFFICER_TO_CONFIRM, RegistrationInvalid, register_confirmed
from tests.integration.access.browser import bearer
from tests.integration.export.conftest import MINE, OTHER, put
from tests.integration.gate.presence import NEW_BORN, NEW_HKID, NEWCOMER
from tests.integration.importjobs.conftest import Clinic
from tests.integration.importjobs.test_import_api import ndjson, outcome_of, refused_lines
from tests.support.staff import Staff, caller_of, make_staff

pytestmark = pytest.mark.postgres

FHIR = {"Content-Type": "application/fhir+json"}
REGISTER = {
    "resourceType": "Parameters",
    "parameter": [
        {"name": "identifier", "valueIdentifier": {"system": HKID_SYSTEM, "value": NEW_HKID}},
        {"name": "birthDate", "valueDate": NEW_BORN},
    ],
}


def _newcomer(patient_id: str | None, clinic: str) -> dict[str, Any]:
    """The newcomer at ``clinic``, under ``patient_id`` (None: for a POST)."""
    made = {**NEWCOMER, "managingOrganization": _org(clinic)}
    return made if patient_id is None else {**made, "id": patient_id}


def _org(clinic: str) -> dict[str, str]:
    return {"reference": f"Organization/{clinic}"}


def _visit(patient_id: str, clinic: str, **more: Any) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": f"Patient/{patient_id}"},
        "serviceProvider": _org(clinic),
        "period": {"start": "2026-01-05T09:00:00+08:00"},
        **more,
    }


def _result(patient_id: str, text: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": text},
        "subject": {"reference": f"Patient/{patient_id}"},
    }


def _claim(claim_id: str, patient_id: str, clinic: str) -> dict[str, Any]:
    return {
        "resourceType": "Claim",
        "id": claim_id,
        "status": "active",
        "use": "claim",
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/claim-type",
                    "code": "professional",
                }
            ]
        },
        "patient": {"reference": f"Patient/{patient_id}"},
        "created": "2026-01-01",
        "provider": _org(clinic),
        "priority": {"coding": [{"code": "normal"}]},
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"display": "self"}}],
    }


def _call(clinic: Clinic, headers: dict[str, str], method: str, path: str, body: Any = None) -> Any:
    if body is None:
        return clinic.web.request(method, path, headers=headers)
    return clinic.web.request(method, path, headers={**headers, **FHIR}, content=json.dumps(body))


def _imported(clinic: Clinic, token: str, *lines: dict[str, Any]) -> dict[int, str]:
    job = clinic.kick_off(token, ndjson(*lines))
    clinic.work()
    return refused_lines(outcome_of(clinic, token, job))


def _home(clinic: Clinic, desk: Staff, patient_id: str) -> Any:
    answer = _call(clinic, desk.headers, "GET", f"/fhir/Patient/{patient_id}")
    return answer.json().get("managingOrganization") if answer.status_code == 200 else None


def _officer(clinic: Clinic) -> Caller:
    return caller_of(clinic.services, make_staff(clinic.services, Role.PRIVACY_OFFICER, [MINE]))


def _doctor_of_b(clinic: Clinic) -> Staff:
    put(clinic.services, {"resourceType": "Practitioner", "id": "dr-b", "name": [{"family": "Wu"}]})
    return make_staff(clinic.services, Role.PHYSICIAN, [OTHER], "dr-b")


def _b_records_a_result(clinic: Clinic, doctor: Staff, patient_id: str) -> str:
    visit = _visit(
        patient_id,
        OTHER,
        participant=[{"individual": {"reference": "Practitioner/dr-b"}}],
        period={"start": "2026-12-07T09:00:00+08:00"},
    )
    made = _call(clinic, doctor.headers, "POST", "/fhir/Encounter", visit)
    assert made.status_code == 201, made.text
    result = _call(
        clinic, doctor.headers, "POST", "/fhir/Observation", _result(patient_id, "HIV-1 RNA 20000")
    )
    assert result.status_code == 201, result.text
    return str(result.json()["id"])


def test_a_newcomer_a_client_loaded_with_its_own_visit_goes_to_the_officer(clinic: Clinic) -> None:
    """The client loads the newcomer and a visit with a reason at A. B's desk is sent to
    the officer (409, one answer with the other doubts), nothing registered; the
    officer's registration at B is the person's first presence: their home is B, and
    the client reads nothing B's doctor records."""
    token = clinic.client("importer", clinics=[MINE])
    assert (
        _imported(
            clinic,
            token,
            _newcomer("p-plant", MINE),
            {**_visit("p-plant", MINE, reasonCode=[{"text": "checkup"}]), "id": "v-plant"},
        )
        == {}
    )
    desk_b = make_staff(clinic.services, Role.FRONT_DESK, [OTHER])

    answer = _call(clinic, desk_b.headers, "POST", "/fhir/Patient/$register", REGISTER)

    assert answer.status_code == 409, answer.text
    assert OFFICER_TO_CONFIRM in answer.text
    # The officer asks the person, who was never seen at A: B becomes their home.
    assert register_confirmed(
        clinic.services.gate, _officer(clinic), "p-plant", OTHER, "not-seen-before"
    )
    assert _home(clinic, desk_b, "p-plant") == _org(OTHER)
    result = _b_records_a_result(clinic, _doctor_of_b(clinic), "p-plant")
    assert _call(clinic, bearer(token), "GET", f"/fhir/Observation/{result}").status_code in (
        403,
        404,
    )
    listed = _call(clinic, bearer(token), "GET", "/fhir/Observation?patient=p-plant")
    assert "HIV" not in listed.text


def test_a_newcomer_a_client_wrote_with_one_result_goes_to_the_officer(clinic: Clinic) -> None:
    """The same without ``$import``: the client writes the newcomer and one result."""
    token = clinic.client("writer", clinics=[MINE])
    made = _call(clinic, bearer(token), "POST", "/fhir/Patient", _newcomer(None, MINE))
    assert made.status_code == 201, made.text
    patient_id = made.json()["id"]
    wrote = _call(clinic, bearer(token), "POST", "/fhir/Observation", _result(patient_id, "weight"))
    assert wrote.status_code == 201, wrote.text
    desk_b = make_staff(clinic.services, Role.FRONT_DESK, [OTHER])

    answer = _call(clinic, desk_b.headers, "POST", "/fhir/Patient/$register", REGISTER)

    assert answer.status_code == 409, answer.text
    desk_a = make_staff(clinic.services, Role.FRONT_DESK, [MINE])
    assert _home(clinic, desk_a, patient_id) == _org(MINE)


def test_care_a_doctor_recorded_still_registers_the_patient(clinic: Clinic) -> None:
    """A person a doctor of A saw (his visit with a reason, after A's desk wrote them and
    the client loaded a result) registers at B as before: someone answerable saw them."""
    desk_a = make_staff(clinic.services, Role.FRONT_DESK, [MINE])
    made = _call(clinic, desk_a.headers, "POST", "/fhir/Patient", _newcomer(None, MINE))
    assert made.status_code == 201, made.text
    patient_id = made.json()["id"]
    token = clinic.client("lab", clinics=[MINE])
    lab = _call(clinic, bearer(token), "POST", "/fhir/Observation", _result(patient_id, "HbA1c"))
    assert lab.status_code == 201, lab.text
    desk_b = make_staff(clinic.services, Role.FRONT_DESK, [OTHER])
    # The lab's result alone: no one answerable saw them.
    assert (
        _call(clinic, desk_b.headers, "POST", "/fhir/Patient/$register", REGISTER).status_code
        == 409
    )
    put(clinic.services, {"resourceType": "Practitioner", "id": "dr-a", "name": [{"family": "Ho"}]})
    doctor_a = make_staff(clinic.services, Role.PHYSICIAN, [MINE], "dr-a")
    booked = {
        "resourceType": "Appointment",
        "status": "booked",
        "start": "2026-12-07T10:00:00+08:00",
        "end": "2026-12-07T10:15:00+08:00",
        "participant": [
            {"actor": {"reference": f"Patient/{patient_id}"}, "status": "accepted"},
            {"actor": {"reference": "Practitioner/dr-a"}, "status": "accepted"},
            {"actor": _org(MINE), "status": "accepted"},
        ],
    }
    assert _call(clinic, desk_a.headers, "POST", "/fhir/Appointment", booked).status_code == 201
    seen = _visit(
        patient_id,
        MINE,
        participant=[{"individual": {"reference": "Practitioner/dr-a"}}],
        period={"start": "2026-12-07T10:00:00+08:00"},
        reasonCode=[{"text": "chest pain"}],
    )
    visit = _call(clinic, doctor_a.headers, "POST", "/fhir/Encounter", seen)
    assert visit.status_code == 201, visit.text

    answer = _call(clinic, desk_b.headers, "POST", "/fhir/Patient/$register", REGISTER)

    assert answer.status_code == 200, answer.text
    assert _home(clinic, desk_b, patient_id) == _org(MINE)


def test_a_client_writes_no_care_about_another_clinics_patient(clinic: Clinic) -> None:
    """B's desk writes a patient; A's client may place a visit at A for them (it opens
    nothing, as a desk's booking), but not a visit with a reason, nor a claim: by
    ``$import`` (lines refused) or by REST (403). B's chart holds none of it."""
    desk_b = make_staff(clinic.services, Role.FRONT_DESK, [OTHER])
    made = _call(clinic, desk_b.headers, "POST", "/fhir/Patient", _newcomer(None, OTHER))
    assert made.status_code == 201, made.text
    patient_id = made.json()["id"]
    token = clinic.client("importer", clinics=[MINE])

    refused = _imported(
        clinic,
        token,
        {**_visit(patient_id, MINE, reasonCode=[{"text": "checkup"}]), "id": "v-x"},
        {**_visit(patient_id, MINE), "id": "v-y"},
        _claim("c-x", patient_id, MINE),
    )
    rest = _call(
        clinic,
        bearer(token),
        "POST",
        "/fhir/Encounter",
        _visit(patient_id, MINE, reasonCode=[{"text": "x"}]),
    )

    assert refused == {
        1: "the patient is not at any of your clinics",
        3: "the patient is not at any of your clinics",
    }
    assert rest.status_code == 403, rest.text
    doctor_b = _doctor_of_b(clinic)
    _b_records_a_result(clinic, doctor_b, patient_id)
    chart = _call(clinic, doctor_b.headers, "GET", f"/fhir/Encounter?patient={patient_id}")
    assert "checkup" not in chart.text and '"x"' not in chart.text
    # What the client may write of its own clinic's patients is unchanged.
    assert (
        _imported(clinic, token, {**_visit("pa0", MINE, reasonCode=[{"text": "flu"}]), "id": "v-a"})
        == {}
    )


def _desk_of(clinic: Clinic, where: str) -> Staff:
    return make_staff(clinic.services, Role.FRONT_DESK, [where])


def _client_wrote_newcomer(clinic: Clinic, token: str) -> str:
    made = _call(clinic, bearer(token), "POST", "/fhir/Patient", _newcomer(None, MINE))
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def _saved_as_shown(clinic: Clinic, who: Staff, path: str, **changed: Any) -> None:
    """``who`` saves its view of the record at ``path`` with ``changed`` (what it was not
    shown, the gate puts back)."""
    shown = _call(clinic, who.headers, "GET", path)
    assert shown.status_code == 200, shown.text
    body = {key: value for key, value in shown.json().items() if key != "meta"} | changed
    saved = _call(clinic, who.headers, "PUT", path, body)
    assert saved.status_code == 200, saved.text


@pytest.mark.parametrize("work", ["visit re-saved", "booking cancelled", "claim cancelled"])
def test_a_colleagues_routine_save_of_the_clients_care_attests_nothing(
    clinic: Clinic, work: str
) -> None:
    """After the client's visit with a reason, booking with a reason or claim, A's desk
    saves its view of the visit (the reason put back), cancels the booking no one came
    to, or billing cancels the claim: each entry named the record's health data or claim,
    and counted as a person's care; B's desk was registered (review of stop 63). Only
    the version that recorded the care attests, by whoever wrote it."""
    token = clinic.client("writer", clinics=[MINE])
    patient_id = _client_wrote_newcomer(clinic, token)
    if work == "claim cancelled":
        path, saver, change = "/fhir/Claim/c-1", Role.BILLING, {"status": "cancelled"}
        made = _call(clinic, bearer(token), "PUT", path, _claim("c-1", patient_id, MINE))
    elif work == "booking cancelled":
        booked = {
            "resourceType": "Appointment",
            "status": "booked",
            "start": "2026-12-07T10:00:00+08:00",
            "end": "2026-12-07T10:15:00+08:00",
            "reasonCode": [{"text": "follow-up"}],
            "participant": [
                {"actor": {"reference": f"Patient/{patient_id}"}, "status": "accepted"},
                {"actor": _org(MINE), "status": "accepted"},
            ],
        }
        made = _call(clinic, bearer(token), "POST", "/fhir/Appointment", booked)
        saver, change = Role.FRONT_DESK, {"status": "cancelled"}
    else:
        seen = _visit(patient_id, MINE, reasonCode=[{"text": "checkup"}])
        made = _call(clinic, bearer(token), "POST", "/fhir/Encounter", seen)
        saver, change = Role.FRONT_DESK, {"status": "cancelled"}
    assert made.status_code in (200, 201), made.text
    if work != "claim cancelled":
        path = f"/fhir/{made.json()['resourceType']}/{made.json()['id']}"
    desk_b = _desk_of(clinic, OTHER)
    assert (
        _call(clinic, desk_b.headers, "POST", "/fhir/Patient/$register", REGISTER).status_code
        == 409
    )

    _saved_as_shown(clinic, make_staff(clinic.services, saver, [MINE]), path, **change)

    answer = _call(clinic, desk_b.headers, "POST", "/fhir/Patient/$register", REGISTER)
    assert answer.status_code == 409, answer.text


def test_the_officer_keeps_a_lab_patient_at_their_clinic_unless_told_otherwise(
    clinic: Clinic,
) -> None:
    """A's desk wrote the patient and A's lab client sent a result: B's desk is sent to
    the officer (no person recorded seeing them). The officer's ordinary confirmation
    registers them at B beside A, which keeps them (it moved their home to B, and A's
    desk and lab lost them: review of stop 63); only ``not-seen-before`` moves it."""
    desk_a = _desk_of(clinic, MINE)
    made = _call(clinic, desk_a.headers, "POST", "/fhir/Patient", _newcomer(None, MINE))
    assert made.status_code == 201, made.text
    patient_id = made.json()["id"]
    lab = clinic.client("lab", clinics=[MINE])
    assert (
        _call(
            clinic, bearer(lab), "POST", "/fhir/Observation", _result(patient_id, "HbA1c")
        ).status_code
        == 201
    )
    desk_b = _desk_of(clinic, OTHER)
    assert (
        _call(clinic, desk_b.headers, "POST", "/fhir/Patient/$register", REGISTER).status_code
        == 409
    )

    assert register_confirmed(
        clinic.services.gate, _officer(clinic), patient_id, OTHER, "identity-confirmed"
    )

    assert _home(clinic, desk_a, patient_id) == _org(MINE)
    assert _home(clinic, desk_b, patient_id) == _org(MINE)
    again = _call(clinic, bearer(lab), "POST", "/fhir/Observation", _result(patient_id, "LDL"))
    assert again.status_code == 201, again.text


def test_not_seen_before_moves_no_patient_a_person_recorded_seeing(clinic: Clinic) -> None:
    """A patient a doctor of A recorded seeing (the system's load, as seeding writes it)
    is not taken from A on the officer's word: their home moves by a transfer."""
    _desk_of(clinic, OTHER)  # B is a clinic of the group: someone works there
    put(
        clinic.services,
        _newcomer("p-seen", MINE),
        {**_visit("p-seen", MINE, reasonCode=[{"text": "chest pain"}]), "id": "v-seen"},
    )

    with pytest.raises(RegistrationInvalid, match="transfer"):
        register_confirmed(
            clinic.services.gate, _officer(clinic), "p-seen", OTHER, "not-seen-before"
        )

    desk_a = _desk_of(clinic, MINE)
    assert _home(clinic, desk_a, "p-seen") == _org(MINE)


@pytest.mark.parametrize("work", ["insurer's answer recorded", "deleted and written back"])
def test_billings_routine_work_on_the_clients_claim_attests_nothing(
    clinic: Clinic, work: str
) -> None:
    """After the client's claim, A's billing records the insurer's answer to it (an
    explanation of benefit, a record that counted as care of billing's own), or deletes
    the claim and writes its view back to the same id (the first version after a
    deletion counted): B's desk was registered (second review of stop 63)."""
    token = clinic.client("writer", clinics=[MINE])
    patient_id = _client_wrote_newcomer(clinic, token)
    made = _call(clinic, bearer(token), "PUT", "/fhir/Claim/c-1", _claim("c-1", patient_id, MINE))
    assert made.status_code in (200, 201), made.text
    desk_b = _desk_of(clinic, OTHER)
    assert (
        _call(clinic, desk_b.headers, "POST", "/fhir/Patient/$register", REGISTER).status_code
        == 409
    )
    billing = make_staff(clinic.services, Role.BILLING, [MINE])
    if work == "insurer's answer recorded":
        answer = {
            "resourceType": "ExplanationOfBenefit",
            "status": "active",
            "type": _claim("c-1", patient_id, MINE)["type"],
            "use": "claim",
            "patient": {"reference": f"Patient/{patient_id}"},
            "created": "2026-01-10",
            "insurer": {"display": "AIA"},
            "provider": _org(MINE),
            "outcome": "complete",
            "claim": {"reference": "Claim/c-1"},
            "insurance": [{"focal": True, "coverage": {"display": "self"}}],
        }
        wrote = _call(clinic, billing.headers, "POST", "/fhir/ExplanationOfBenefit", answer)
        assert wrote.status_code == 201, wrote.text
    else:
        shown = _call(clinic, billing.headers, "GET", "/fhir/Claim/c-1").json()
        assert _call(clinic, billing.headers, "DELETE", "/fhir/Claim/c-1").status_code == 204
        back = {key: value for key, value in shown.items() if key != "meta"}
        wrote = _call(clinic, billing.headers, "PUT", "/fhir/Claim/c-1", back)
        assert wrote.status_code == 201, wrote.text

    answer_b = _call(clinic, desk_b.headers, "POST", "/fhir/Patient/$register", REGISTER)

    assert answer_b.status_code == 409, answer_b.text
    # The officer, told the person never came to A, may still make B their home.
    assert register_confirmed(
        clinic.services.gate, _officer(clinic), patient_id, OTHER, "not-seen-before"
    )
