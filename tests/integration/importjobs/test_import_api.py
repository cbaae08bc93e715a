"""``$import`` by an integration client: who may kick it off, what is refused before
anything is stored, a good import read back as sent, refusals by line with reasons, an
import that never widens the client's reach, cancel, containment, and the body sealed
at rest and gone once the job ends."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from carevault.access.tables import sign_in_throttle
from carevault.bulk.sources import bundles_to_ndjson, read_items
from carevault.containment.service import Officer
from carevault.containment.state import Mode
from carevault.domain.hkid import check_digit
from carevault.fhir import jsonio
from carevault.fhir.outcome import ISSUE_LINE
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate import Caller
from carevault.importjobs.model import Status
from carevault.importjobs.worker import MAX_FAILURES, ImportWorker
from carevault.ledger.events import Tag
from tests.integration.access.browser import bearer
from tests.integration.export.conftest import MINE, OTHER, observation, patient, put
from tests.integration.importjobs.conftest import NDJSON, Clinic
from tests.support.staff import Staff
from tests.support.synthea import BUNDLES

pytestmark = pytest.mark.postgres

READER = Caller(principal="system:test")


def officer(staff: Staff) -> Officer:
    return Officer(staff.account.username, staff.totp(), "127.0.0.1")


def ndjson(*resources: dict[str, Any]) -> bytes:
    return b"".join(jsonio.dumps(r) + b"\n" for r in resources)


def outcome_of(clinic: Clinic, token: str, job_id: str, status: int = 200) -> dict[str, Any]:
    response = clinic.status(token, job_id)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    body: dict[str, Any] = response.json()
    assert body["resourceType"] == "OperationOutcome"
    return body


def refused_lines(body: dict[str, Any]) -> dict[int, str]:
    """Each refused line's reason, by line: the line in FHIR's issue-line extension and
    first in the diagnostics (never in ``expression``, which is FHIRPath)."""
    refused: dict[int, str] = {}
    for issue in body["issue"]:
        lines = [e["valueInteger"] for e in issue.get("extension", []) if e["url"] == ISSUE_LINE]
        if not lines:
            continue
        prefix = f"line {lines[0]}: "
        assert issue["diagnostics"].startswith(prefix)
        assert not any(e.startswith("line") for e in issue.get("expression", []))
        refused[lines[0]] = issue["diagnostics"].removeprefix(prefix)
    return refused


def _without_meta(body: bytes | dict[str, Any]) -> dict[str, Any]:
    parsed = jsonio.load(body) if isinstance(body, bytes) else dict(body)
    parsed.pop("meta", None)
    return parsed


def test_only_a_backend_service_allowed_to_write_may_kick_off(clinic: Clinic) -> None:
    staff = clinic.officers[0]
    as_staff = clinic.web.post(
        "/fhir/$import",
        content=ndjson(patient("p1", MINE, "A")),
        headers={**staff.headers, **NDJSON},
    )
    assert as_staff.status_code == 403
    reader = clinic.client("reader", "system/*.rs")
    as_reader = clinic.web.post(
        "/fhir/$import",
        content=ndjson(patient("p1", MINE, "A")),
        headers={**bearer(reader), **NDJSON},
    )
    assert as_reader.status_code == 403
    assert as_reader.json()["resourceType"] == "OperationOutcome"
    refusals = clinic.events(Tag.IMPORT_REFUSED)
    assert {e.principal for e in refusals} == {"client:reader", f"staff:{staff.login.username}"}
    assert clinic.imports.jobs.all() == []


def test_bad_requests_are_refused_and_nothing_is_stored(clinic: Clinic) -> None:
    token = clinic.client("importer")
    body = ndjson(patient("p1", MINE, "Chan"))
    no_async = clinic.web.post(
        "/fhir/$import",
        content=body,
        headers={**bearer(token), "Content-Type": "application/fhir+ndjson"},
    )
    assert no_async.status_code == 400
    as_json = clinic.web.post(
        "/fhir/$import",
        content=body,
        headers={**bearer(token), **NDJSON, "Content-Type": "application/fhir+json"},
    )
    assert as_json.status_code == 415
    clinic.imports.settings = replace(clinic.imports.settings, max_bytes=len(body) - 1)
    too_big = clinic.web.post("/fhir/$import", content=body, headers={**bearer(token), **NDJSON})
    assert too_big.status_code == 413
    assert too_big.json()["resourceType"] == "OperationOutcome"
    assert clinic.imports.jobs.all() == []
    assert not clinic.imports.files.root.exists() or not any(clinic.imports.files.root.iterdir())
    assert [e.detail["status"] for e in clinic.events(Tag.IMPORT_REFUSED)] == [413]


def test_synthea_records_import_and_read_back_as_sent(clinic: Clinic, tmp_path: Path) -> None:
    files = bundles_to_ndjson(BUNDLES[:2], tmp_path / "ndjson")
    body = b"".join(path.read_bytes() for path in files)
    sent = [item.resource for path in files for item in read_items(path, "x") if item.resource]
    clinic.imports.settings = replace(clinic.imports.settings, batch_lines=50)
    token = clinic.client("importer")
    job_id = clinic.kick_off(token, body)
    queued = clinic.status(token, job_id)
    assert queued.status_code == 202 and queued.headers["x-progress"] == "queued"
    assert queued.headers["retry-after"]

    assert clinic.work() == -(-len(sent) // 50)

    result = outcome_of(clinic, token, job_id)
    assert result["issue"][0]["severity"] == "information"
    assert f"{len(sent)} accepted, 0 rejected" in result["issue"][0]["diagnostics"]
    assert refused_lines(result) == {}
    for resource in sent:
        opened = clinic.services.gate.read(
            READER, RESOURCE_TYPES[resource["resourceType"]], resource["id"]
        )
        assert opened.body is not None
        expected = _without_meta(resource)
        if resource["resourceType"] == "Patient" and "managingOrganization" not in resource:
            # A patient sent without a clinic is placed at the importing client's.
            expected["managingOrganization"] = {"reference": f"Organization/{MINE}"}
        assert jsonio.dumps(_without_meta(opened.body)) == jsonio.dumps(expected)
    # Written as the client, one entry per record, never as the system's bulk load.
    written = [
        e
        for e in clinic.events(Tag.FHIR_CREATE) + clinic.events(Tag.FHIR_UPDATE)
        if e.principal == "client:importer"
    ]
    assert len(written) == len(sent)
    assert not [e for e in clinic.events(Tag.FHIR_IMPORT) if e.principal == "client:importer"]
    for tag in (Tag.IMPORT_REQUESTED, Tag.IMPORT_STARTED, Tag.IMPORT_COMPLETED):
        assert len(clinic.events(tag, job_id)) == 1


def test_bad_lines_are_refused_by_line_with_reasons_and_nothing_partial(clinic: Clinic) -> None:
    good = patient("p-good", MINE, "Lee")
    body = (
        ndjson(good)
        + b"not json at all\n"
        + ndjson({"resourceType": "Patient", "id": "p-bad", "birthDate": "yesterday"})
        + ndjson({"resourceType": "Spaceship", "id": "s1"})
        + ndjson(observation("o-good", "p-good", "70.25"))
    )
    token = clinic.client("importer")
    job_id = clinic.kick_off(token, body)
    clinic.work()
    result = outcome_of(clinic, token, job_id)
    assert "2 accepted, 3 rejected" in result["issue"][0]["diagnostics"]
    refused = refused_lines(result)
    assert sorted(refused) == [2, 3, 4]
    assert all(reason for reason in refused.values())
    # The element a reason names is the issue's expression (FHIRPath); a line is not.
    expressions = {
        issue["diagnostics"].split(":")[0]: issue.get("expression") for issue in result["issue"][1:]
    }
    assert expressions == {"line 2": None, "line 3": ["Patient.birthDate"], "line 4": None}
    # Reasons name rules, never the values sent.
    assert "yesterday" not in json.dumps(result)
    gate = clinic.services.gate
    assert gate.read(READER, RESOURCE_TYPES["Observation"], "o-good").body is not None
    with pytest.raises(Exception):  # noqa: B017, PT011 - not found, whatever its class
        gate.read(READER, RESOURCE_TYPES["Patient"], "p-bad")


def _with_hkid(patient_id: str, clinic_id: str, number: str) -> dict[str, Any]:
    return {
        **patient(patient_id, clinic_id, "Fam"),
        "identifier": [{"system": "http://carevault.hk/sid/hkid", "value": number}],
    }


def test_a_line_twinning_another_clinics_patient_is_refused_alone_and_counted_once(
    clinic: Clinic,
) -> None:
    """Forty new patients and one whose HKID a patient of another clinic holds: the one
    line is refused (a twin would split that patient's history), the forty go in, and
    the refusal counts once against the client's registration throttle, not once for
    every part of the batch that held it while the batch was split."""
    put(clinic.services, _with_hkid("p-known", OTHER, "K111111(6)"))
    lines = [
        _with_hkid(f"p{n}", MINE, f"M{n:06d}({check_digit('M', f'{n:06d}')})") for n in range(40)
    ]
    lines.insert(20, _with_hkid("p-twin", MINE, "K111111(6)"))
    token = clinic.client("importer", clinics=[MINE])
    job_id = clinic.kick_off(token, ndjson(*lines))
    clinic.work()
    result = outcome_of(clinic, token, job_id)

    assert "40 accepted, 1 rejected" in result["issue"][0]["diagnostics"]
    assert list(refused_lines(result)) == [21]
    with clinic.services.engine.connect() as connection:
        counted = connection.execute(
            select(sign_in_throttle.c.subject, sign_in_throttle.c.level).where(
                sign_in_throttle.c.kind == "registration", sign_in_throttle.c.level > 0
            )
        ).all()
    assert [round(level) for _, level in counted] == [1], counted


def test_import_never_widens_a_clients_reach(clinic: Clinic) -> None:
    """A client of one clinic cannot put a record into another clinic, nor change one
    there, through ``$import``: the gate refuses those lines as it would the writes."""
    token = clinic.client("importer", clinics=[MINE])
    body = ndjson(
        patient("p-mine", MINE, "Ho"),
        patient("p-theirs", OTHER, "Ng"),
        patient("pb0", OTHER, "Rewritten"),
        observation("o-theirs", "pb0", "80.5"),
    )
    job_id = clinic.kick_off(token, body)
    clinic.work()
    result = outcome_of(clinic, token, job_id)
    assert sorted(refused_lines(result)) == [2, 3, 4]
    gate = clinic.services.gate
    assert gate.read(READER, RESOURCE_TYPES["Patient"], "p-mine").body is not None
    stored = gate.read(READER, RESOURCE_TYPES["Patient"], "pb0").body
    assert stored is not None and b"Rewritten" not in stored
    for resource_type, resource_id in (("Patient", "p-theirs"), ("Observation", "o-theirs")):
        with pytest.raises(Exception):  # noqa: B017, PT011 - not found
            gate.read(READER, RESOURCE_TYPES[resource_type], resource_id)


def test_another_client_cannot_see_or_cancel_the_job(clinic: Clinic) -> None:
    token = clinic.client("importer")
    other = clinic.client("someone-else")
    job_id = clinic.kick_off(token, ndjson(patient("p1", MINE, "Chan")))
    assert clinic.status(other, job_id).status_code == 404
    cancel = clinic.web.delete(f"/fhir/$import-status/{job_id}", headers=bearer(other))
    assert cancel.status_code == 404
    assert clinic.imports.job(job_id).status is Status.QUEUED


def test_cancel_stops_before_the_next_batch_and_keeps_what_was_committed(
    clinic: Clinic,
) -> None:
    clinic.imports.settings = replace(clinic.imports.settings, batch_lines=2)
    token = clinic.client("importer")
    body = ndjson(*(patient(f"p{i}", MINE, f"Fam{i}") for i in range(6)))
    job_id = clinic.kick_off(token, body)
    assert clinic.work(max_batches=1) == 1
    assert clinic.status(token, job_id).headers["x-progress"] == "2 of 6 lines"
    cancel = clinic.web.delete(f"/fhir/$import-status/{job_id}", headers=bearer(token))
    assert cancel.status_code == 202
    assert clinic.work() == 0
    result = outcome_of(clinic, token, job_id)
    assert "import cancelled: 2 accepted, 0 rejected, 2 of 6 lines" in json.dumps(result)
    assert len(clinic.events(Tag.IMPORT_CANCELLED, job_id)) == 1
    job = clinic.imports.job(job_id)
    assert not clinic.imports.files.exists(job_id)
    keys = clinic.services.keys
    assert keys is not None and keys.shredded([job.key_id]) == {job.key_id}


def test_containment_holds_a_job_and_refuses_kick_offs(clinic: Clinic) -> None:
    token = clinic.client("importer")
    job_id = clinic.kick_off(token, ndjson(patient("p1", MINE, "Chan")))
    started = clinic.services.contain.start(
        officer(clinic.officers[1]), Mode.PHI_OFFLINE, None, "drill"
    )
    clinic.services.containment.refresh()
    assert clinic.work() == 0
    held = clinic.status(token, job_id)
    assert held.status_code == 202 and held.headers["x-progress"].startswith("held")
    refused = clinic.web.post(
        "/fhir/$import",
        content=ndjson(patient("p2", MINE, "Ma")),
        headers={**bearer(token), **NDJSON},
    )
    assert refused.status_code == 503
    clinic.services.contain.release(officer(clinic.officers[1]), started.containment_id, "done")
    clinic.services.containment.refresh()
    clinic.work()
    assert "1 accepted" in json.dumps(outcome_of(clinic, token, job_id))


def test_a_revoked_clients_job_is_stopped(clinic: Clinic) -> None:
    clinic.imports.settings = replace(clinic.imports.settings, batch_lines=1)
    token = clinic.client("importer")
    body = ndjson(*(patient(f"p{i}", MINE, f"Fam{i}") for i in range(3)))
    job_id = clinic.kick_off(token, body)
    assert clinic.work(max_batches=1) == 1
    clinic.services.contain.start(
        officer(clinic.officers[1]), Mode.CLIENT_REVOKED, "importer", "leaked secret"
    )
    clinic.work()
    job = clinic.imports.job(job_id)
    assert job.status is Status.FAILED
    assert job.error is not None and "client app revoked" in job.error
    stopped = clinic.events(Tag.IMPORT_STOPPED, job_id)
    assert len(stopped) == 1 and stopped[0].detail["accepted"] == 1
    assert not clinic.imports.files.exists(job_id)


def test_the_body_is_sealed_at_rest_and_gone_once_done(clinic: Clinic) -> None:
    token = clinic.client("importer")
    job_id = clinic.kick_off(token, ndjson(patient("p1", MINE, "Zephyrine")))
    directory = clinic.imports.files.root / job_id
    stored = b"".join(path.read_bytes() for path in directory.iterdir())
    assert stored and b"Zephyrine" not in stored
    clinic.work()
    assert clinic.imports.job(job_id).status is Status.COMPLETED
    assert not directory.exists()
    keys = clinic.services.keys
    job = clinic.imports.job(job_id)
    assert keys is not None and keys.shredded([job.key_id]) == {job.key_id}


def test_a_patient_of_no_clinic_from_a_client_of_two_clinics_is_refused_by_line(
    clinic: Clinic,
) -> None:
    """The gate cannot tell which of the client's clinics such a patient belongs to: the
    line is refused with the field to set, and the job goes on."""
    token = clinic.client("importer", clinics=[MINE, OTHER])
    nowhere = patient("p-nowhere", MINE, "Yip")
    del nowhere["managingOrganization"]
    job_id = clinic.kick_off(token, ndjson(nowhere, patient("p-here", MINE, "Lam")))
    clinic.work()
    result = outcome_of(clinic, token, job_id)
    refused = refused_lines(result)
    assert list(refused) == [1] and "managingOrganization" in refused[1]
    assert "1 accepted, 1 rejected" in result["issue"][0]["diagnostics"]
    assert clinic.imports.job(job_id).status is Status.COMPLETED


def test_a_record_that_does_not_name_its_patient_as_patient_id_is_refused_by_line(
    clinic: Clinic,
) -> None:
    """An absolute subject would make the record no one's (gate: ``PatientRequired``):
    the line is refused naming the element, and the job goes on."""
    token = clinic.client("importer", clinics=[MINE])
    absolute = observation("o-absolute", "pa0", "61.0")
    absolute["subject"] = {"reference": "https://ehr.example.org/fhir/Patient/pa0"}
    job_id = clinic.kick_off(token, ndjson(absolute, observation("o-relative", "pa0", "61.5")))
    clinic.work()
    result = outcome_of(clinic, token, job_id)
    refused = refused_lines(result)
    assert list(refused) == [1] and "Observation.subject" in refused[1]
    assert clinic.imports.job(job_id).status is Status.COMPLETED


def test_a_batch_that_keeps_failing_stops_its_job_without_quoting_it(
    clinic: Clinic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not a refusal of one record (those are reported by line): the store failing on a
    batch. Retried, then the job is stopped naming the error's kind, not its text."""
    token = clinic.client("importer")
    job_id = clinic.kick_off(token, ndjson(patient("p1", MINE, "Zephyrine")))

    def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("the store quoted Zephyrine")

    monkeypatch.setattr(clinic.services.gate, "write", broken)
    worker = ImportWorker(clinic.imports, "test-worker")
    for _ in range(MAX_FAILURES - 1):
        with pytest.raises(RuntimeError):
            worker.run_once()
        assert clinic.imports.job(job_id).status is Status.RUNNING
    assert worker.run_once() == 0
    job = clinic.imports.job(job_id)
    assert job.status is Status.FAILED
    assert job.error is not None and "RuntimeError" in job.error
    # A failed job's status poll is an error with an OperationOutcome (Bulk Data: 4XX or
    # 5XX), its first issue saying what failed.
    failed = outcome_of(clinic, token, job_id, 500)
    first = failed["issue"][0]
    assert (first["severity"], first["code"]) == ("error", "processing")
    assert "RuntimeError" in first["diagnostics"]
    assert "Zephyrine" not in json.dumps(failed)
    assert not clinic.imports.files.exists(job_id)


def test_lines_of_a_type_the_clients_scopes_do_not_allow_are_refused(clinic: Clinic) -> None:
    token = clinic.client("obs-feed", "system/Observation.cu")
    body = ndjson(patient("p-new", MINE, "Kwok"), observation("o-new", "pa0", "64.5"))
    job_id = clinic.kick_off(token, body)
    clinic.work()
    result = outcome_of(clinic, token, job_id)
    assert list(refused_lines(result)) == [1]
    assert "1 accepted, 1 rejected" in result["issue"][0]["diagnostics"]


def test_a_lock_on_the_clients_clinic_holds_its_job(clinic: Clinic) -> None:
    token = clinic.client("importer")
    job_id = clinic.kick_off(token, ndjson(patient("p1", MINE, "Chan")))
    started = clinic.services.contain.start(
        officer(clinic.officers[1]), Mode.CLINIC_LOCK, MINE, "drill"
    )
    clinic.services.containment.refresh()
    assert clinic.work() == 0
    held = clinic.status(token, job_id)
    assert held.status_code == 202 and held.headers["x-progress"].startswith("held")
    clinic.services.contain.release(officer(clinic.officers[1]), started.containment_id, "done")
    clinic.services.containment.refresh()
    clinic.work()
    assert "1 accepted, 0 rejected" in json.dumps(outcome_of(clinic, token, job_id))


SUBSETTED_LABEL = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
}


def test_a_client_that_may_not_read_learns_nothing_of_a_record_by_a_labelled_write(
    clinic: Clinic,
) -> None:
    """A view saved back is refused naming the elements it leaves out, but only to a caller
    who may read the record: a write-only client (``system/*.cu``) sending a labelled body
    by PUT or ``$import`` must not learn which elements a patient's record holds (that
    ``deceasedDateTime`` is there says the patient died). It is refused all the same, in
    words that do not depend on the record: it cannot have read what it sends back."""
    stored = jsonio.load(clinic.services.gate.read(READER, RESOURCE_TYPES["Patient"], "pa0").body)
    put(
        clinic.services,
        {**stored, "deceasedDateTime": "2026-11-01", "maritalStatus": {"text": "x"}},
    )
    token = clinic.client("writer-only", scopes="system/*.cu")
    probe = {
        "resourceType": "Patient",
        "id": "pa0",
        "meta": {"security": [SUBSETTED_LABEL]},
        "name": [{"family": "Family0"}],
        "managingOrganization": {"reference": f"Organization/{MINE}"},
    }
    assert clinic.web.get("/fhir/Patient/pa0", headers=bearer(token)).status_code == 403

    answer = clinic.web.put(
        "/fhir/Patient/pa0",
        content=jsonio.dumps(probe),
        headers={**bearer(token), "Content-Type": "application/fhir+json"},
    )
    job = clinic.kick_off(token, ndjson({**probe, "name": [{"family": "Family1"}]}))
    clinic.work()
    report = json.dumps(outcome_of(clinic, token, job))

    for told in (answer.text, report):
        assert "deceased" not in told and "maritalStatus" not in told
        assert "labelled SUBSETTED, a view of a record, not a record" in told
    assert answer.status_code == 422
    after = jsonio.load(clinic.services.gate.read(READER, RESOURCE_TYPES["Patient"], "pa0").body)
    assert after["deceasedDateTime"] == "2026-11-01"  # nothing replaced by the view
