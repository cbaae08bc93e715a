"""Adversary round 78: what an export's files release, and when the ledger says so.

An export's records are in the ledger (``fhir:resource:export``, one entry per patient)
when the worker writes them, sealed, to the job's files. They leave when the client
downloads them, which may be days later and from anyone holding the client's secret by
then. An incident declared on the client from a moment after the files were written
(the secret stolen afterwards) had to list every patient whose records the thief
fetched, with the categories the files held; and their access reports had to show it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from carevault.ledger.events import Tag
from tests.integration.access.browser import bearer
from tests.integration.export.conftest import MINE, Clinic, scope_of_client
from tests.integration.export.test_deleted import delete, export, since_now
from tests.integration.export.test_export import events

pytestmark = pytest.mark.postgres


def fetch_all(clinic: Clinic, token: str, items: list[dict[str, Any]]) -> None:
    for item in items:
        path = item["url"].split("testserver", 1)[1]
        fetched = clinic.web.get(path, headers=bearer(token))
        assert fetched.status_code == 200, fetched.text


def test_files_fetched_after_the_compromise_put_their_patients_in_its_scope(
    clinic: Clinic,
) -> None:
    """The files of an export written before the secret was stolen, fetched after: every
    patient in them is in the scope as confirmed, with what the files held."""
    token = clinic.client("exporter", "system/*.read")
    job_id, manifest = export(clinic, token, f"/fhir/Group/{MINE}/$export")
    assert {item["type"] for item in manifest["output"]} == {"Patient", "Observation"}
    time.sleep(0.01)
    stolen = datetime.now(UTC)
    time.sleep(0.01)
    fetch_all(clinic, token, manifest["output"])
    document = scope_of_client(clinic, "exporter", stolen)
    confirmed = {
        line["patient"]: set(line["categories"]) for line in document["tiers"]["confirmed"]
    }
    assert set(confirmed) == set(clinic.mine)
    for categories in confirmed.values():
        # The Patient file's name and the Observation file's weights.
        assert {"identity", "clinical"} <= categories


def test_one_file_fetched_names_only_its_patients_and_what_it_held(clinic: Clinic) -> None:
    """Fetching the Patient file alone releases identity, not the weights of the
    Observation file left unfetched; a file fetched twice is named twice (each time it
    left)."""
    token = clinic.client("exporter", "system/*.read")
    _, manifest = export(clinic, token, f"/fhir/Group/{MINE}/$export")
    (patients,) = [item for item in manifest["output"] if item["type"] == "Patient"]
    time.sleep(0.01)
    stolen = datetime.now(UTC)
    time.sleep(0.01)
    fetch_all(clinic, token, [patients, patients])
    document = scope_of_client(clinic, "exporter", stolen)
    confirmed = {line["patient"]: line for line in document["tiers"]["confirmed"]}
    assert set(confirmed) == set(clinic.mine)
    for line in confirmed.values():
        assert "identity" in line["categories"]
        assert "clinical" not in line["categories"]
        assert len(line["evidence"]) == 2


def test_a_deleted_file_fetched_after_the_compromise_puts_its_patient_in_scope(
    clinic: Clinic,
) -> None:
    """The ``deleted`` file names its patients' record ids: fetched after the compromise,
    its patient is in the scope as the export's entry counted them (no category)."""
    token = clinic.client("exporter", "system/*.read")
    since = since_now(clinic, token)
    delete(clinic, "Observation", f"o-{clinic.mine[0]}-1")
    _, manifest = export(clinic, token, f"/fhir/Patient/$export?_since={since}")
    assert manifest["output"] == []
    time.sleep(0.01)
    stolen = datetime.now(UTC)
    time.sleep(0.01)
    fetch_all(clinic, token, manifest["deleted"])
    document = scope_of_client(clinic, "exporter", stolen)
    assert {line["patient"] for line in document["tiers"]["confirmed"]} == {clinic.mine[0]}


def test_a_fetched_file_is_in_its_patients_access_report(clinic: Clinic) -> None:
    """Each download is in the patient's own access report, naming the client, after
    the export's own line (the file written)."""
    token = clinic.client("exporter", "system/*.read")
    _, manifest = export(clinic, token, f"/fhir/Group/{MINE}/$export?_type=Patient")
    fetch_all(clinic, token, manifest["output"])
    clinic.services.audit_ledger.checkpoints.make("test")
    headers = clinic.officers[0].headers
    url = f"/audit/patients/{clinic.mine[0]}/access-report"
    response = clinic.web.get(url, headers=headers)
    assert response.status_code == 200, response.text
    actions = [line["action"] for line in response.json()["accesses"]]
    assert actions.count(Tag.FHIR_EXPORT.value) == 1
    assert actions.count(Tag.EXPORT_FILE_RELEASED.value) == 1


def test_guard_the_note_of_whose_records_a_file_holds_is_never_served(clinic: Clinic) -> None:
    """The sealed note beside a batch's files is not one of the job's files: asked for by
    name with the client's own token, 404; it is in no manifest."""
    token = clinic.client("exporter", "system/*.read")
    job_id, manifest = export(clinic, token, f"/fhir/Group/{MINE}/$export")
    names = [item["url"].rsplit("/", 1)[1] for item in manifest["output"]]
    assert not any("released" in name for name in names)
    asked = clinic.web.get(
        f"/fhir/$export-file/{job_id}/000001-released.ndjson", headers=bearer(token)
    )
    assert asked.status_code == 404


def test_a_file_whose_note_is_gone_is_refused_and_the_refusal_is_recorded(
    clinic: Clinic,
) -> None:
    """A batch without its note (written before downloads were attributed, or the note
    lost): whom its files would release is not known, so they are not served (404,
    "export again"), and the refusal is in the ledger as the client's, as a held
    download's is (the second review of stop 61: it left no trace)."""
    token = clinic.client("exporter", "system/*.read")
    job_id, manifest = export(clinic, token, f"/fhir/Group/{MINE}/$export")
    exports = clinic.services.exports
    assert exports is not None
    [note] = list((exports.files.root / job_id).glob("000001-released*"))
    note.unlink()
    path = manifest["output"][0]["url"].split("testserver", 1)[1]

    fetched = clinic.web.get(path, headers=bearer(token))

    assert fetched.status_code == 404, fetched.text
    assert "export again" in fetched.text
    [refused] = events(clinic, Tag.EXPORT_REFUSED, job_id)
    assert "export again" in refused.reason
    assert refused.principal.endswith("exporter")
    assert not events(clinic, Tag.EXPORT_DOWNLOADED, job_id)
