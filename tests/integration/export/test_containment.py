"""Containment reaches an export in flight: a job whose client is revoked, whose
integration account is suspended (by an officer or by detection), or whose session was
ended, stops before its next batch, says why, and leaves no file to download; and an
approved export's entries are explained by its approval, not judged as bulk reading."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest

from carevault.containment.state import Mode
from carevault.detect import alerts_as_dicts
from carevault.detect.alerts import Alert, Raised
from carevault.detect.model import Severity
from carevault.domain.roles import Role
from carevault.export.model import Status
from carevault.export.worker import ExportWorker
from carevault.ledger.events import Tag
from tests.integration.access.browser import basic, bearer
from tests.integration.export.conftest import MINE, Clinic, patient, put
from tests.integration.export.test_export import (
    approve_and_run,
    events,
    kick_off,
    officer,
    status,
)
from tests.support.staff import make_staff

pytestmark = pytest.mark.postgres


def bound_client(clinic: Clinic, client_id: str) -> tuple[str, str]:
    """A client-credentials token of an app acting for an integration account, and the
    account's username."""
    account = make_staff(clinic.services, Role.INTEGRATION, [MINE]).account.username
    _, secret = clinic.services.admin.add_client(
        "admin:test",
        client_id,
        "Exporter",
        confidential=True,
        scopes="system/*.read",
        clinic_ids=[MINE],
        account=account,
    )
    assert secret
    response = clinic.web.post(
        "/auth/token",
        data={"grant_type": "client_credentials", "scope": "system/*.read"},
        headers=basic(client_id, secret),
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"]), account


def one_batch_in(clinic: Clinic, token: str) -> str:
    """A job approved and one batch (two patients) into its run."""
    exports = clinic.services.exports
    assert exports is not None
    exports.settings = replace(exports.settings, batch_patients=2)
    job_id = kick_off(clinic, token)
    exports.approve(officer(clinic.officers[0]), job_id)
    assert clinic.work(max_batches=1) == 1
    assert exports.job(job_id).status is Status.RUNNING
    return job_id


def assert_stopped(clinic: Clinic, job_id: str, why: str) -> None:
    """Failed with ``why`` in its error and in the ledger, no file left, the key gone,
    and no patient exported after the first batch."""
    exports, keys = clinic.services.exports, clinic.services.keys
    assert exports is not None and keys is not None
    job = exports.job(job_id)
    assert job.status is Status.FAILED
    assert job.error is not None and job.error.startswith("stopped: ") and why in job.error
    assert exports.output(job) == []
    assert not exports.files.exists(job_id)
    assert keys.shredded([job.key_id]) == {job.key_id}
    stopped = events(clinic, Tag.EXPORT_STOPPED, job_id)
    assert len(stopped) == 1 and why in stopped[0].reason
    assert len(events(clinic, Tag.FHIR_EXPORT, job_id)) == 2


def revoke_client(clinic: Clinic, client_id: str, _: str) -> None:
    clinic.services.contain.start(
        officer(clinic.officers[1]), Mode.CLIENT_REVOKED, client_id, "leaked secret"
    )


def suspend_account(clinic: Clinic, _: str, account: str) -> None:
    clinic.services.contain.start(
        officer(clinic.officers[1]), Mode.ACCOUNT_SUSPENDED, account, "compromised"
    )


def end_sessions(clinic: Clinic, client_id: str, _: str) -> None:
    clinic.services.sessions.revoke_all(client_id=client_id, reason="step-up: alert 1")


@pytest.mark.parametrize(
    ("contain", "why"),
    [
        (revoke_client, "client app revoked"),
        (suspend_account, "integration account is suspended"),
        (end_sessions, "session revoked"),
    ],
    ids=["client-revoked", "account-suspended", "sessions-ended"],
)
def test_containment_stops_an_export_in_flight(
    clinic: Clinic, contain: Callable[[Clinic, str, str], None], why: str
) -> None:
    token, account = bound_client(clinic, "exporter")
    job_id = one_batch_in(clinic, token)

    contain(clinic, "exporter", account)
    assert clinic.work() == 0

    assert_stopped(clinic, job_id, why)


def test_a_worker_holding_the_job_stops_before_its_next_batch(clinic: Clinic) -> None:
    """The sweep at the start of a poll is not what stops it: the check before each batch
    is (the principal is contained between two batches of one run)."""
    exports = clinic.services.exports
    assert exports is not None
    token, account = bound_client(clinic, "exporter")
    job_id = one_batch_in(clinic, token)
    job = exports.jobs.claim("other-worker", exports.now_us(), exports.settings.lease_us)
    assert job is not None and job.job_id == job_id
    # Suspended without going through the admin service: its sessions stay as they were,
    # as seen by a process whose cached session state is not yet stale.
    clinic.services.accounts.set_suspended(account, True)
    assert ExportWorker(exports, "other-worker")._run(job, None) == 0
    assert_stopped(clinic, job_id, "integration account is suspended")


def test_detection_suspending_the_client_stops_its_export(clinic: Clinic) -> None:
    """Detection's automatic response to a high alert on the client (the app revoked)
    reaches the running job."""
    detection = clinic.services.detection
    assert detection is not None
    token = clinic.client("exporter", "system/*.read")
    job_id = one_batch_in(clinic, token)
    alert = Alert(
        alert_id=1,
        case_key="client:exporter",
        detector="breadth",
        severity=Severity.HIGH,
        account=None,
        role="integration",
        client="exporter",
        session=None,
        source_address=None,
        patient_count=0,
        patients=(),
        first_position=None,
        last_position=None,
        raised_us=exports_now(clinic),
        updated_us=exports_now(clinic),
        action=None,
        containment_id=None,
        status="open",
        explanation="test",
        handled_by=None,
    )
    detection.responder([Raised(alert, new=True)])
    assert any(c.mode is Mode.CLIENT_REVOKED for c in clinic.services.containment.refresh().active)
    assert clinic.work() == 0
    assert_stopped(clinic, job_id, "client app revoked")


def exports_now(clinic: Clinic) -> int:
    assert clinic.services.exports is not None
    return clinic.services.exports.now_us()


def test_a_completed_export_of_a_contained_client_cannot_be_downloaded(clinic: Clinic) -> None:
    """A token issued before the suspension (and a session state cached by a server
    process) must fetch nothing: the download judges the job's principal afresh."""
    exports = clinic.services.exports
    assert exports is not None
    token, account = bound_client(clinic, "exporter")
    job_id = kick_off(clinic, token)
    approve_and_run(clinic, job_id)
    manifest = status(clinic, token, job_id).json()
    path = manifest["output"][0]["url"].split("testserver", 1)[1]
    assert clinic.web.get(path, headers=bearer(token)).status_code == 200

    clinic.services.accounts.set_suspended(account, True)  # no session ended, no cache cleared
    refused = clinic.web.get(path, headers=bearer(token))

    assert refused.status_code in (401, 404), refused.text
    assert not refused.headers["content-type"].startswith("application/fhir+ndjson")
    clinic.work()  # a poll's sweep stops it even if no download tried
    job = exports.job(job_id)
    assert job.status is Status.FAILED and "suspended" in (job.error or "")
    assert not exports.files.exists(job_id)
    assert len(events(clinic, Tag.EXPORT_DOWNLOADED, job_id)) == 1


def test_a_pending_request_of_a_revoked_client_ends_and_cannot_be_approved(
    clinic: Clinic,
) -> None:
    exports = clinic.services.exports
    assert exports is not None
    token, _ = bound_client(clinic, "exporter")
    job_id = kick_off(clinic, token)
    revoke_client(clinic, "exporter", "")
    clinic.work()
    assert exports.job(job_id).status is Status.FAILED
    with pytest.raises(ValueError, match="not awaiting approval"):
        exports.approve(officer(clinic.officers[0]), job_id)
    assert not events(clinic, Tag.FHIR_EXPORT, job_id)


def test_a_stopped_job_reads_as_failed_to_the_officer_and_to_a_reinstated_client(
    clinic: Clinic,
) -> None:
    token, account = bound_client(clinic, "exporter")
    job_id = one_batch_in(clinic, token)
    suspend_account(clinic, "exporter", account)
    clinic.work()
    # The token issued before the suspension reads nothing more either.
    read = clinic.web.get(f"/fhir/Patient/{clinic.mine[0]}", headers=bearer(token))
    assert read.status_code == 401
    assert (
        clinic.web.get(f"/fhir/$export-status/{job_id}", headers=bearer(token)).status_code == 401
    )
    shown = clinic.web.get(f"/admin/exports/{job_id}", headers=clinic.officers[0].headers)
    assert shown.status_code == 200
    assert shown.json()["status"] == "failed"
    assert "integration account is suspended" in shown.json()["error"]


def test_other_clients_files_stay_theirs(clinic: Clinic) -> None:
    token = clinic.client("exporter", "system/*.read")
    job_id = kick_off(clinic, token)
    approve_and_run(clinic, job_id)
    manifest = status(clinic, token, job_id).json()
    stranger = clinic.client("stranger", "system/*.read")
    for item in manifest["output"]:
        path = item["url"].split("testserver", 1)[1]
        assert clinic.web.get(path, headers=bearer(stranger)).status_code == 404
    assert status(clinic, stranger, job_id).status_code == 404
    assert len(events(clinic, Tag.EXPORT_DOWNLOADED, job_id)) == 0


# --- detection: an approved export is not unexplained bulk reading ----------------------------

EXTRA = 40


def test_an_approved_export_past_the_baseline_raises_only_its_own_alert(clinic: Clinic) -> None:
    """Forty-odd patients exported at once, past every floor of the breadth signal: the
    entries are explained by the approval, so nothing suspends the client; its own
    reads afterwards are judged as before."""
    put(clinic.services, *(patient(f"px{i}", MINE, f"Extra{i}") for i in range(EXTRA)))
    token = clinic.client("exporter", "system/*.read")
    job_id = kick_off(clinic, token)
    approve_and_run(clinic, job_id)
    exports = clinic.services.exports
    assert exports is not None
    assert exports.job(job_id).status is Status.COMPLETED
    assert len(events(clinic, Tag.FHIR_EXPORT, job_id)) == EXTRA + len(clinic.mine)

    alerts = alerts_as_dicts(clinic.services)

    assert {a["detector"] for a in alerts} == {"bulk-export"}, alerts
    assert not clinic.services.containment.refresh().active
    assert status(clinic, token, job_id).status_code == 200

    for n in range(EXTRA):
        clinic.web.get(f"/fhir/Patient/px{n}", headers=bearer(token))
    judged = [a for a in alerts_as_dicts(clinic.services) if a["detector"] != "bulk-export"]
    assert judged, "reads outside the job must still be judged"
    assert all(a["client"] == "exporter" or a["account"] for a in judged)


# --- files already written: containment reaches the download too ----------------------------


@dataclass(frozen=True)
class Contained:
    """A completed export of the client's, then containment started."""

    job_id: str
    manifest: dict[str, Any]
    #: The first file's path (no scheme or host).
    path: str
    containment_id: str


def complete_then_contain(clinic: Clinic, token: str, mode: Mode, target: str | None) -> Contained:
    """Kick an export off with ``token``, approve and run it, read its manifest, then
    start ``mode`` (on ``target``) by the second officer."""
    job_id = kick_off(clinic, token)
    approve_and_run(clinic, job_id)
    manifest = status(clinic, token, job_id).json()
    path = manifest["output"][0]["url"].split("testserver", 1)[1]
    started = clinic.services.contain.start(officer(clinic.officers[1]), mode, target, "breach")
    clinic.services.containment.refresh()
    return Contained(job_id, manifest, path, started.containment_id)


@pytest.mark.parametrize(
    ("mode", "target"),
    [(Mode.PHI_OFFLINE, None), (Mode.KEY_LOCKDOWN, None), (Mode.CLINIC_LOCK, MINE)],
    ids=["phi-offline", "key-lockdown", "clinic-lock"],
)
def test_a_completed_export_is_not_downloaded_while_patient_data_is_offline(
    clinic: Clinic, mode: Mode, target: str | None
) -> None:
    """Hole: the files of a completed job were served during PHI-offline (the download
    judged the client's standing but not containment), so a compromised client with a
    finished export kept taking every patient in it after the officer took patient data
    offline (or locked the clinic it exported). Now it answers 503 as a kick-off does,
    records nothing as downloaded, and the files are served again once released."""
    exports = clinic.services.exports
    assert exports is not None
    token = clinic.client("exporter", "system/*.read")
    contained = complete_then_contain(clinic, token, mode, target)

    refused = clinic.web.get(contained.path, headers=bearer(token))

    assert refused.status_code == 503, refused.text
    assert refused.json()["resourceType"] == "OperationOutcome"
    assert "Family" not in refused.text
    assert events(clinic, Tag.EXPORT_DOWNLOADED, contained.job_id) == []
    clinic.services.contain.release(officer(clinic.officers[1]), contained.containment_id, "over")
    clinic.services.containment.refresh()
    assert clinic.web.get(contained.path, headers=bearer(token)).status_code == 200
