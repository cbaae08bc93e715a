"""``$import`` jobs as integration clients discover and meet them: declared in the
CapabilityStatement, one job queued or running per client (as exports), and a job's
report (the journal's counts and refusals by line) deleted a set time after it ends."""

from __future__ import annotations

from dataclasses import replace

import pytest
from fhirclient.models.capabilitystatement import CapabilityStatement
from fhirclient.models.operationdefinition import OperationDefinition
from sqlalchemy import func, select

from carevault.bulk.tables import bulk_import_file, bulk_import_rejection
from carevault.db import read_transaction
from carevault.importjobs.model import Status
from carevault.ledger.events import Tag
from tests.integration.access.browser import bearer
from tests.integration.export.conftest import MINE, patient
from tests.integration.importjobs.conftest import NDJSON, Clinic
from tests.integration.importjobs.test_import_api import ndjson
from tests.support.jobs import assert_one_of_racing_kick_offs_stored

pytestmark = pytest.mark.postgres


def test_the_capability_statement_declares_import_and_its_definition_resolves(
    clinic: Clinic,
) -> None:
    statement = clinic.web.get("/fhir/metadata").json()
    [rest] = statement["rest"]
    operations = {item["name"]: item for item in rest["operation"]}
    assert {"export", "import"} <= set(operations)
    definition_url = operations["import"]["definition"]
    assert definition_url.endswith("/fhir/OperationDefinition/import")
    # Its definition is served where it says, to anyone (as the metadata is).
    found = clinic.web.get("/fhir/OperationDefinition/import")
    assert found.status_code == 200
    definition = found.json()
    assert definition["resourceType"] == "OperationDefinition"
    assert (definition["code"], definition["url"]) == ("import", definition_url)
    assert definition["system"] is True and definition["kind"] == "operation"
    # Both as strict R4 (fhirclient's models), as clients read them.
    OperationDefinition(definition, strict=True)
    CapabilityStatement(statement, strict=True)


def test_a_client_has_one_import_queued_or_running_at_a_time(clinic: Clinic) -> None:
    """A second kick-off while the first is queued or running is refused with 429 and
    Retry-After (recorded, nothing stored), so one client cannot queue job after job;
    other clients are not held up, and once the first has ended the client may send
    another."""
    token = clinic.client("importer")
    first = clinic.kick_off(token, ndjson(patient("p1", MINE, "Chan")))
    again = clinic.web.post(
        "/fhir/$import",
        content=ndjson(patient("p2", MINE, "Ma")),
        headers={**bearer(token), **NDJSON},
    )
    assert again.status_code == 429, again.text
    assert int(again.headers["retry-after"]) > 0
    issue = again.json()["issue"][0]
    assert issue["code"] == "throttled" and first in issue["diagnostics"]
    refused = clinic.events(Tag.IMPORT_REFUSED)
    assert [e.detail["status"] for e in refused] == [429]
    assert [job.job_id for job in clinic.imports.jobs.all()] == [first]
    assert not any(path.name != first for path in clinic.imports.files.root.iterdir())

    other = clinic.kick_off(clinic.client("another-feed"), ndjson(patient("p3", MINE, "Ho")))
    clinic.work()
    assert clinic.imports.job(first).status is Status.COMPLETED
    second = clinic.kick_off(token, ndjson(patient("p2", MINE, "Ma")))
    assert {first, second, other} == {job.job_id for job in clinic.imports.jobs.all()}


def test_two_import_kick_offs_at_once_store_one_job(clinic: Clinic) -> None:
    """The in-progress check and the insert are one step (the export's, shared): of
    kick-offs racing from several threads for one client, exactly one job is stored."""
    store = clinic.imports.jobs
    row = {
        "client_id": "racer",
        "principal": "client:racer",
        "session_id": None,
        "caller": "{}",
        "status": str(Status.QUEUED),
        "digest": "0" * 64,
        "lines_total": 1,
        "size": 1,
        "requested_us": 1,
        "updated_us": 1,
    }
    assert_one_of_racing_kick_offs_stored(store, row)


def _journal_rows(clinic: Clinic, digest: str) -> tuple[int, int]:
    with read_transaction(clinic.services.engine) as connection:
        files = connection.execute(
            select(func.count())
            .select_from(bulk_import_file)
            .where(bulk_import_file.c.file_sha256 == digest)
        ).scalar_one()
        refusals = connection.execute(
            select(func.count())
            .select_from(bulk_import_rejection)
            .where(bulk_import_rejection.c.file_sha256 == digest)
        ).scalar_one()
    return int(files), int(refusals)


@pytest.mark.parametrize("ending", ["completed", "cancelled", "failed"])
def test_an_ended_jobs_report_is_deleted_after_the_set_time(clinic: Clinic, ending: str) -> None:
    """The journal's progress and refusal rows (reasons by line) of a job that ended
    however it ended are deleted once kept for the set time (the export files'
    ``export_keep_hours``), with its body and key; the job stays, as ``expired``, and
    its status URL answers 404."""
    imports = clinic.imports
    imports.settings = replace(imports.settings, batch_lines=1)
    token = clinic.client("importer")
    body = ndjson(patient("p1", MINE, "Chan")) + b"not json\n" + ndjson(patient("p2", MINE, "Ma"))
    job_id = clinic.kick_off(token, body)
    if ending == "completed":
        clinic.work()
    else:
        assert clinic.work(max_batches=2) == 2
        job = imports.job(job_id)
        if ending == "cancelled":
            assert imports.cancel(job, "client:importer")
        else:
            assert imports.stop(job, "a drill")
    job = imports.job(job_id)
    assert str(job.status) == ending
    assert _journal_rows(clinic, job.digest) == (1, 1)
    assert imports.expire() == 0  # not yet: kept for the set time
    assert clinic.status(token, job_id).status_code in (200, 500)

    imports.settings = replace(imports.settings, keep_us=0)
    assert imports.expire() == 1
    assert imports.expire() == 0
    assert _journal_rows(clinic, job.digest) == (0, 0)
    assert imports.job(job_id).status is Status.EXPIRED
    assert not imports.files.exists(job_id)
    keys = clinic.services.keys
    assert keys is not None and keys.shredded([job.key_id]) == {job.key_id}
    gone = clinic.status(token, job_id)
    assert gone.status_code == 404 and gone.json()["resourceType"] == "OperationOutcome"
    [expired] = clinic.events(Tag.IMPORT_EXPIRED, job_id)
    assert expired.detail["was"] == ending


def test_the_worker_expires_reports_and_leaves_jobs_in_progress_alone(clinic: Clinic) -> None:
    imports = clinic.imports
    token = clinic.client("importer")
    done = clinic.kick_off(token, ndjson(patient("p1", MINE, "Chan")))
    clinic.work()
    imports.settings = replace(imports.settings, keep_us=0)
    queued = clinic.kick_off(clinic.client("other-feed"), ndjson(patient("p2", MINE, "Ma")))
    # The worker's poll expires first, then runs what is queued (which is not expired).
    clinic.work()
    assert imports.job(done).status is Status.EXPIRED
    assert imports.job(queued).status is Status.COMPLETED
