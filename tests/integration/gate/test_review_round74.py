"""The review of adversary round 74: what a count tells of patients named other than by
``patient=``, and no more than it tells (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from carevault.bootstrap import Services
from carevault.ledger.events import Tag
from tests.integration.access.group import (
    HIV,
    TM,
    Group,
    booked_today,
    build_group,
    created,
    encounter,
    registered_patient,
)
from tests.support.client import FhirTestClient

pytestmark = pytest.mark.postgres


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


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
