"""Synthetic patients: validity, references, uniqueness, determinism and clinical coherence."""

from __future__ import annotations

import base64
import json
import re
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhirclient.models.fhirelementfactory import FHIRElementFactory

from carevault.sim import ClinicGroup, PatientRecord, generate_patients, hkid
from carevault.sim.codes import SPECIALITIES
from carevault.sim.patients import EMAIL_DOMAINS, HKID_SYSTEM, MRN_SYSTEM
from carevault.sim.programmes import CHILDHOOD_SERIES
from tests.unit.sim.conftest import PATIENT_SEED, SAMPLE, TODAY, every_resource, references

ALLOWED = {
    "Patient", "Practitioner", "PractitionerRole", "Organization", "Location", "Encounter",
    "Condition", "Observation", "DiagnosticReport", "Procedure", "Immunization",
    "AllergyIntolerance", "MedicationRequest", "CarePlan", "Goal", "ImagingStudy",
    "DocumentReference", "Appointment", "Schedule", "Slot", "Coverage", "Claim",
    "ExplanationOfBenefit",
}  # fmt: skip
SPECIALITY_BY_CODE = {concept.code: key for key, concept in SPECIALITIES.items()}


def _age(birth: str, on: str) -> int:
    born, day = date.fromisoformat(birth), date.fromisoformat(on[:10])
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


Pair = tuple[PatientRecord, dict[str, Any]]


def _of_type(records: list[PatientRecord], resource_type: str) -> Iterator[Pair]:
    for record in records:
        for resource in record.resources:
            if resource["resourceType"] == resource_type:
                yield record, resource


def _code(resource: dict[str, Any], element: str = "code") -> str:
    return str(resource[element]["coding"][0]["code"])


# --- validity -----------------------------------------------------------------------


def test_every_resource_validates_with_fhir_resources_r4b(records: list[PatientRecord]) -> None:
    for resource in every_resource(records):
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def test_every_resource_validates_with_fhirclient_strict_r4(records: list[PatientRecord]) -> None:
    for resource in every_resource(records):
        FHIRElementFactory.instantiate(resource["resourceType"], resource)


def test_only_the_agreed_resource_types_and_no_meta(records: list[PatientRecord]) -> None:
    types = Counter(r["resourceType"] for r in every_resource(records))
    assert set(types) <= ALLOWED
    assert all("meta" not in r for r in every_resource(records))
    # The sample shows every kind of patient resource at least once.
    assert set(types) == ALLOWED - {"Practitioner", "PractitionerRole", "Organization",
                                    "Location", "Schedule", "Slot"}  # fmt: skip


# --- references and identity ----------------------------------------------------------------


def test_references_resolve_to_earlier_resources_of_the_group_or_the_patient(
    group: ClinicGroup, records: list[PatientRecord]
) -> None:
    group_keys = {f"{r['resourceType']}/{r['id']}" for r in group.resources()}
    for record in records:
        seen = set(group_keys)
        for resource in [record.patient, *record.resources]:
            for reference in references(resource):
                assert reference in seen, (resource["resourceType"], reference)
            seen.add(f"{resource['resourceType']}/{resource['id']}")


def test_ids_hkids_mrns_phones_and_emails_are_unique(
    group: ClinicGroup, records: list[PatientRecord]
) -> None:
    ids = [r["id"] for r in group.resources()] + [r["id"] for r in every_resource(records)]
    assert len(set(ids)) == len(ids)
    for field in ("hkid", "mrn", "phone"):
        values = [getattr(record, field) for record in records]
        assert len(set(values)) == len(values), field
    emails = [record.email for record in records if record.email]
    assert len(set(emails)) == len(emails)
    assert all(email.split("@")[1] in EMAIL_DOMAINS for email in emails)


def test_plain_facts_match_the_patient_resource(records: list[PatientRecord]) -> None:
    for record in records:
        patient = record.patient
        identifiers = {i["system"]: i for i in patient["identifier"]}
        assert identifiers[HKID_SYSTEM]["value"] == record.hkid
        assert identifiers[HKID_SYSTEM]["type"]["coding"][0]["code"] == "NI"
        assert hkid.is_valid(record.hkid) and hkid.canonical(record.hkid) == record.hkid
        assert identifiers[MRN_SYSTEM]["value"] == record.mrn
        assert re.fullmatch(r"KTM-\d{7}", record.mrn)
        assert re.fullmatch(r"\+852 [569]\d{3} \d{4}", record.phone)
        telecom = {t["system"]: t["value"] for t in patient["telecom"]}
        assert telecom["phone"] == record.phone and telecom.get("email") == record.email
        texts = [name["text"] for name in patient["name"]]
        assert record.names == texts
        assert (
            patient["managingOrganization"]["reference"] == f"Organization/{record.home_clinic_id}"
        )
        assert patient["birthDate"] == record.birth_date
        language = patient["communication"][0]["language"]["coding"][0]["code"]
        assert language in {"yue", "zh", "en", "tl", "id", "ne", "hi", "ur"}


def test_population_mixes_ages_origins_and_insurance(records: list[PatientRecord]) -> None:
    ages = [_age(r.birth_date, TODAY.isoformat()) for r in records]
    assert min(ages) < 5 and max(ages) >= 80
    assert sum(age < 18 for age in ages) > SAMPLE * 0.08
    chinese = sum(any("extension" in n for n in r.patient["name"]) for r in records)
    assert SAMPLE * 0.8 < chinese < SAMPLE
    insured = sum(any(x["resourceType"] == "Coverage" for x in r.resources) for r in records)
    assert SAMPLE * 0.25 < insured < SAMPLE * 0.65


def test_average_and_heaviest_patients(records: list[PatientRecord]) -> None:
    sizes = [len(record.resources) for record in records]
    assert 15 <= sum(sizes) / len(sizes) <= 30
    assert max(sizes) >= 100, "a few chronic patients have long records"


# --- determinism -----------------------------------------------------------------------------


def test_same_seed_gives_the_same_patients_and_a_longer_run_starts_the_same(
    group: ClinicGroup, records: list[PatientRecord]
) -> None:
    again = list(generate_patients(group, 30, PATIENT_SEED, TODAY))
    assert json.dumps([(r.patient, r.resources) for r in again]) == json.dumps(
        [(r.patient, r.resources) for r in records[:30]]
    )


def test_another_seed_gives_other_patients(
    group: ClinicGroup, records: list[PatientRecord]
) -> None:
    other = list(generate_patients(group, 30, PATIENT_SEED + 1, TODAY))
    assert {r.hkid for r in other}.isdisjoint({r.hkid for r in records[:30]})
    assert [r.patient["id"] for r in other] != [r.patient["id"] for r in records[:30]]


def test_patients_are_streamed(group: ClinicGroup) -> None:
    stream = generate_patients(group, 10**6, PATIENT_SEED, TODAY)
    assert isinstance(stream, Iterator)
    assert next(stream).mrn == "KTM-0000001"


# --- clinical coherence ----------------------------------------------------------------------


def test_encounters_happen_where_the_speciality_is_offered_with_a_physician_of_it(
    group: ClinicGroup, records: list[PatientRecord]
) -> None:
    for _, encounter in _of_type(records, "Encounter"):
        speciality = SPECIALITY_BY_CODE[_code(encounter, "serviceType")]
        clinic = group.clinic(encounter["serviceProvider"]["reference"].split("/")[1])
        assert clinic.offers(speciality)
        assert encounter["location"][0]["location"]["reference"] == f"Location/{clinic.location_id}"
        practitioner = encounter["participant"][0]["individual"]["reference"].split("/")[1]
        physicians = {m.practitioner_id for m in group.physicians(clinic.id, speciality)}
        assert practitioner in physicians
        assert encounter["class"]["code"] == "AMB"
        assert encounter["period"]["start"] < TODAY.isoformat()


def test_paediatric_data_belongs_to_children_only(records: list[PatientRecord]) -> None:
    checked: Counter[str] = Counter()
    for record, resource in (pair for t in ("Encounter", "Observation", "Immunization")
                             for pair in _of_type(records, t)):  # fmt: skip
        kind = resource["resourceType"]
        if (
            kind == "Encounter"
            and _code(resource, "serviceType") == SPECIALITIES["paediatrics"].code
        ):
            when = resource["period"]["start"]
        elif kind == "Observation" and _code(resource) in ("8302-2", "9843-4", "39156-5"):
            when = resource["effectiveDateTime"]  # height, head circumference, BMI
        elif (
            kind == "Immunization" and resource["protocolApplied"][0]["series"] == CHILDHOOD_SERIES
        ):
            when = resource["occurrenceDateTime"]
        else:
            continue
        checked[kind] += 1
        assert _age(record.birth_date, when) < 18, (kind, record.birth_date, when)
    assert checked["Encounter"] and checked["Observation"] and checked["Immunization"]


def test_pregnancy_and_womens_health_belong_to_women_of_the_right_age(
    records: list[PatientRecord],
) -> None:
    pregnancies = 0
    for record, condition in _of_type(records, "Condition"):
        if _code(condition) in ("72892002", "13197004"):  # pregnancy, contraception
            assert record.patient["gender"] == "female"
            assert 18 <= _age(record.birth_date, condition["onsetDateTime"]) <= 45
            pregnancies += _code(condition) == "72892002"
    for record, encounter in _of_type(records, "Encounter"):
        if encounter["type"][0]["coding"][0]["code"] in ("424441002", "424619006"):  # antenatal
            assert record.patient["gender"] == "female"
            assert 18 <= _age(record.birth_date, encounter["period"]["start"]) <= 46
    for record, procedure in _of_type(records, "Procedure"):
        if _code(procedure) == "171149006":  # cervical screening
            assert record.patient["gender"] == "female"
            assert 25 <= _age(record.birth_date, procedure["performedPeriod"]["start"]) <= 64
    assert pregnancies, "the sample has at least one pregnancy"


def test_chronic_disease_comes_with_its_measurements_and_medicines(
    records: list[PatientRecord],
) -> None:
    for record in records:
        codes = {_code(r) for r in record.resources if r["resourceType"] == "Condition"}
        observations = {_code(r) for r in record.resources if r["resourceType"] == "Observation"}
        medicines = {
            r["medicationCodeableConcept"]["coding"][0]["code"]
            for r in record.resources
            if r["resourceType"] == "MedicationRequest"
        }
        if "59621000" in codes:  # hypertension: blood pressure panel, an antihypertensive
            assert "85354-9" in observations and medicines & {"C08CA01", "C09CA01"}
        if "44054006" in codes:  # diabetes: HbA1c and metformin
            assert "4548-4" in observations and "A10BA02" in medicines
    panels = [r for _, r in _of_type(records, "Observation") if _code(r) == "85354-9"]
    assert all({_code(c) for c in p["component"]} == {"8480-6", "8462-4"} for p in panels)


def test_questionnaire_scores_are_members_of_their_panel(records: list[PatientRecord]) -> None:
    observations = {r["id"]: r for _, r in _of_type(records, "Observation")}
    panels = [o for o in observations.values() if _code(o) in ("44249-1", "69737-5")]
    assert panels
    for panel in panels:
        member = observations[panel["hasMember"][0]["reference"].split("/")[1]]
        assert _code(member) == {"44249-1": "44261-6", "69737-5": "70274-6"}[_code(panel)]
        assert 0 <= member["valueInteger"] <= 27


def test_reports_group_observations_and_notes_are_readable_text(
    records: list[PatientRecord],
) -> None:
    for record in records:
        observations = {r["id"] for r in record.resources if r["resourceType"] == "Observation"}
        for report in (r for r in record.resources if r["resourceType"] == "DiagnosticReport"):
            assert {
                ref["reference"].split("/")[1] for ref in report.get("result", [])
            } <= observations
    notes = [r for _, r in _of_type(records, "DocumentReference")]
    assert notes
    for note in notes:
        text = base64.b64decode(note["content"][0]["attachment"]["data"]).decode("utf-8")
        assert text.strip()


def test_penicillin_allergic_patients_are_not_given_penicillins(
    records: list[PatientRecord],
) -> None:
    for record in records:
        allergic = any(r["resourceType"] == "AllergyIntolerance" and _code(r) == "91936005"
                       for r in record.resources)  # fmt: skip
        if allergic:
            prescribed = [
                r["medicationCodeableConcept"]["coding"][0]["code"]
                for r in record.resources
                if r["resourceType"] == "MedicationRequest"
            ]
            assert not any(code.startswith("J01C") for code in prescribed)  # penicillins


def test_claims_are_for_visits_after_the_cover_started(records: list[PatientRecord]) -> None:
    for record in records:
        coverage = [r for r in record.resources if r["resourceType"] == "Coverage"]
        claims = [r for r in record.resources if r["resourceType"] == "Claim"]
        if not coverage:
            assert not claims
            continue
        start = coverage[0]["period"]["start"]
        for claim in claims:
            assert claim["item"][0]["servicedDate"] >= start
            assert claim["total"]["value"] == sum(i["net"]["value"] for i in claim["item"])


# --- appointments ----------------------------------------------------------------------------


def test_appointments_today_and_in_the_coming_days_are_booked(records: list[PatientRecord]) -> None:
    statuses: Counter[tuple[str, str]] = Counter()
    for _, appointment in _of_type(records, "Appointment"):
        when = "past" if appointment["start"] < TODAY.isoformat() else "future"
        if appointment["start"][:10] == TODAY.isoformat():
            when = "today"
        statuses[when, appointment["status"]] += 1
    assert statuses["today", "booked"] > 0
    assert {s for w, s in statuses if w != "past"} == {"booked"}
    assert {s for w, s in statuses if w == "past"} == {"fulfilled", "noshow", "cancelled"}


def test_booked_slots_are_busy_slots_of_the_same_physician_used_once(
    group: ClinicGroup, records: list[PatientRecord]
) -> None:
    slots = {b.slot_id: b for b in group.bookable_slots}
    used = []
    for _, appointment in _of_type(records, "Appointment"):
        for reference in appointment.get("slot", []):
            slot = slots[reference["reference"].split("/")[1]]
            used.append(slot.slot_id)
            actors = {p["actor"]["reference"] for p in appointment["participant"]}
            assert f"Practitioner/{slot.practitioner_id}" in actors
            assert f"Location/{slot.location_id}" in actors
            assert slot.busy and appointment["start"] == slot.start.isoformat()
    assert used and len(set(used)) == len(used)


def test_fulfilled_appointments_are_linked_from_their_encounter(
    records: list[PatientRecord],
) -> None:
    for record in records:
        fulfilled = {
            r["id"]
            for r in record.resources
            if r["resourceType"] == "Appointment" and r["status"] == "fulfilled"
        }
        linked = {
            a["reference"].split("/")[1]
            for r in record.resources
            if r["resourceType"] == "Encounter"
            for a in r.get("appointment", [])
        }
        assert fulfilled == linked


def test_another_week_books_without_slots(group: ClinicGroup) -> None:
    later = TODAY + timedelta(days=30)
    records = list(generate_patients(group, 60, PATIENT_SEED, later))
    appointments = [r for _, r in _of_type(records, "Appointment")]
    assert appointments and all("slot" not in a for a in appointments)
    assert all(datetime.fromisoformat(a["created"]).date() <= later for a in appointments)


@pytest.mark.parametrize("today", [date(2025, 3, 9), date(2025, 3, 10)])
def test_a_week_starting_on_any_day_has_appointments_today(today: date) -> None:
    from carevault.sim import build_group

    group = build_group(3, today)
    records = list(generate_patients(group, SAMPLE, 5, today))
    todays = [
        r for _, r in _of_type(records, "Appointment") if r["start"][:10] == today.isoformat()
    ]
    assert todays and all(a["status"] == "booked" for a in todays)


def test_no_two_resources_share_a_nested_element(
    group: ClinicGroup, records: list[PatientRecord]
) -> None:
    """A consumer may edit one resource in place without changing another."""
    owner: dict[int, str] = {}

    def walk(node: Any, resource_key: str) -> None:
        if isinstance(node, dict | list):
            assert owner.setdefault(id(node), resource_key) == resource_key, resource_key
            for child in node.values() if isinstance(node, dict) else node:
                walk(child, resource_key)

    for resource in [*group.resources(), *every_resource(records)]:
        walk(resource, f"{resource['resourceType']}/{resource['id']}")
