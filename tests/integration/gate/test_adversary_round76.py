"""Adversary round 76: what a count of a patient's records or of a record's versions
tells, in the ledger and an incident's scope (SQLite and PostgreSQL).

``Patient/X/$everything?_count=0`` answers how many records of X the caller may read,
``Condition/c/_history?_count=0`` how many versions the diagnosis has; both named X in
the ledger (round 73) but with no category, so an incident's scope listed X as confirmed
with ``categories: []`` although the total told that X has a diagnosis, a sensitive one
here. The entry now names the categories of what was counted past the page: each
record's type category, sensitive_clinical for a health record not marked ordinary
(a version counted unopened is taken as sensitive: fail closed).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from carevault.bootstrap import Services
from carevault.incidents.model import instant
from carevault.ledger.events import Tag
from tests.integration.access.group import (
    HIV,
    Group,
    build_group,
    doctors_condition,
    scope_confirmed,
)
from tests.support.client import FhirTestClient

pytestmark = pytest.mark.postgres


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


@pytest.mark.parametrize("level", ["everything", "history"])
def test_a_count_of_records_or_versions_names_what_it_counted(group: Group, level: str) -> None:
    """Fails before the fix: the entry naming the patient had no category, and the
    scope's confirmed line for them said ``[]``."""
    patient = group.tm_patient
    condition = doctors_condition(group, HIV)
    since = instant(group.services.now_us() - 1000)
    tag = Tag.FHIR_EVERYTHING if level == "everything" else Tag.FHIR_HISTORY
    start = len(group.events(tag))
    path = (
        f"/fhir/Patient/{patient.id}/$everything?_count=0"
        if level == "everything"
        else f"/fhir/Condition/{condition}/_history?_count=0"
    )
    answer = group.call(group.doctor_tm, "GET", path)
    assert answer.status_code == 200, answer.text
    assert answer.json()["total"] >= 1
    assert "entry" not in answer.json()

    (entry,) = group.events(tag)[start:]
    assert "sensitive_clinical" in entry.categories
    confirmed = scope_confirmed(group, group.doctor_tm.account.username, since)
    assert "sensitive_clinical" in confirmed[patient.id]


def test_a_page_of_everything_names_what_its_total_counted_past_it(group: Group) -> None:
    """Fails before the fix: a one-record page of ``$everything`` (the Patient) named
    only identity, though its total counted X's HIV diagnosis past the page. A count
    of the Patient alone (``_type=Patient``) names no health data."""
    patient = group.tm_patient
    doctors_condition(group, HIV)
    start = len(group.events(Tag.FHIR_EVERYTHING))
    for query in ("_count=1", "_type=Patient&_count=0"):
        path = f"/fhir/Patient/{patient.id}/$everything?{query}"
        answer = group.call(group.doctor_tm, "GET", path)
        assert answer.status_code == 200, answer.text
    paged, patient_only = group.events(Tag.FHIR_EVERYTHING)[start:]
    assert "sensitive_clinical" in paged.categories
    assert "sensitive_clinical" not in patient_only.categories
    assert "clinical" not in patient_only.categories
