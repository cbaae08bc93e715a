"""Adversary round 69, the insider with the database: someone who may write to the
database (a DBA, a restore job gone wrong, a PostgreSQL login, the SQLite file) but
holds no key edits the clear columns beside a sealed record, on SQLite and PostgreSQL.

Found: a record's patient pseudonym and clinic were in the clear and bound to nothing.
Moving Tsuen Wan's patient's observation to Tuen Mun's patient (two columns, in the
head and in its version) had Tuen Mun's doctor read it as his own patient's (200, and in
his patient's search), the ledger naming the wrong patient; setting a Tsuen Wan
patient's clinic to Tuen Mun had Tuen Mun's desk read the name and HKID (200). Records
are now sealed bound to the pseudonym and clinic beside them (``record_aad`` form 2);
one sealed before is bound to its patient by its data key's id. A record that fails its
check is refused (500, ``security``, nothing of it shown), recorded as a failure, and
now raises a critical alert (``stored-data-altered``) for an officer to judge."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select, update

from carevault.bootstrap import Services
from carevault.ledger.events import Outcome, Tag
from carevault.vault.tables import resource_head, resource_version
from tests.integration.access.group import TM, Group, build_group
from tests.support.client import FhirTestClient

pytestmark = pytest.mark.postgres

#: The detector that tells an officer of stored data altered (``detect.tamper``).
DETECTOR = "stored-data-altered"


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _facts(services: Services, resource_id: str) -> tuple[str, str]:
    with services.engine.connect() as connection:
        pseudonym, clinic = connection.execute(
            select(resource_head.c.patient_pseudonym, resource_head.c.clinic_id).where(
                resource_head.c.resource_id == resource_id
            )
        ).one()
    return str(pseudonym), str(clinic)


def _edit(services: Services, resource_id: str, **values: str) -> None:
    """What the insider does: the record's clear columns, in its head and every version."""
    with services.engine.begin() as connection:
        for table in (resource_head, resource_version):
            connection.execute(
                update(table).where(table.c.resource_id == resource_id).values(**values)
            )


def _refused_as_altered(response: object, reference: str) -> None:
    assert response.status_code == 500, response.text  # type: ignore[attr-defined]
    issue = response.json()["issue"][0]  # type: ignore[attr-defined]
    assert issue["code"] == "security"
    assert reference in issue["diagnostics"] and "integrity" in issue["diagnostics"]


def test_a_record_moved_to_another_patient_by_its_clear_columns_is_not_served(
    group: Group, services: Services
) -> None:
    theirs, ours = group.tw_patient, group.tm_patient
    pseudonym, clinic = _facts(services, ours.id)
    _edit(services, theirs.observation, patient_pseudonym=pseudonym, clinic_id=clinic)
    before = len(group.events())
    read = group.call(group.doctor_tm, "GET", f"/fhir/Observation/{theirs.observation}")
    _refused_as_altered(read, f"Observation/{theirs.observation}")
    assert "HbA1c" not in read.text
    search = group.call(group.doctor_tm, "GET", f"/fhir/Observation?patient={ours.id}")
    assert search.status_code == 500
    assert "HbA1c" not in search.text
    # Each refusal is in the ledger as a failure, never as a read of our patient's record.
    entries = group.events()[before:]
    assert [(entry.tag, entry.outcome) for entry in entries] == [
        (Tag.FHIR_READ, Outcome.FAILED),
        (Tag.FHIR_SEARCH, Outcome.FAILED),
    ]
    assert all(entry.reason == "RecordIntegrityError" for entry in entries)
    # And an officer is told: a critical alert, for a person to judge (the doctor who met
    # the altered record is neither suspended nor stepped up), naming no patient.
    detection = services.detection
    assert detection is not None
    detection.engine.catch_up()
    altered = [alert for alert in detection.alerts.list() if alert.detector == DETECTOR]
    assert len(altered) == 1, altered
    assert altered[0].severity == "critical" and altered[0].patient_count == 0
    assert "integrity" in altered[0].explanation and "HbA1c" not in altered[0].explanation
    assert services.containment.current().active == ()


def test_a_patient_moved_to_another_clinic_by_its_clear_column_is_not_served(
    group: Group, services: Services
) -> None:
    theirs = group.tw_patient
    _edit(services, theirs.id, clinic_id=TM)
    for who in (group.desk_tm, group.doctor_tm):
        read = group.call(who, "GET", f"/fhir/Patient/{theirs.id}")
        _refused_as_altered(read, f"Patient/{theirs.id}")
        assert "Lee" not in read.text and theirs.hkid not in read.text


def test_a_record_sealed_before_is_bound_to_its_patient_by_its_key(
    group: Group, services: Services
) -> None:
    """A record sealed under form 1 (before this round) names no patient in its
    associated data: a copy of it made as such, moved to another patient by its
    pseudonym, is refused by the key it is sealed under."""
    theirs, ours = group.tw_patient, group.tm_patient
    assert services.keys is not None
    their_pseudonym, their_clinic = _facts(services, theirs.id)
    keys = services.vault.data_keys([their_pseudonym], principal="system:test", purpose="TREAT")
    old = services.vault.envelope.sealer(keys[their_pseudonym])(
        # Form 1's associated data, spelled out (``record_aad(..., form=1)``).
        f"carevault-record/1|Observation|{theirs.observation}|1|{their_pseudonym}".encode(),
        b'{"resourceType":"Observation","status":"final","code":{"text":"HbA1c 7.2 %"}}',
    )
    with services.engine.begin() as connection:
        connection.execute(
            update(resource_version)
            .where(resource_version.c.resource_id == theirs.observation)
            .values(sealed=old)
        )
    # As written before: the rightful reader still reads it.
    assert (
        group.call(group.doctor_tw, "GET", f"/fhir/Observation/{theirs.observation}").status_code
        == 200
    )
    pseudonym, clinic = _facts(services, ours.id)
    _edit(services, theirs.observation, patient_pseudonym=pseudonym, clinic_id=clinic)
    read = group.call(group.doctor_tm, "GET", f"/fhir/Observation/{theirs.observation}")
    _refused_as_altered(read, f"Observation/{theirs.observation}")
    assert "another patient" in read.json()["issue"][0]["diagnostics"]
    assert "HbA1c" not in read.text
    assert their_clinic != clinic


def test_a_record_written_now_is_read_and_updated_as_before(group: Group) -> None:
    """The binding changes nothing for who may read: a new record, its update and its
    old version read back by the clinic that cares."""
    ours = group.tm_patient
    made = group.call(
        group.doctor_tm,
        "POST",
        "/fhir/Observation",
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "BP 120/80"},
            "subject": {"reference": f"Patient/{ours.id}"},
        },
    )
    assert made.status_code == 201, made.text
    body = made.json()
    body["status"] = "amended"
    updated = group.call(group.doctor_tm, "PUT", f"/fhir/Observation/{body['id']}", body)
    assert updated.status_code == 200, updated.text
    old = group.call(group.doctor_tm, "GET", f"/fhir/Observation/{body['id']}/_history/1")
    assert old.status_code == 200 and old.json()["status"] == "final"
