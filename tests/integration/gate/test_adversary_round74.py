"""Adversary round 74: what a count tells, in the ledger and an incident's scope (SQLite
and PostgreSQL).

A search that names its patient (``patient=X``) names X in the ledger even when it shows
no record (``_summary=count``, ``_count=0``: adversary round 51), but the entry named no
category: ``Condition?patient=X&code=B20&_summary=count`` answered ``total: 1``, telling
Tuen Mun's doctor that X has HIV, and the incident declared on the doctor's account
listed X as confirmed with no category at all, so ``by_category`` counted no clinical,
let alone sensitive, data left (the same search with ``_elements=id`` named
sensitive_clinical). The entry now names what the total told: the type's category, the
categories of the elements searched, sensitive_clinical for a sensitive health record.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from carevault.bootstrap import Services
from carevault.incidents.model import instant
from carevault.ledger.events import Tag
from tests.integration.access.group import (
    HIV,
    TM,
    Group,
    booked_today,
    build_group,
    created,
    doctors_condition,
    encounter,
    registered_patient,
    scope_confirmed,
)
from tests.support.client import FhirTestClient

pytestmark = pytest.mark.postgres


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _searched_categories(group: Group, start: int) -> list[tuple[str, ...]]:
    entries = group.events(Tag.FHIR_SEARCH)[start:]
    return [entry.categories for entry in entries]


@pytest.mark.parametrize("count", ["_summary=count", "_count=0"])
def test_a_count_of_a_diagnosis_is_in_the_scope_as_the_sensitive_data_it_told(
    group: Group, count: str
) -> None:
    """Fails before the fix: the entry naming the patient had no category, and the scope's
    confirmed line for them said ``[]``."""
    patient = group.tm_patient
    doctors_condition(group, HIV)
    since = instant(group.services.now_us() - 1000)
    start = len(group.events(Tag.FHIR_SEARCH))
    path = f"/fhir/Condition?patient={patient.id}&code=http://hl7.org/fhir/sid/icd-10|B20&{count}"
    answer = group.call(group.doctor_tm, "GET", path)
    assert answer.status_code == 200, answer.text
    assert answer.json()["total"] == 1
    assert "entry" not in answer.json()

    assert _searched_categories(group, start) == [("sensitive_clinical",)]
    confirmed = scope_confirmed(group, group.doctor_tm.account.username, since)
    assert confirmed == {patient.id: ["sensitive_clinical"]}


def test_a_count_names_what_it_told_and_no_more(group: Group, api: FhirTestClient) -> None:
    """Fails before the fix (each entry named no category). An ordinary observation
    counted is clinical, never sensitive; the desk's count of a patient's bookings is a
    visit; a count that matched nothing tells no category."""
    patient = group.tm_patient
    created(api, booked_today(patient.id, TM))
    start = len(group.events(Tag.FHIR_SEARCH))
    for who, path in (
        (group.doctor_tm, f"/fhir/Observation?patient={patient.id}&_summary=count"),
        (group.desk_tm, f"/fhir/Appointment?patient={patient.id}&_summary=count"),
        (group.doctor_tm, f"/fhir/Condition?patient={patient.id}&code=B20&_summary=count"),
    ):
        answer = group.call(who, "GET", path)
        assert answer.status_code == 200, answer.text
    assert _searched_categories(group, start) == [("clinical",), ("visit",), ()]


# The review of round 74: patients named other than by ``patient=``, and no more than a
# count tells.


def _entries(group: Group, start: int) -> dict[str | None, tuple[str, ...]]:
    return {e.patient_pseudonym: e.categories for e in group.events(Tag.FHIR_SEARCH)[start:]}


def test_a_count_of_bookings_by_actor_names_the_visit_it_told_of_that_patient(
    group: Group, api: FhirTestClient
) -> None:
    """``Appointment?actor=Patient/X&_summary=count`` told the desk that X has a booking;
    the record is the booking's first patient's (Y), so ``_told_by_total`` filtered it
    out and X's entry named no category (``()``) before the review's mend."""
    first = registered_patient(api, TM, "Ho")
    second = group.tm_patient.id
    booking = booked_today(first, TM, "dr-tm")
    booking["participant"].insert(
        1, {"actor": {"reference": f"Patient/{second}"}, "status": "accepted"}
    )
    created(api, booking)
    start = len(group.events(Tag.FHIR_SEARCH))
    path = f"/fhir/Appointment?actor=Patient/{second}&_summary=count"
    answer = group.call(group.desk_tm, "GET", path)
    assert answer.status_code == 200, answer.text
    assert answer.json()["total"] == 1
    (pseudonym,) = group.services.vault.patient_pseudonyms([second]).values()
    assert _entries(group, start) == {pseudonym: ("visit",)}


def test_a_count_of_visits_for_a_sensitive_type_names_sensitive_clinical(
    group: Group, api: FhirTestClient
) -> None:
    """The branch for a sensitive code asked of a type that is not health data
    (``_asks_sensitive_code``), which round 74's tests do not reach: held."""
    patient = group.tm_patient.id
    visit = encounter(patient, TM, "dr-tm")
    visit["type"] = [HIV]
    created(api, visit)
    start = len(group.events(Tag.FHIR_SEARCH))
    path = f"/fhir/Encounter?patient={patient}&type=http://hl7.org/fhir/sid/icd-10|B20&_count=0"
    answer = group.call(group.doctor_tm, "GET", path)
    assert answer.status_code == 200, answer.text
    assert answer.json()["total"] == 1
    (pseudonym,) = group.services.vault.patient_pseudonyms([patient]).values()
    assert set(_entries(group, start)[pseudonym]) == {"visit", "sensitive_clinical"}


def test_a_count_by_patient_alone_tells_nothing_of_what_the_records_hold(
    group: Group, api: FhirTestClient
) -> None:
    """``Condition?patient=X&_summary=count`` tells that X has conditions, not which: its
    entry names clinical data, not sensitive_clinical, though X's one condition is HIV
    (round 74's mend named it sensitive, from the record's marker, before the review)."""
    patient = group.tm_patient.id
    created(
        api,
        {"resourceType": "Condition", "code": HIV, "subject": {"reference": f"Patient/{patient}"}},
    )
    start = len(group.events(Tag.FHIR_SEARCH))
    answer = group.call(group.doctor_tm, "GET", f"/fhir/Condition?patient={patient}&_count=0")
    assert answer.status_code == 200, answer.text
    assert answer.json()["total"] == 1
    (pseudonym,) = group.services.vault.patient_pseudonyms([patient]).values()
    assert _entries(group, start) == {pseudonym: ("clinical",)}
