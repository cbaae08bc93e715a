"""An ``$import`` job's status (its report) and its cancellation are protected as its
kick-off is, as an export's status and files are (Bulk Data v2, Privacy and Security:
status requests "SHALL be protected the same way the Bulk Data Kick-off Request").
Integrator round 60 left it open: any token of the kick-off's client, one granted only
reads included, read the report (line numbers and refusal reasons) and cancelled the
job."""

from __future__ import annotations

import json

import pytest
from httpx import Response

from carevault.importjobs.model import Status
from carevault.ledger.events import Outcome, Tag
from tests.integration.access.browser import basic, bearer
from tests.integration.export.conftest import MINE, OTHER, patient
from tests.integration.importjobs.conftest import WRITER, Clinic
from tests.integration.importjobs.test_import_api import ndjson, outcome_of

pytestmark = pytest.mark.postgres

CHALLENGE = 'Bearer realm="carevault", error="insufficient_scope"'
READS = "system/*.rs"


def _tokens(clinic: Clinic, client_id: str) -> tuple[str, str, str]:
    """One client registered to write (``system/*.cruds``): a token granted all of it,
    one that asked for reads only (as a service asking per task does), and a later
    token granted all of it (another session, as after the first one expired)."""
    _, secret = clinic.services.admin.add_client(
        "admin:test",
        client_id,
        "Importer",
        confidential=True,
        scopes=WRITER,
        clinic_ids=[MINE],
    )
    assert secret
    tokens = []
    for scope in (WRITER, READS, WRITER):
        response = clinic.web.post(
            "/auth/token",
            data={"grant_type": "client_credentials", "scope": scope},
            headers=basic(client_id, secret),
        )
        assert response.status_code == 200, response.text
        assert response.json()["scope"] == scope
        tokens.append(response.json()["access_token"])
    return tokens[0], tokens[1], tokens[2]


def _refused_for_scope(response: Response) -> None:
    assert response.status_code == 403, response.text
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert "system/<type>.c or .u" in body["issue"][0]["diagnostics"]
    assert response.headers["www-authenticate"] == CHALLENGE


def test_a_token_of_the_client_granted_no_writes_neither_reads_the_report_nor_cancels(
    clinic: Clinic,
) -> None:
    """The importer's token that asked for reads only polled the job (``202``), then read
    its report (``200``: counts, refused line numbers and why) and cancelled it (``202``).
    Now each is refused as the kick-off would refuse that token: ``403``, an
    OperationOutcome with RFC 6750's ``insufficient_scope`` challenge, an
    ``bulk:import:refused`` entry naming the job; the job is untouched."""
    writer, reader, _ = _tokens(clinic, "importer")
    body = ndjson(patient("p-mine", MINE, "Ho"), patient("p-theirs", OTHER, "Ng"))
    job_id = clinic.kick_off(writer, body)
    status_url = f"/fhir/$import-status/{job_id}"

    _refused_for_scope(clinic.status(reader, job_id))
    _refused_for_scope(clinic.web.delete(status_url, headers=bearer(reader)))
    assert clinic.imports.job(job_id).status is Status.QUEUED
    assert not clinic.events(Tag.IMPORT_CANCELLED, job_id)

    clinic.work()
    assert clinic.imports.job(job_id).status is Status.COMPLETED
    report = clinic.status(reader, job_id)
    _refused_for_scope(report)
    assert "accepted" not in report.text and "line 2" not in report.text

    refusals = clinic.events(Tag.IMPORT_REFUSED, job_id)
    assert len(refusals) == 3, refusals
    assert {(e.principal, e.outcome) for e in refusals} == {("client:importer", Outcome.DENIED)}
    assert [e.reason.split(" needs ")[0] for e in refusals] == [
        "an import's status",
        "cancelling an import",
        "an import's status",
    ]
    # The token granted writes still reads the whole report.
    whole = outcome_of(clinic, writer, job_id)
    assert "1 accepted, 1 rejected" in json.dumps(whole)


def test_guard_another_clients_token_is_told_nothing_and_a_later_writer_token_cancels(
    clinic: Clinic,
) -> None:
    """Kept as it was (so no proof of the change): the job is looked up as the caller's
    first, so another client's read-only token gets ``404`` as a missing job, never the
    ``403`` that would say the job exists; a later token of the importer granted writes
    (another session) polls and cancels."""
    writer, _, later = _tokens(clinic, "importer")
    _, stranger, _ = _tokens(clinic, "someone-else")
    job_id = clinic.kick_off(writer, ndjson(patient("p1", MINE, "Chan")))
    status_url = f"/fhir/$import-status/{job_id}"

    assert clinic.status(stranger, job_id).status_code == 404
    assert clinic.web.delete(status_url, headers=bearer(stranger)).status_code == 404
    assert not clinic.events(Tag.IMPORT_REFUSED, job_id)

    polled = clinic.status(later, job_id)
    assert polled.status_code == 202 and polled.headers["x-progress"] == "queued"
    assert clinic.web.delete(status_url, headers=bearer(later)).status_code == 202
    assert clinic.imports.job(job_id).status is Status.CANCELLED
    assert len(clinic.events(Tag.IMPORT_CANCELLED, job_id)) == 1
