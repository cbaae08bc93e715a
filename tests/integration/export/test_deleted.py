"""The manifest's ``deleted`` (Bulk Data v2, export.html): an export ``_since`` a time lists
the records it would have returned that were deleted since, and only those: the same
``_type``, level, patients in reach and gate judgement as its output; each listed
patient in the ledger as an exported one is; stored, served and ended as the output is;
neither doubled nor lost when the worker is stopped mid-batch and run again."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest
from fhirclient.models.fhirinstant import FHIRInstant

from carevault.export.model import DELETED_TYPE, Status
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.ledger.events import Tag
from carevault.vault.writer import Delete
from tests.integration.access.browser import bearer
from tests.integration.export.conftest import (
    MINE,
    OTHER,
    SYSTEM,
    Clinic,
    observation,
    put,
    scope_of_client,
)
from tests.integration.export.test_export import (
    approve_over_http,
    events,
    files,
    kick_off,
    officer,
    status,
)

pytestmark = pytest.mark.postgres


def delete(clinic: Clinic, resource_type: str, *resource_ids: str) -> None:
    clinic.services.gate.write(
        SYSTEM, [Delete(RESOURCE_TYPES[resource_type], rid) for rid in resource_ids]
    )


def export(clinic: Clinic, token: str, path: str) -> tuple[str, dict[str, Any]]:
    """An export run to completion: its job id and manifest."""
    job_id = kick_off(clinic, token, path)
    assert clinic.services.exports is not None
    # As many officers as the job needs, each from their own session (a client of the
    # whole group needs two for any export).
    for staff in clinic.officers[: clinic.services.exports.job(job_id).approvals_needed]:
        assert approve_over_http(clinic, staff, job_id).status_code == 200
    clinic.work()
    done = status(clinic, token, job_id)
    assert done.status_code == 200, done.text
    manifest: dict[str, Any] = done.json()
    return job_id, manifest


def since_now(clinic: Clinic, token: str) -> str:
    """A ``_since`` as a client keeping in step has one: the transactionTime of its last
    export (a small one), quoted for a query string."""
    _, manifest = export(clinic, token, f"/fhir/Group/{MINE}/$export?_type=Patient")
    return quote(manifest["transactionTime"])


def listed(clinic: Clinic, token: str, manifest: dict[str, Any]) -> list[str]:
    """Every ``deleted`` file fetched with the token: the references its Bundles delete."""
    references: list[str] = []
    for item in manifest["deleted"]:
        assert item["type"] == "Bundle"
        path = item["url"].split("testserver", 1)[1]
        assert clinic.web.get(path).status_code == 401  # requiresAccessToken
        fetched = clinic.web.get(path, headers=bearer(token))
        assert fetched.status_code == 200, fetched.text
        assert fetched.headers["content-type"].startswith("application/fhir+ndjson")
        bundles = [json.loads(line) for line in fetched.content.splitlines()]
        assert len(bundles) == item["count"]
        for bundle in bundles:
            assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
            # When it was deleted: at or before the export's transactionTime.
            deleted_at = FHIRInstant(bundle["meta"]["lastUpdated"]).datetime
            assert deleted_at <= FHIRInstant(manifest["transactionTime"]).datetime
            for entry in bundle["entry"]:
                assert entry["request"]["method"] == "DELETE"
                references.append(entry["request"]["url"])
    return sorted(references)


def test_bundle_is_no_output_type_so_it_marks_the_files_of_deletions() -> None:
    assert DELETED_TYPE not in RESOURCE_TYPES


def test_only_deletions_in_the_exports_reach_and_types_are_listed(clinic: Clinic) -> None:
    token = clinic.client("exporter", "system/*.read")
    since = since_now(clinic, token)
    delete(clinic, "Observation", f"o-{clinic.mine[0]}-1", f"o-{clinic.other[0]}-1")
    # A Patient export by a client of one clinic: the other clinic's patient's deletion
    # is no more listed than their records are exported.
    _, manifest = export(clinic, token, f"/fhir/Patient/$export?_since={since}")
    assert listed(clinic, token, manifest) == [f"Observation/o-{clinic.mine[0]}-1"]
    # A type not asked for: its deletions are not listed either.
    _, only_patients = export(clinic, token, f"/fhir/Patient/$export?_type=Patient&_since={since}")
    assert only_patients["deleted"] == []


def test_a_deleted_record_withheld_from_the_client_is_not_listed(clinic: Clinic) -> None:
    """Judged as the live record was, on the version the deletion ended: a record the
    client's role may not see at all (labelled restricted) is not exported, and deleted,
    its type and id are not listed (they would tell that it existed)."""
    patient_id = clinic.mine[1]
    restricted = {
        **observation(f"o-{patient_id}-r", patient_id, "61.00"),
        "meta": {"security": [{"code": "R"}]},
    }
    put(clinic.services, restricted)
    token = clinic.client("exporter", "system/*.read")
    _, first = export(clinic, token, "/fhir/Patient/$export?_type=Observation")
    exported = [o["id"] for o in files(clinic, token, first)["Observation"]]
    assert restricted["id"] not in exported and f"o-{patient_id}-1" in exported
    delete(clinic, "Observation", restricted["id"], f"o-{patient_id}-1")
    since = quote(first["transactionTime"])
    _, manifest = export(clinic, token, f"/fhir/Patient/$export?_type=Observation&_since={since}")
    assert listed(clinic, token, manifest) == [f"Observation/o-{patient_id}-1"]


def test_a_group_export_lists_only_its_clinics_deletions(clinic: Clinic) -> None:
    token = clinic.client("exporter", "system/*.read", [MINE, OTHER])
    since = since_now(clinic, token)
    delete(clinic, "Observation", f"o-{clinic.mine[1]}-2", f"o-{clinic.other[1]}-2")
    _, manifest = export(clinic, token, f"/fhir/Group/{OTHER}/$export?_since={since}")
    assert listed(clinic, token, manifest) == [f"Observation/o-{clinic.other[1]}-2"]


def test_a_system_export_lists_deleted_directory_records_too(clinic: Clinic) -> None:
    """System level: the directory records deleted since are listed with the patients'
    (no one's patient data: one entry for them, as for the directory records exported)."""
    token = clinic.client("exporter", "system/*.read")
    since = since_now(clinic, token)
    delete(clinic, "Practitioner", "dr-wong")
    delete(clinic, "Observation", f"o-{clinic.mine[0]}-1", f"o-{clinic.other[0]}-1")
    job_id = kick_off(clinic, token, f"/fhir/$export?_since={since}")
    for staff in clinic.officers:
        assert approve_over_http(clinic, staff, job_id).status_code == 200
    clinic.work()
    manifest = status(clinic, token, job_id).json()
    assert listed(clinic, token, manifest) == [
        f"Observation/o-{clinic.mine[0]}-1",
        "Practitioner/dr-wong",
    ]
    directory = [e for e in events(clinic, Tag.FHIR_EXPORT, job_id) if not e.patient_pseudonym]
    assert [e.detail["deleted"] for e in directory] == [{"Practitioner": 1}]


def test_without_since_or_before_it_no_deletion_is_listed(clinic: Clinic) -> None:
    token = clinic.client("exporter", "system/*.read")
    delete(clinic, "Observation", f"o-{clinic.mine[2]}-1")
    job_id, manifest = export(clinic, token, "/fhir/Patient/$export")
    assert manifest["deleted"] == []
    assert manifest["output"]
    # Deleted before the _since asked for: the client was told at its last export.
    since = quote(manifest["transactionTime"])
    _, after = export(clinic, token, f"/fhir/Patient/$export?_since={since}")
    assert after["deleted"] == []
    assert events(clinic, Tag.EXPORT_COMPLETED, job_id)[0].detail["deleted"] == 0


def test_a_deleted_patients_chart_is_listed_and_the_patient_is_in_the_ledger(
    clinic: Clinic,
) -> None:
    """A patient deleted since (after every record of theirs) is no longer among the
    patients in reach, yet their records must be dropped by the client too: the Patient
    and every record deleted since are listed, and the patient is in the ledger once, as
    a patient whose records were exported is (a release the incident scope counts)."""
    token = clinic.client("exporter", "system/*.read")
    gone, other = clinic.mine[3], clinic.other[0]
    since = since_now(clinic, token)
    for patient_id in (gone, other):
        delete(clinic, "Observation", f"o-{patient_id}-1", f"o-{patient_id}-2")
        delete(clinic, "Patient", patient_id)
    job_id, manifest = export(clinic, token, f"/fhir/Patient/$export?_since={since}")
    assert manifest["output"] == []
    assert listed(clinic, token, manifest) == [
        f"Observation/o-{gone}-1",
        f"Observation/o-{gone}-2",
        f"Patient/{gone}",
    ]
    recorded = events(clinic, Tag.FHIR_EXPORT, job_id)
    assert [(e.resource_id, e.principal) for e in recorded] == [(gone, "client:exporter")]
    [entry] = recorded
    assert entry.patient_pseudonym
    assert entry.detail["exported"] == {}
    assert entry.detail["deleted"] == {"Observation": 2, "Patient": 1}
    assert entry.categories == ()
    assert clinic.services.exports is not None
    job = clinic.services.exports.job(job_id)
    assert (job.patients_done, job.resources_done) == (1, 0)
    [completed] = events(clinic, Tag.EXPORT_COMPLETED, job_id)
    assert completed.detail["deleted"] == 3


def test_a_patient_with_a_deletion_and_a_change_has_one_entry_naming_both(
    clinic: Clinic,
) -> None:
    token = clinic.client("exporter", "system/*.read")
    patient_id = clinic.mine[4]
    since = since_now(clinic, token)
    delete(clinic, "Observation", f"o-{patient_id}-1")
    changed = observation(f"o-{patient_id}-2", patient_id, "80.00")
    put(clinic.services, changed)
    job_id, manifest = export(clinic, token, f"/fhir/Patient/$export?_since={since}")
    assert [o["id"] for o in files(clinic, token, manifest)["Observation"]] == [changed["id"]]
    assert listed(clinic, token, manifest) == [f"Observation/o-{patient_id}-1"]
    [entry] = events(clinic, Tag.FHIR_EXPORT, job_id)
    assert entry.resource_id == patient_id
    assert entry.detail["exported"] == {"Observation": 1}
    assert entry.detail["deleted"] == {"Observation": 1}
    assert entry.categories  # what the changed record showed


def test_a_patient_whose_only_news_is_a_deletion_is_in_an_incidents_scope(
    clinic: Clinic,
) -> None:
    """The id of a deleted record told to a client is a disclosure about its patient: an
    incident on the exporting client counts that patient among those released to it."""
    token = clinic.client("exporter", "system/*.read")
    since = since_now(clinic, token)
    after_since = datetime.now(UTC)
    delete(clinic, "Observation", f"o-{clinic.mine[0]}-1")
    job_id, manifest = export(clinic, token, f"/fhir/Patient/$export?_since={since}")
    assert manifest["output"] == []
    assert listed(clinic, token, manifest) == [f"Observation/o-{clinic.mine[0]}-1"]
    scope = scope_of_client(clinic, "exporter", after_since)
    confirmed = {line["patient"] for line in scope["tiers"]["confirmed"]}
    assert confirmed == {clinic.mine[0]}


def test_deletions_are_listed_once_when_a_batch_is_redone_after_a_failure(
    clinic: Clinic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch whose commit failed (as a kill between its files and its commit leaves
    it) is redone under the same names: each deletion is listed once, each patient in
    the ledger once. A deletion after the transactionTime is left to the next export."""
    exports = clinic.services.exports
    assert exports is not None
    exports.settings = replace(exports.settings, batch_patients=2)
    token = clinic.client("exporter", "system/*.read")
    since = since_now(clinic, token)
    first = [f"o-{p}-1" for p in clinic.mine]
    delete(clinic, "Observation", *first)
    job_id = kick_off(clinic, token, f"/fhir/Patient/$export?_since={since}")
    exports.approve(officer(clinic.officers[0]), job_id)
    assert clinic.work(max_batches=1) == 1
    # After the start (the transactionTime): not this export's to list.
    late = f"o-{clinic.mine[-1]}-2"
    delete(clinic, "Observation", late)

    add_files = exports.jobs.add_files
    failures = []

    def fail_once(*args: Any, **kwargs: Any) -> None:
        if not failures:
            failures.append(args)
            raise RuntimeError("killed before the commit")
        add_files(*args, **kwargs)

    monkeypatch.setattr(exports.jobs, "add_files", fail_once)
    with pytest.raises(RuntimeError):
        clinic.work(max_batches=1)
    assert failures
    while exports.job(job_id).status is not Status.COMPLETED:
        clinic.work(max_batches=1)
    manifest = status(clinic, token, job_id).json()
    assert listed(clinic, token, manifest) == sorted(f"Observation/{o}" for o in first)
    assert len(manifest["deleted"]) == 3  # one file per batch of two patients
    pseudonyms = [e.patient_pseudonym for e in events(clinic, Tag.FHIR_EXPORT, job_id)]
    assert len(pseudonyms) == len(set(pseudonyms)) == len(clinic.mine)

    # The next export _since this one's transactionTime lists the late deletion.
    follow_up = quote(manifest["transactionTime"])
    _, later = export(clinic, token, f"/fhir/Patient/$export?_since={follow_up}")
    assert listed(clinic, token, later) == [f"Observation/{late}"]


def test_the_deleted_files_are_deleted_with_the_job(clinic: Clinic) -> None:
    token = clinic.client("exporter", "system/*.read")
    since = since_now(clinic, token)
    delete(clinic, "Observation", f"o-{clinic.mine[0]}-2")
    job_id, manifest = export(clinic, token, f"/fhir/Patient/$export?_since={since}")
    [item] = manifest["deleted"]
    path = item["url"].split("testserver", 1)[1]
    [written] = [
        e for e in events(clinic, Tag.EXPORT_FILE_WRITTEN, job_id) if e.detail["type"] == "Bundle"
    ]
    assert written.detail["count"] == 1
    exports = clinic.services.exports
    assert exports is not None
    # Sealed at rest: the record's id is not in the stored file.
    for stored in (exports.files.root / job_id).iterdir():
        assert f"o-{clinic.mine[0]}-2".encode() not in stored.read_bytes()
    cancelled = clinic.web.delete(f"/fhir/$export-status/{job_id}", headers=bearer(token))
    assert cancelled.status_code == 202
    assert not exports.files.exists(job_id)
    assert clinic.web.get(path, headers=bearer(token)).status_code == 404


def test_a_patient_deleted_while_the_export_runs_still_has_earlier_deletions_listed(
    clinic: Clinic,
) -> None:
    """Bulk Data v2 (export.html, ``deleted``): with ``_since``, the files SHALL list the
    resources that would have been returned but were deleted since. A record of a patient
    deleted in (``_since``, transactionTime] was judged by its patient being among those
    covered, and a Patient deleted *after* the transactionTime but before its batch was
    read was covered by neither clause (not live, not deleted by the transactionTime): the
    record's deletion was in no export, this one (patient not covered) nor the next (the
    deletion before its ``_since``), so a client kept the record for ever. Replaying each
    export's output and then its deletions, the client must end with none of the patient."""
    exports = clinic.services.exports
    assert exports is not None
    exports.settings = replace(exports.settings, batch_patients=2)
    token = clinic.client("exporter", "system/*.read")
    since = since_now(clinic, token)
    gone = clinic.mine[-1]  # in the last batch of the patients at MINE (by row)
    delete(clinic, "Observation", f"o-{gone}-1")  # after _since, before the export starts
    job_id = kick_off(clinic, token, f"/fhir/Patient/$export?_since={since}")
    exports.approve(officer(clinic.officers[0]), job_id)
    assert clinic.work(max_batches=1) == 1  # started (transactionTime), first batch done
    # While it runs, the rest of the chart and the patient are deleted.
    delete(clinic, "Observation", f"o-{gone}-2")
    delete(clinic, "Patient", gone)
    clinic.work()
    manifest = status(clinic, token, job_id).json()
    assert listed(clinic, token, manifest) == [f"Observation/o-{gone}-1"]
    follow_up = quote(manifest["transactionTime"])
    _, later = export(clinic, token, f"/fhir/Patient/$export?_since={follow_up}")
    assert listed(clinic, token, later) == [f"Observation/o-{gone}-2", f"Patient/{gone}"]
