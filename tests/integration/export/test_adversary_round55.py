"""Adversary round 55, the manifest's ``deleted``: an integration client of one clinic
(or one granted fewer scopes) tries to learn, from the deletions an export ``_since`` a
time lists, the ids of records it may not read: an erased patient's, one its scopes do
not reach, an HIV diagnosis its role may not see, another clinic's patient deleted and
their id used again, a record deleted and written again (SQLite and PostgreSQL)."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import quote

import pytest

from carevault.export.model import Status
from carevault.ledger.events import Tag
from tests.integration.export.conftest import OTHER, Clinic, observation, patient, put
from tests.integration.export.test_deleted import delete, export, listed, since_now
from tests.integration.export.test_export import (
    approve_over_http,
    events,
    files,
    kick_off,
    officer,
    status,
)

pytestmark = pytest.mark.postgres

#: HIV disease as ICD-10: a diagnosis an integration client may not see.
HIV = {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "B20"}]}


def _condition(condition_id: str, patient_id: str, code: dict[str, object]) -> dict[str, object]:
    return {
        "resourceType": "Condition",
        "id": condition_id,
        "code": code,
        "subject": {"reference": f"Patient/{patient_id}"},
    }


def test_an_erased_patients_deletions_are_not_listed(clinic: Clinic) -> None:
    """Erased (data key shredded) after a record of theirs was deleted: the deletion is
    no more listed than their records are exported, and no entry names them."""
    token = clinic.client("exporter", "system/*.read")
    erased = clinic.mine[1]
    since = since_now(clinic, token)
    delete(clinic, "Observation", f"o-{erased}-1", f"o-{clinic.mine[2]}-1")
    pseudonym = clinic.services.vault.locate("Patient", erased).head.patient_pseudonym
    assert pseudonym is not None and clinic.services.keys is not None
    clinic.services.contain.erase_patient(
        officer(clinic.officers[0]), pseudonym, "patient asked", clinic.services.keys
    )
    job_id, manifest = export(clinic, token, f"/fhir/Patient/$export?_since={since}")
    assert listed(clinic, token, manifest) == [f"Observation/o-{clinic.mine[2]}-1"]
    assert pseudonym not in {e.patient_pseudonym for e in events(clinic, Tag.FHIR_EXPORT, job_id)}


def test_a_client_granted_patients_only_exports_nothing_and_is_told_no_deletion(
    clinic: Clinic,
) -> None:
    """A backend app granted ``system/Patient.read`` asks ``_since``: bulk export takes
    ``system/*.read``, so it is refused before any job (no list of deletions)."""
    token = clinic.client("exporter", "system/Patient.read")
    delete(clinic, "Observation", f"o-{clinic.mine[0]}-1")
    refused = clinic.web.get(
        "/fhir/Patient/$export?_since=2000-01-01T00:00:00Z",
        headers={"Authorization": f"Bearer {token}", "Prefer": "respond-async"},
    )
    assert refused.status_code == 403, refused.text


def test_a_deleted_hiv_diagnosis_is_not_listed_to_a_client_that_may_not_see_it(
    clinic: Clinic,
) -> None:
    patient_id = clinic.mine[3]
    put(
        clinic.services,
        _condition("c-hiv", patient_id, HIV),
        _condition("c-flu", patient_id, {"text": "influenza"}),
    )
    token = clinic.client("exporter", "system/*.read")
    _, first = export(clinic, token, "/fhir/Patient/$export?_type=Condition")
    assert [c["id"] for c in files(clinic, token, first)["Condition"]] == ["c-flu"]
    delete(clinic, "Condition", "c-hiv", "c-flu")
    since = quote(first["transactionTime"])
    _, manifest = export(clinic, token, f"/fhir/Patient/$export?_since={since}")
    assert listed(clinic, token, manifest) == ["Condition/c-flu"]


def test_a_record_corrected_to_hiv_then_deleted_is_not_listed(clinic: Clinic) -> None:
    """Judged on the version the deletion ended, not an earlier one the client saw."""
    patient_id = clinic.mine[4]
    put(clinic.services, _condition("c-later-hiv", patient_id, {"text": "influenza"}))
    token = clinic.client("exporter", "system/*.read")
    since = since_now(clinic, token)
    put(clinic.services, _condition("c-later-hiv", patient_id, HIV))
    delete(clinic, "Condition", "c-later-hiv")
    _, manifest = export(clinic, token, f"/fhir/Patient/$export?_since={since}")
    assert manifest["deleted"] == []


def test_another_clinics_patient_deleted_and_their_id_used_again_is_not_listed(
    clinic: Clinic,
) -> None:
    """The other clinic's patient and records deleted, then the id written again by the
    other clinic: nothing of theirs is the client's, before or after."""
    token = clinic.client("exporter", "system/*.read")
    since = since_now(clinic, token)
    gone = clinic.other[0]
    delete(clinic, "Observation", f"o-{gone}-1", f"o-{gone}-2")
    delete(clinic, "Patient", gone)
    _, manifest = export(clinic, token, f"/fhir/Patient/$export?_since={since}")
    assert manifest["deleted"] == [] and manifest["output"] == []
    put(clinic.services, patient(gone, OTHER, "Again"))
    _, again = export(clinic, token, f"/fhir/Patient/$export?_since={since}")
    assert again["deleted"] == [] and again["output"] == []
    # A group export of the other clinic by a client of this one is refused outright.
    refused = clinic.web.get(
        f"/fhir/Group/{OTHER}/$export?_since={since}",
        headers={"Authorization": f"Bearer {token}", "Prefer": "respond-async"},
    )
    assert refused.status_code in (403, 404), refused.text


def test_a_record_deleted_and_written_again_is_output_not_listed(clinic: Clinic) -> None:
    token = clinic.client("exporter", "system/*.read")
    since = since_now(clinic, token)
    record = f"o-{clinic.mine[1]}-2"
    delete(clinic, "Observation", record)
    put(clinic.services, observation(record, clinic.mine[1], "70.00"))
    _, manifest = export(clinic, token, f"/fhir/Patient/$export?_since={since}")
    assert manifest["deleted"] == []
    assert [o["id"] for o in files(clinic, token, manifest)["Observation"]] == [record]


def test_a_kick_off_for_the_whole_group_names_no_patient_of_another_clinic(
    clinic: Clinic,
) -> None:
    """System level, _since, by a client of one clinic: the other clinic's deletions
    are not listed, and its patients are not counted in the job's progress."""
    token = clinic.client("exporter", "system/*.read")
    since = since_now(clinic, token)
    for patient_id in clinic.other:
        delete(clinic, "Observation", f"o-{patient_id}-1", f"o-{patient_id}-2")
        delete(clinic, "Patient", patient_id)
    job_id = kick_off(clinic, token, f"/fhir/$export?_since={since}&_type=Patient,Observation")
    for staff in clinic.officers:
        assert approve_over_http(clinic, staff, job_id).status_code == 200
    clinic.work()
    manifest = status(clinic, token, job_id).json()
    [started] = events(clinic, Tag.EXPORT_STARTED, job_id)
    assert started.reason == f"{len(clinic.mine)} patients in reach"
    assert manifest["deleted"] == []


def test_a_deletion_before_the_start_is_listed_when_its_patient_goes_after_it(
    clinic: Clinic,
) -> None:
    """A record deleted after ``_since`` and before the export's transactionTime, whose
    patient is deleted while the export runs (after the transactionTime, before their
    batch): the patient was left out of the batches (deleted, and not before the
    transactionTime), so the deletion was not listed; and the next export ``_since``
    this one's transactionTime did not list it either (deleted before that time). The
    client kept the record for good."""
    exports = clinic.services.exports
    assert exports is not None
    exports.settings = replace(exports.settings, batch_patients=2)
    token = clinic.client("exporter", "system/*.read")
    since = since_now(clinic, token)
    leaving = clinic.mine[-1]
    delete(clinic, "Observation", f"o-{leaving}-1")
    job_id = kick_off(clinic, token, f"/fhir/Patient/$export?_since={since}")
    exports.approve(officer(clinic.officers[0]), job_id)
    assert clinic.work(max_batches=1) == 1  # started: the transactionTime is fixed
    delete(clinic, "Observation", f"o-{leaving}-2")
    delete(clinic, "Patient", leaving)
    while exports.job(job_id).status is not Status.COMPLETED:
        clinic.work(max_batches=1)
    manifest = status(clinic, token, job_id).json()
    assert listed(clinic, token, manifest) == [f"Observation/o-{leaving}-1"]
    [entry] = events(clinic, Tag.FHIR_EXPORT, job_id)
    assert entry.resource_id == leaving and entry.detail["deleted"] == {"Observation": 1}

    follow_up = quote(manifest["transactionTime"])
    _, later = export(clinic, token, f"/fhir/Patient/$export?_since={follow_up}")
    assert listed(clinic, token, later) == [f"Observation/o-{leaving}-2", f"Patient/{leaving}"]
