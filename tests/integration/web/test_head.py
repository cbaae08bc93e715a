"""HEAD (R4 http.html: servers SHOULD support it for read, vread, search, history and
capabilities): the status and headers GET would give, Content-Length included, and no
body. A HEAD of a record is the access a GET of it is: the same gate decision, the same
ledger entry, which says it was a HEAD. Operations (``$export`` kick-off and status) are
not read by HEAD: 405, and nothing starts. SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from carevault.ledger.events import AuditEvent, Tag
from carevault.web.app import create_app
from tests.support.client import FhirTestClient, register_patient
from tests.support.ledgers import audit_events
from tests.support.staff import Staff, make_staff

#: Headers that differ between any two answers (when, which request).
VARYING = {"date", "x-request-id"}


@dataclass
class Clinic:
    services: Services
    web: FhirTestClient
    officer: Staff
    desk: Staff
    stranger: Staff
    patient: str


@pytest.fixture
def clinic(services: Services) -> Iterator[Clinic]:
    with FhirTestClient(create_app(services.settings, services)) as web:
        officer = make_staff(services, Role.PRIVACY_OFFICER, ["clinic-a"])
        desk = make_staff(services, Role.FRONT_DESK, ["clinic-a"])
        stranger = make_staff(services, Role.FRONT_DESK, ["clinic-b"])
        patient = register_patient(web, officer.headers, desk.headers, "clinic-a", "Head", "Wai")
        renamed = web.get(f"/fhir/Patient/{patient}", headers=desk.headers).json()
        renamed["gender"] = "female"
        updated = web.put_json(f"/fhir/Patient/{patient}", renamed, **desk.headers)
        assert updated.status_code == 200, updated.text
        yield Clinic(services, web, officer, desk, stranger, patient)


def _headers(response: object) -> dict[str, str]:
    headers = response.headers  # type: ignore[attr-defined]
    return {name: value for name, value in headers.items() if name not in VARYING}


def _same_entry(event: AuditEvent) -> AuditEvent:
    """An entry without what differs between two requests (when, which request)."""
    return dataclasses.replace(event, at_us=0, request_id=None)


def _head_as_get(clinic: Clinic, path: str, staff: Staff) -> tuple[int, list[AuditEvent]]:
    """HEAD then GET of ``path``: the same status and headers (the GET's Content-Length
    is its body's length), no body for HEAD, and the same ledger entries for both but
    for the method: each entry of the HEAD says it was one, no entry of the GET names a
    method."""
    before = len(audit_events(clinic.services))
    head = clinic.web.head(path, headers=staff.headers)
    middle = len(audit_events(clinic.services))
    get = clinic.web.get(path, headers=staff.headers)
    entries = audit_events(clinic.services)
    assert head.content == b"", path
    assert head.status_code == get.status_code, (path, get.text)
    assert _headers(head) == _headers(get), path
    assert int(head.headers["content-length"]) == len(get.content) > 0, path
    by_head, by_get = entries[before:middle], entries[middle:]
    assert all(event.detail.get("method") == "HEAD" for event in by_head), path
    assert all("method" not in event.detail for event in by_get), path
    as_get = [
        dataclasses.replace(event, detail={k: v for k, v in event.detail.items() if k != "method"})
        for event in by_head
    ]
    assert [_same_entry(event) for event in as_get] == [_same_entry(event) for event in by_get], (
        path
    )
    return head.status_code, by_head


def test_head_answers_every_read_interaction_as_get_does_without_a_body(clinic: Clinic) -> None:
    patient = f"/fhir/Patient/{clinic.patient}"
    for path in (
        "/fhir/metadata",
        patient,
        f"{patient}/_history/1",
        f"{patient}/_history",
        "/fhir/Patient?family=head",
        "/fhir/Patient/_history",
        "/fhir/_history",
    ):
        status, _ = _head_as_get(clinic, path, clinic.desk)
        assert status == 200, path
    status, _ = _head_as_get(clinic, "/fhir/AuditEvent?_count=5", clinic.officer)
    assert status == 200


def test_a_head_of_a_record_is_an_audited_read_under_the_same_policy(clinic: Clinic) -> None:
    patient = f"/fhir/Patient/{clinic.patient}"
    status, entries = _head_as_get(clinic, patient, clinic.desk)
    assert status == 200
    assert [(event.tag, event.resource_id) for event in entries] == [
        (Tag.FHIR_READ, clinic.patient)
    ]
    # Refused alike, and recorded alike: HEAD is no way around the gate.
    refused, entries = _head_as_get(clinic, patient, clinic.stranger)
    assert refused in (403, 404)
    assert entries and all(event.outcome.value != "success" for event in entries)
    # A version, and an id never used: as GET answers.
    assert _head_as_get(clinic, f"{patient}/_history/2", clinic.desk)[0] == 200
    assert _head_as_get(clinic, "/fhir/Patient/never-used", clinic.desk)[0] == 404


def test_a_conditional_head_is_answered_as_the_conditional_get(clinic: Clinic) -> None:
    patient = f"/fhir/Patient/{clinic.patient}"
    etag = clinic.web.get(patient, headers=clinic.desk.headers).headers["etag"]
    head = clinic.web.head(patient, headers={**clinic.desk.headers, "If-None-Match": etag})
    assert (head.status_code, head.content) == (304, b"")


def test_head_starts_no_export_and_reads_no_operation(clinic: Clinic) -> None:
    before = len(audit_events(clinic.services))
    for path in (
        "/fhir/$export",
        "/fhir/Patient/$export",
        "/fhir/Group/g1/$export",
        "/fhir/$export-status/some-job",
        f"/fhir/Patient/{clinic.patient}/$everything",
    ):
        response = clinic.web.head(path, headers=clinic.officer.headers)
        assert response.status_code == 405, path
        assert response.content == b""
        assert "HEAD" not in response.headers["allow"].split(", "), path
    started = [
        event
        for event in audit_events(clinic.services)[before:]
        if str(event.tag).startswith("bulk:export")
    ]
    assert started == []
    listed = clinic.web.get("/admin/exports", headers=clinic.officer.headers)
    assert listed.status_code == 200, listed.text
    assert "some-job" not in listed.text


def test_head_of_what_is_not_fhir_is_still_refused(clinic: Clinic) -> None:
    for path in ("/admin/exports", "/audit/checkpoint", "/auth/sessions"):
        response = clinic.web.head(path, headers=clinic.officer.headers)
        assert response.status_code == 405, path


def test_a_head_refused_for_its_token_is_recorded_as_a_head(clinic: Clinic) -> None:
    """Refused before the gate (a token that does not verify, recorded by the web layer,
    the first such refusal of its minute at once): the entry says HEAD too."""
    before = len(audit_events(clinic.services))
    bad = {"Authorization": f"Bearer {clinic.desk.token}x"}
    head = clinic.web.head(f"/fhir/Patient/{clinic.patient}", headers=bad)
    assert head.status_code == 401
    refused = [
        event
        for event in audit_events(clinic.services)[before:]
        if event.tag is Tag.AUTH_TOKEN_REFUSED
    ]
    assert [event.detail.get("method") for event in refused] == ["HEAD"]


def test_a_head_refused_before_the_gate_is_recorded_with_its_own_method(clinic: Clinic) -> None:
    """A signed-in caller's HEAD answered 406 (no JSON accepted) never reaches the gate;
    the refusal records carry the method, and it is the client's HEAD, not the GET the
    app was handed."""
    before = len(audit_events(clinic.services))
    headers = {**clinic.desk.headers, "accept": "application/fhir+xml"}
    head = clinic.web.head(f"/fhir/Patient/{clinic.patient}", headers=headers)
    assert head.status_code == 406
    refused = [
        event
        for event in audit_events(clinic.services)[before:]
        if event.tag is Tag.REQUEST_REFUSED
    ]
    assert [event.detail["method"] for event in refused] == ["HEAD"]
