"""Bulk Data $export, guarded: who may ask, approval by privacy officers, the manifest,
files that decrypt to what a direct read returns, _type and _since, one ledger entry per
exported patient, cancel and expiry deleting the files, containment holding exports."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import pytest

from carevault.containment.service import Officer
from carevault.containment.state import Mode
from carevault.export.model import Status
from carevault.export.service import ExportService
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.ledger.events import AuditEvent, Tag
from carevault.vault import writer as vault_writer
from tests.integration.access.browser import bearer
from tests.integration.export.conftest import MINE, OTHER, SYSTEM, Clinic, observation, put
from tests.support.jobs import assert_one_of_racing_kick_offs_stored
from tests.support.staff import Staff, open_token

pytestmark = pytest.mark.postgres

ASYNC = {"prefer": "respond-async", "accept": "application/fhir+json"}


def officer(staff: Staff) -> Officer:
    return Officer(staff.account.username, staff.totp(), "127.0.0.1")


def kick_off(clinic: Clinic, token: str, path: str = "/fhir/Patient/$export") -> str:
    response = clinic.web.get(path, headers={**bearer(token), **ASYNC})
    assert response.status_code == 202, response.text
    location: str = response.headers["content-location"]
    assert "/fhir/$export-status/" in location
    return location.rsplit("/", 1)[1]


def status(clinic: Clinic, token: str, job_id: str) -> Any:
    return clinic.web.get(f"/fhir/$export-status/{job_id}", headers=bearer(token))


def approve_and_run(clinic: Clinic, job_id: str, officers: int = 1) -> None:
    assert clinic.services.exports is not None
    for staff in clinic.officers[:officers]:
        clinic.services.exports.approve(officer(staff), job_id)
    clinic.work()


def events(clinic: Clinic, tag: Tag, job_id: str) -> list[AuditEvent]:
    found = [
        AuditEvent.from_canonical(data) for _, data in clinic.services.audit_ledger.store.entries()
    ]
    return [e for e in found if e.tag is tag and e.detail.get("job") == job_id]


def files(clinic: Clinic, token: str, manifest: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Every output file downloaded with the token, parsed, by resource type."""
    found: dict[str, list[dict[str, Any]]] = {}
    for item in manifest["output"]:
        path = item["url"].split("testserver", 1)[1]
        response = clinic.web.get(path, headers=bearer(token))
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/fhir+ndjson")
        lines = [json.loads(line) for line in response.content.splitlines()]
        assert len(lines) == item["count"]
        assert all(line["resourceType"] == item["type"] for line in lines)
        found.setdefault(item["type"], []).extend(lines)
    return found


def test_kick_off_needs_a_backend_service_granted_system_read(clinic: Clinic) -> None:
    narrow = clinic.client("narrow-app", "system/Patient.read")
    assert clinic.web.get("/fhir/$export", headers={**bearer(narrow), **ASYNC}).status_code == 403
    staff = clinic.officers[0]
    refused = clinic.web.get("/fhir/Patient/$export", headers={**staff.headers, **ASYNC})
    assert refused.status_code == 403
    assert refused.json()["resourceType"] == "OperationOutcome"
    token = clinic.client("exporter", "system/*.read")
    without_prefer = clinic.web.get("/fhir/Patient/$export", headers=bearer(token))
    assert without_prefer.status_code == 400
    assert clinic.services.exports is not None
    assert clinic.services.exports.jobs.all() == []
    refusals = [
        AuditEvent.from_canonical(data)
        for _, data in clinic.services.audit_ledger.store.entries()
        if b"bulk:export:refused" in data
    ]
    # Each is recorded as a refused export, the one without Prefer too (refused by the
    # route before the service reads it).
    assert {e.principal for e in refusals} == {
        "client:narrow-app",
        f"staff:{staff.login.username}",
        "client:exporter",
    }


def test_unsupported_and_bad_parameters_are_refused_with_an_outcome(clinic: Clinic) -> None:
    token = clinic.client("exporter", "system/*.read")
    for query in ("_typeFilter=Observation%3Fstatus%3Dfinal", "_type=Nothing", "_since=yesterday"):
        response = clinic.web.get(
            f"/fhir/Patient/$export?{query}", headers={**bearer(token), **ASYNC}
        )
        assert response.status_code == 400, query
        assert response.json()["resourceType"] == "OperationOutcome"
    unknown = clinic.web.get("/fhir/Group/nowhere/$export", headers={**bearer(token), **ASYNC})
    assert unknown.status_code == 404


def test_an_export_waits_for_approval_then_serves_a_manifest(clinic: Clinic) -> None:
    token = clinic.client("exporter", "system/*.read")
    job_id = kick_off(clinic, token)
    clinic.work()
    pending = status(clinic, token, job_id)
    assert pending.status_code == 202
    assert pending.headers["x-progress"] == "awaiting privacy officer approval (0 of 1)"
    assert int(pending.headers["retry-after"]) > 0
    assert not events(clinic, Tag.FHIR_EXPORT, job_id)

    approve_and_run(clinic, job_id)
    done = status(clinic, token, job_id)
    assert done.status_code == 200, done.text
    manifest = done.json()
    assert manifest["requiresAccessToken"] is True
    assert manifest["request"].endswith("/fhir/Patient/$export")
    assert manifest["transactionTime"].endswith("Z")
    assert manifest["error"] == []
    assert {item["type"] for item in manifest["output"]} == {"Patient", "Observation"}
    # Another client cannot see the job or its files.
    stranger = clinic.client("stranger", "system/*.read")
    assert status(clinic, stranger, job_id).status_code == 404
    first_file = manifest["output"][0]["url"].split("testserver", 1)[1]
    assert clinic.web.get(first_file, headers=bearer(stranger)).status_code == 404
    # The job is visible: every step in the ledger and an open alert.
    for tag in (Tag.EXPORT_REQUESTED, Tag.EXPORT_APPROVED, Tag.EXPORT_STARTED):
        assert len(events(clinic, tag, job_id)) == 1, tag
    assert len(events(clinic, Tag.EXPORT_FILE_WRITTEN, job_id)) == len(manifest["output"])
    assert len(events(clinic, Tag.EXPORT_COMPLETED, job_id)) == 1
    assert clinic.services.detection is not None
    alerts = [a for a in clinic.services.detection.alerts.list() if a.detector == "bulk-export"]
    assert len(alerts) == 1 and "completed" in alerts[0].explanation


def test_a_client_has_one_export_in_progress_at_a_time(clinic: Clinic) -> None:
    """A second kick-off while the first awaits approval or runs is refused with 429 (and
    recorded), so one client cannot fill the officers' queue; once the first is cancelled
    or completed the client may ask again, and other clients are not held up."""
    exports = clinic.services.exports
    assert exports is not None
    token = clinic.client("exporter", "system/*.read")
    first = kick_off(clinic, token)
    for path in ("/fhir/Patient/$export", "/fhir/$export", f"/fhir/Group/{MINE}/$export"):
        again = clinic.web.get(path, headers={**bearer(token), **ASYNC})
        assert again.status_code == 429, again.text
        assert int(again.headers["retry-after"]) > 0
        issue = again.json()["issue"][0]
        assert issue["code"] == "throttled"
        assert first in issue["diagnostics"]
    assert [job.job_id for job in exports.jobs.all()] == [first]
    refusals = [
        AuditEvent.from_canonical(data)
        for _, data in clinic.services.audit_ledger.store.entries()
        if b"bulk:export:refused" in data
    ]
    assert len(refusals) == 3 and all(first in e.reason for e in refusals)
    other = kick_off(clinic, clinic.client("another-app", "system/*.read"))

    cancelled = clinic.web.delete(f"/fhir/$export-status/{first}", headers=bearer(token))
    assert cancelled.status_code == 202
    second = kick_off(clinic, token)
    approve_and_run(clinic, second)
    assert exports.job(second).status is Status.COMPLETED
    third = kick_off(clinic, token)  # a completed job is not in progress
    assert {first, second, third, other} == {job.job_id for job in exports.jobs.all()}


def test_two_kick_offs_at_once_store_one_job(clinic: Clinic) -> None:
    """The in-progress check and the insert are one step: of kick-offs racing from
    several threads for one client, exactly one job is stored."""
    exports = clinic.services.exports
    assert exports is not None
    row = {
        "level": "patient",
        "group_id": None,
        "client_id": "racer",
        "principal": "client:racer",
        "session_id": None,
        "caller": "{}",
        "types": "",
        "since_us": None,
        "request_url": "https://example.test/fhir/Patient/$export",
        "status": str(Status.PENDING),
        "approvals_needed": 1,
        "approvals": "[]",
        "requested_us": 1,
        "updated_us": 1,
        "batches_done": 0,
        "cursor_row": 0,
        "patients_total": 0,
        "patients_done": 0,
        "resources_done": 0,
    }
    assert_one_of_racing_kick_offs_stored(exports.jobs, row)


def approve_over_http(clinic: Clinic, staff: Staff, job_id: str, token: str | None = None) -> Any:
    """An officer's approval from their own signed-in session (the export desk)."""
    return clinic.web.post(
        f"/admin/exports/{job_id}/approve",
        json={"totp": staff.totp()},
        headers=bearer(token or staff.token),
    )


def test_a_system_export_needs_two_different_officers(clinic: Clinic) -> None:
    exports = clinic.services.exports
    assert exports is not None
    token = clinic.client("exporter", "system/*.read")
    job_id = kick_off(clinic, token, "/fhir/$export")
    first, second = clinic.officers
    assert approve_over_http(clinic, first, job_id).status_code == 200
    assert exports.job(job_id).status is Status.PENDING
    again = approve_over_http(clinic, first, job_id)
    assert again.status_code == 403 and "second, different privacy officer" in again.text
    # The same officer from another session of theirs is still the same officer.
    other_session = open_token(clinic.services, first.account, "user/*.cruds")
    assert approve_over_http(clinic, first, job_id, other_session).status_code == 403
    clinic.work()
    assert status(clinic, token, job_id).headers["x-progress"].endswith("(1 of 2)")
    assert approve_over_http(clinic, second, job_id).status_code == 200
    clinic.work()
    manifest = status(clinic, token, job_id).json()
    # System level: directory records too (clinics, practitioners), no patient's.
    types = {item["type"] for item in manifest["output"]}
    assert {"Organization", "Practitioner", "Patient", "Observation"} <= types


def test_one_officer_holding_another_officers_new_authenticator_gives_one_approval(
    clinic: Clinic,
) -> None:
    """An officer who got hold of a colleague's freshly reset authenticator (the secret is
    shown to whoever reset it) still gives only one approval of a two-person export: the
    reset ended every session of the colleague, an approval needs a signed-in session of
    the approving officer, and a typed username and code is not one."""
    exports = clinic.services.exports
    assert exports is not None
    token = clinic.client("exporter", "system/*.read")
    job_id = kick_off(clinic, token, "/fhir/$export")
    mallory, victim = clinic.officers
    assert approve_over_http(clinic, mallory, job_id).status_code == 200

    _, secret = clinic.services.admin.reset_totp("cli:root", victim.login.username)
    held = replace(victim, login=replace(victim.login, totp_secret=secret))
    # The colleague's old session ended with the reset (refused before any code is read:
    # none is spent, so that three fresh codes of the new secret are left for below).
    ended = clinic.web.post(
        f"/admin/exports/{job_id}/approve", json={"totp": "000000"}, headers=held.headers
    )
    assert ended.status_code == 401
    # The username and a valid code from the new secret, without a session: refused.
    with pytest.raises(Exception, match="own signed-in session"):
        exports.approve(officer(held), job_id)
    # ... or presented with the first officer's own session: not the colleague's session.
    mallory_session = clinic.services.access.authenticate(mallory.token).session_id
    with pytest.raises(Exception, match="not this officer's live session"):
        exports.approve(officer(held), job_id, mallory_session)
    # ... or typed into the first officer's own token: the code is checked as theirs.
    typed = clinic.web.post(
        f"/admin/exports/{job_id}/approve", json={"totp": held.totp()}, headers=mallory.headers
    )
    assert typed.status_code == 403

    job = exports.job(job_id)
    assert job.status is Status.PENDING
    assert [a.officer for a in job.approvals] == [f"staff:{mallory.login.username}"]
    refused = [e.reason for e in events(clinic, Tag.EXPORT_REFUSED, job_id)]
    assert any("own signed-in session" in reason for reason in refused)
    assert any("not this officer's live session" in reason for reason in refused)
    assert [e for e in clinic.services.audit_ledger.store.entries() if b"totp-reset" in e[1]]


def test_a_patient_export_of_the_whole_group_needs_two_officers(clinic: Clinic) -> None:
    everywhere = clinic.client("group-exporter", "system/*.read", [MINE, OTHER])
    job_id = kick_off(clinic, everywhere)
    assert status(clinic, everywhere, job_id).headers["x-progress"].endswith("(0 of 2)")
    first, second = clinic.officers
    assert approve_over_http(clinic, first, job_id).status_code == 200
    clinic.work()
    assert status(clinic, everywhere, job_id).headers["x-progress"].endswith("(1 of 2)")
    assert approve_over_http(clinic, second, job_id).status_code == 200
    one_clinic = clinic.client("clinic-exporter", "system/*.read", [MINE])
    part = kick_off(clinic, one_clinic)
    assert status(clinic, one_clinic, part).headers["x-progress"].endswith("(0 of 1)")


def test_a_non_officer_cannot_approve(clinic: Clinic) -> None:
    from carevault.domain.roles import Role
    from tests.support.staff import make_staff

    token = clinic.client("exporter", "system/*.read")
    job_id = kick_off(clinic, token)
    nurse = make_staff(clinic.services, Role.NURSE, [MINE])
    response = clinic.web.post(
        f"/admin/exports/{job_id}/approve", json={"totp": nurse.totp()}, headers=nurse.headers
    )
    assert response.status_code == 403
    assert clinic.services.exports is not None
    assert clinic.services.exports.job(job_id).status is Status.PENDING
    boss = clinic.officers[0]
    approved = clinic.web.post(
        f"/admin/exports/{job_id}/approve", json={"totp": boss.totp()}, headers=boss.headers
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"


def test_files_decrypt_to_what_a_direct_read_returns_and_each_patient_is_recorded_once(
    clinic: Clinic,
) -> None:
    token = clinic.client("exporter", "system/*.read")
    job_id = kick_off(clinic, token)
    approve_and_run(clinic, job_id)
    exported = files(clinic, token, status(clinic, token, job_id).json())
    # Only the exporter's clinic: its 5 patients and their 10 observations.
    assert sorted(p["id"] for p in exported["Patient"]) == sorted(clinic.mine)
    assert len(exported["Observation"]) == 2 * len(clinic.mine)
    for resources in exported.values():
        for resource in resources:
            direct = clinic.web.get(
                f"/fhir/{resource['resourceType']}/{resource['id']}", headers=bearer(token)
            )
            assert direct.status_code == 200
            assert direct.json() == resource
    recorded = events(clinic, Tag.FHIR_EXPORT, job_id)
    pseudonyms = [e.patient_pseudonym for e in recorded]
    assert len(pseudonyms) == len(set(pseudonyms)) == len(clinic.mine)
    assert sorted(e.resource_id for e in recorded if e.resource_id) == sorted(clinic.mine)
    assert all(e.principal == "client:exporter" for e in recorded)
    # The files at rest are sealed: no patient's name appears in them.
    exports = clinic.services.exports
    assert exports is not None
    for path in (exports.files.root / job_id).iterdir():
        assert b"Family" not in path.read_bytes()


def test_type_and_since_narrow_the_export(clinic: Clinic) -> None:
    token = clinic.client("exporter", "system/*.read")
    only_patients = kick_off(clinic, token, "/fhir/Patient/$export?_type=Patient")
    approve_and_run(clinic, only_patients)
    manifest = status(clinic, token, only_patients).json()
    assert {item["type"] for item in manifest["output"]} == {"Patient"}

    since = manifest["transactionTime"]
    changed = clinic.mine[1]
    put(clinic.services, observation(f"o-{changed}-1", changed, "70.00"))
    later = kick_off(clinic, token, f"/fhir/Patient/$export?_since={since}")
    approve_and_run(clinic, later)
    exported = files(clinic, token, status(clinic, token, later).json())
    assert list(exported) == ["Observation"]
    assert [o["id"] for o in exported["Observation"]] == [f"o-{changed}-1"]
    recorded = events(clinic, Tag.FHIR_EXPORT, later)
    assert [e.resource_id for e in recorded] == [changed]


def test_a_write_in_flight_when_an_export_starts_is_in_it_or_after_its_transaction_time(
    clinic: Clinic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write stamped before an export started but committed after its patient's batch
    was read was in neither that export nor a follow-up ``_since`` its transactionTime
    (noticed in stop 42; PostgreSQL, where writers run side by side). The export's start
    now waits for the writes in flight; SQLite's write lock made it wait already."""
    token = clinic.client("exporter", "system/*.read")
    job_id = kick_off(clinic, token)
    assert clinic.services.exports is not None
    clinic.services.exports.approve(officer(clinic.officers[0]), job_id)
    paused, release = threading.Event(), threading.Event()
    flush = vault_writer._Writer.flush

    def held_open(self: vault_writer._Writer) -> None:
        if threading.current_thread().name == "in-flight":
            paused.set()
            release.wait(30)
        flush(self)

    monkeypatch.setattr(vault_writer._Writer, "flush", held_open)
    late = observation(f"o-{clinic.mine[0]}-late", clinic.mine[0], "70.00")
    writer = threading.Thread(target=put, args=(clinic.services, late), name="in-flight")
    writer.start()
    assert paused.wait(30)
    exporter = threading.Thread(target=clinic.work)
    exporter.start()
    time.sleep(1.0)  # the export gets as far as it can while the write is in flight
    release.set()
    writer.join(30)
    exporter.join(60)
    assert not writer.is_alive() and not exporter.is_alive()

    manifest = status(clinic, token, job_id).json()
    exported = {o["id"] for o in files(clinic, token, manifest)["Observation"]}
    stamped = clinic.services.gate.read(SYSTEM, RESOURCE_TYPES["Observation"], late["id"])
    assert stamped.body is not None
    updated = datetime.fromisoformat(json.loads(stamped.body)["meta"]["lastUpdated"])
    since = datetime.fromisoformat(manifest["transactionTime"])
    # In this export, or taken by the next one ``_since`` this one's transactionTime.
    assert late["id"] in exported or updated > since, (updated, since)


def test_cancel_deletes_the_files_and_the_key(clinic: Clinic) -> None:
    exports = clinic.services.exports
    keys = clinic.services.keys
    assert exports is not None and keys is not None
    token = clinic.client("exporter", "system/*.read")
    job_id = kick_off(clinic, token)
    approve_and_run(clinic, job_id)
    assert exports.files.exists(job_id)
    key_id = exports.job(job_id).key_id
    cancelled = clinic.web.delete(f"/fhir/$export-status/{job_id}", headers=bearer(token))
    assert cancelled.status_code == 202
    assert not exports.files.exists(job_id)
    assert keys.shredded([key_id]) == {key_id}
    assert exports.output(exports.job(job_id)) == []
    assert status(clinic, token, job_id).status_code == 404
    assert len(events(clinic, Tag.EXPORT_CANCELLED, job_id)) == 1


def test_the_export_desk_lists_jobs_by_status_and_refuses_an_unknown_status(
    clinic: Clinic,
) -> None:
    """``/admin/exports?status=`` lists only the jobs in that status; a status that is
    not one answers 400 naming the statuses, not an empty list nor every job."""
    first = kick_off(clinic, clinic.client("exporter", "system/*.read"))
    other_token = clinic.client("another-app", "system/*.read")
    second = kick_off(clinic, other_token)
    cancelled = clinic.web.delete(f"/fhir/$export-status/{second}", headers=bearer(other_token))
    assert cancelled.status_code == 202
    desk = clinic.officers[0].headers

    def listed(query: str) -> list[str]:
        response = clinic.web.get(f"/admin/exports{query}", headers=desk)
        assert response.status_code == 200, response.text
        return [job["id"] for job in response.json()]

    assert sorted(listed("")) == sorted([first, second])
    assert listed("?status=pending") == [first]
    assert listed("?status=cancelled") == [second]
    assert listed("?status=completed") == []
    for wrong in ("bogus", "PENDING", ""):
        refused = clinic.web.get(f"/admin/exports?status={wrong}", headers=desk)
        assert refused.status_code == 400, (wrong, refused.text)
        assert refused.json()["resourceType"] == "OperationOutcome"
        assert "status must be one of pending, approved, running, completed" in refused.text


def test_cancel_during_a_run_leaves_no_files(clinic: Clinic) -> None:
    exports = clinic.services.exports
    assert exports is not None
    exports.settings = replace(exports.settings, batch_patients=2)
    token = clinic.client("exporter", "system/*.read")
    job_id = kick_off(clinic, token)
    exports.approve(officer(clinic.officers[0]), job_id)
    assert clinic.work(max_batches=1) == 1
    assert exports.job(job_id).status is Status.RUNNING
    exports.cancel(job_id, "client:exporter", "changed my mind")
    clinic.work()
    assert not exports.files.exists(job_id)
    assert exports.job(job_id).status is Status.CANCELLED


def test_a_completed_exports_expires_header_is_an_http_date_of_its_expiry(
    clinic: Clinic,
) -> None:
    """RFC 9110 5.6.7: an IMF-fixdate, which HTTP clients and caches read (an ISO instant
    they cannot), giving the job's expiry to the second."""
    exports = clinic.services.exports
    assert exports is not None
    token = clinic.client("exporter", "system/*.read")
    job_id = kick_off(clinic, token)
    approve_and_run(clinic, job_id)
    done = status(clinic, token, job_id)
    assert done.status_code == 200, done.text
    expires_us = exports.job(job_id).expires_us
    assert expires_us is not None
    header = done.headers["expires"]
    assert header.endswith(" GMT")
    expected = datetime.fromtimestamp(expires_us // 1_000_000, UTC)
    assert parsedate_to_datetime(header) == expected


def completed_unkept(clinic: Clinic) -> tuple[ExportService, str, str]:
    """(the export service, the client's token, a job) completed and kept a microsecond
    (set after the approval: a request waits for approval that long too)."""
    exports = clinic.services.exports
    assert exports is not None
    token = clinic.client("exporter", "system/*.read")
    job_id = kick_off(clinic, token)
    exports.approve(officer(clinic.officers[0]), job_id)
    exports.settings = replace(exports.settings, keep_us=1)
    clinic.work()
    return exports, token, job_id


def test_expiry_deletes_the_files(clinic: Clinic) -> None:
    exports, token, job_id = completed_unkept(clinic)
    assert exports.job(job_id).expires_us is not None
    assert exports.expire() == 1
    assert not exports.files.exists(job_id)
    assert exports.job(job_id).status is Status.EXPIRED
    assert status(clinic, token, job_id).status_code == 404
    assert len(events(clinic, Tag.EXPORT_EXPIRED, job_id)) == 1


def test_files_past_their_expiry_are_not_served_while_the_sweep_has_not_come(
    clinic: Clinic,
) -> None:
    """Adversary round 43: files were deleted only by the worker's sweep, which runs
    between jobs (not while it works through another client's long export) and not at
    all in a process without the worker: until then a job past the ``Expires`` of its
    manifest still served its files. Asked for after that time, the job ends there."""
    exports, token, job_id = completed_unkept(clinic)
    job = exports.job(job_id)
    assert job.status is Status.COMPLETED and job.expires_us is not None
    assert job.expires_us <= exports.now_us()
    (name, *_) = [item.name for item in exports.output(job)]

    fetched = clinic.web.get(f"/fhir/$export-file/{job_id}/{name}", headers=bearer(token))

    assert fetched.status_code == 404, fetched.text
    assert exports.job(job_id).status is Status.EXPIRED
    assert not exports.files.exists(job_id)
    assert status(clinic, token, job_id).status_code == 404
    assert events(clinic, Tag.EXPORT_DOWNLOADED, job_id) == []
    assert len(events(clinic, Tag.EXPORT_EXPIRED, job_id)) == 1


def test_a_request_past_its_wait_for_approval_is_not_approved_before_the_sweep(
    clinic: Clinic,
) -> None:
    exports = clinic.services.exports
    assert exports is not None
    token = clinic.client("exporter", "system/*.read")
    job_id = kick_off(clinic, token)
    exports.settings = replace(exports.settings, keep_us=1)
    boss = clinic.officers[0]

    late = clinic.web.post(
        f"/admin/exports/{job_id}/approve", json={"totp": boss.totp()}, headers=boss.headers
    )

    assert late.status_code == 409, late.text
    assert exports.job(job_id).status is Status.EXPIRED
    assert events(clinic, Tag.EXPORT_APPROVED, job_id) == []


def test_patient_data_offline_holds_exports(clinic: Clinic) -> None:
    exports = clinic.services.exports
    assert exports is not None
    token = clinic.client("exporter", "system/*.read")
    job_id = kick_off(clinic, token)
    exports.approve(officer(clinic.officers[0]), job_id)
    started = clinic.services.contain.start(
        officer(clinic.officers[1]), Mode.PHI_OFFLINE, None, "drill"
    )
    clinic.services.containment.refresh()
    assert clinic.work() == 0
    held = status(clinic, token, job_id)
    assert held.status_code == 202
    assert held.headers["x-progress"].startswith("held")
    refused = clinic.web.get("/fhir/Patient/$export", headers={**bearer(token), **ASYNC})
    assert refused.status_code == 503
    assert not events(clinic, Tag.FHIR_EXPORT, job_id)
    clinic.services.contain.release(officer(clinic.officers[1]), started.containment_id, "done")
    clinic.services.containment.refresh()
    clinic.work()
    assert status(clinic, token, job_id).status_code == 200


def test_resumed_batches_record_each_patient_once(clinic: Clinic) -> None:
    """A worker that stops after each batch (as a killed one would) and is started again
    exports every patient exactly once, in the files and in the ledger."""
    exports = clinic.services.exports
    assert exports is not None
    exports.settings = replace(exports.settings, batch_patients=2)
    token = clinic.client("exporter", "system/*.read")
    job_id = kick_off(clinic, token)
    exports.approve(officer(clinic.officers[0]), job_id)
    while exports.job(job_id).status is not Status.COMPLETED:
        clinic.work(max_batches=1)
    exported = files(clinic, token, status(clinic, token, job_id).json())
    ids = [p["id"] for p in exported["Patient"]]
    assert sorted(ids) == sorted(clinic.mine) and len(ids) == len(set(ids))
    pseudonyms = [e.patient_pseudonym for e in events(clinic, Tag.FHIR_EXPORT, job_id)]
    assert len(pseudonyms) == len(set(pseudonyms)) == len(clinic.mine)


def test_a_group_export_covers_one_clinic_and_post_takes_parameters(clinic: Clinic) -> None:
    from tests.integration.export.conftest import OTHER

    # A client of part of the group (one of the whole group needs two officers).
    token = clinic.client("exporter", "system/*.read", [OTHER])
    body = {
        "resourceType": "Parameters",
        "parameter": [{"name": "_type", "valueString": "Patient"}],
    }
    response = clinic.web.post(
        f"/fhir/Group/{OTHER}/$export",
        content=json.dumps(body),
        headers={**bearer(token), **ASYNC, "content-type": "application/fhir+json"},
    )
    assert response.status_code == 202, response.text
    job_id = response.headers["content-location"].rsplit("/", 1)[1]
    approve_and_run(clinic, job_id)
    manifest = status(clinic, token, job_id).json()
    assert manifest["request"] == f"http://testserver/fhir/Group/{OTHER}/$export"
    exported = files(clinic, token, manifest)
    assert list(exported) == ["Patient"]
    assert sorted(p["id"] for p in exported["Patient"]) == sorted(clinic.other)


def test_an_incident_on_the_exporting_client_counts_every_exported_patient(
    clinic: Clinic,
) -> None:
    from datetime import UTC, datetime, timedelta

    since = datetime.now(UTC) - timedelta(seconds=1)
    token = clinic.client("exporter", "system/*.read")
    job_id = kick_off(clinic, token)
    approve_and_run(clinic, job_id)
    until = datetime.now(UTC) + timedelta(seconds=1)
    officer_headers = clinic.officers[0].headers
    case = {
        "title": "the exporter's secret leaked",
        "clients": ["exporter"],
        "since": since.isoformat(),
        "until": until.isoformat(),
    }
    created = clinic.web.post("/admin/incidents", json=case, headers=officer_headers)
    assert created.status_code == 201, created.text
    scope = clinic.web.get(
        f"/admin/incidents/{created.json()['id']}/scope?format=json", headers=officer_headers
    )
    assert scope.status_code == 200, scope.text
    confirmed = {line["patient"] for line in scope.json()["tiers"]["confirmed"]}
    assert confirmed == set(clinic.mine)


def test_an_incident_on_the_kick_off_session_counts_every_exported_patient(
    clinic: Clinic,
) -> None:
    """Adversary round 44: the worker read as the client without the session the job was
    kicked off with, so an incident naming only that stolen token's session (``--session``)
    found none of the patients it exported: the entries named no session."""
    import jwt

    since = datetime.now(UTC) - timedelta(seconds=1)
    token = clinic.client("exporter", "system/*.read")
    session_id = jwt.decode(token, options={"verify_signature": False})["sid"]
    job_id = kick_off(clinic, token)
    approve_and_run(clinic, job_id)
    exported = events(clinic, Tag.FHIR_EXPORT, job_id)
    assert exported and {e.session_id for e in exported} == {session_id}
    case = {
        "title": "an exporter's token leaked",
        "sessions": [session_id],
        "since": since.isoformat(),
    }
    headers = clinic.officers[0].headers
    created = clinic.web.post("/admin/incidents", json=case, headers=headers)
    assert created.status_code == 201, created.text
    scope = clinic.web.get(
        f"/admin/incidents/{created.json()['id']}/scope?format=json", headers=headers
    )
    assert scope.status_code == 200, scope.text
    assert {line["patient"] for line in scope.json()["tiers"]["confirmed"]} == set(clinic.mine)


def test_an_erased_patient_is_left_out(clinic: Clinic) -> None:
    erased = clinic.mine[0]
    keys = clinic.services.keys
    assert keys is not None
    pseudonym = clinic.services.vault.locate("Patient", erased).head.patient_pseudonym
    assert pseudonym is not None
    clinic.services.contain.erase_patient(
        officer(clinic.officers[0]), pseudonym, "patient asked", keys
    )
    token = clinic.client("exporter", "system/*.read")
    job_id = kick_off(clinic, token)
    approve_and_run(clinic, job_id)
    exported = files(clinic, token, status(clinic, token, job_id).json())
    assert sorted(p["id"] for p in exported["Patient"]) == sorted(clinic.mine[1:])
    assert erased not in {e.resource_id for e in events(clinic, Tag.FHIR_EXPORT, job_id)}


@pytest.mark.parametrize(
    "name",
    ["..%2F..%2Fkeys", "%2E%2E", "..", "000001-Patient.ndjson%00", "000001-Patient.ndjson.key"],
)
def test_another_client_cannot_cancel_a_job_and_file_names_do_not_leave_the_job(
    clinic: Clinic, name: str
) -> None:
    """An insider holding another backend token (or a file name of their choosing) tries
    to stop someone else's export, or to read past the job's own files."""
    token = clinic.client("exporter", "system/*.read")
    job_id = kick_off(clinic, token)
    approve_and_run(clinic, job_id)
    stranger = clinic.client("stranger", "system/*.read")

    cancelled = clinic.web.delete(f"/fhir/$export-status/{job_id}", headers=bearer(stranger))
    probed = clinic.web.get(f"/fhir/$export-file/{job_id}/{name}", headers=bearer(token))

    assert cancelled.status_code == 404
    assert status(clinic, token, job_id).status_code == 200
    assert probed.status_code in (400, 404), probed.text
    assert not probed.headers["content-type"].startswith("application/fhir+ndjson")
    assert not events(clinic, Tag.EXPORT_CANCELLED, job_id)


def test_an_integration_client_exports_no_narrative(clinic: Clinic) -> None:
    """An integration client may not see sensitive records: the narratives of Patients
    and Observations, which may restate them, leave without, each record labelled."""
    told = {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">HIV</div>'}
    first = clinic.mine[0]
    stored = clinic.services.gate.read(SYSTEM, RESOURCE_TYPES["Patient"], first)
    put(clinic.services, {**json.loads(stored.body or b"{}"), "text": told})
    put(clinic.services, {**observation(f"o-{first}-1", first, "61.50"), "text": told})
    token = clinic.client("exporter", "system/*.read")
    job_id = kick_off(clinic, token)
    approve_and_run(clinic, job_id)

    exported = files(clinic, token, status(clinic, token, job_id).json())

    for resources in exported.values():
        for resource in resources:
            assert "text" not in resource
            labels = [label["code"] for label in resource["meta"].get("security", [])]
            assert "SUBSETTED" in labels
