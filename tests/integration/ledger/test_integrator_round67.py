"""Integrator round 67: a SIEM's FHIR connector searches the audit trail as FHIR servers
are searched (``_sort``, ``type``/``subtype``, ``entity``, ``_lastUpdated``, ``_total``)
and pages through it by the ``next`` links, newest first as well as oldest first; an
ordinary staff login tries the same parameters to learn what it could not before.

The answers are read as an outsider reads them: raw JSON, fhirpy following the links,
fhir.resources (R4B) validating every Bundle."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import requests
from fhir.resources.R4B.bundle import Bundle
from fhirpy import SyncFHIRClient

from carevault.bootstrap import Services
from carevault.clock import fhir_instant
from carevault.domain.roles import Role
from carevault.ledger.events import AuditEvent
from tests.integration.ledger.conftest import StaffToken, bearer, patient
from tests.support.client import FhirTestClient
from tests.support.inprocess import InProcess

LEDGER = "urn:carevault:audit-ledger"
REST = "http://terminology.hl7.org/CodeSystem/audit-event-type"


def _search(web: FhirTestClient, token: str, query: str) -> dict[str, Any]:
    answer = web.get(f"/fhir/AuditEvent?{query}", headers=bearer(token))
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    Bundle.model_validate(body)  # a valid R4(B) Bundle, AuditEvents and all
    return body


def _pages(web: FhirTestClient, token: str, query: str) -> tuple[list[int], list[dict[str, Any]]]:
    """Every entry's position, following ``next`` links from ``query``; each page."""
    pages = [_search(web, token, query)]
    while True:
        following = [link["url"] for link in pages[-1]["link"] if link["relation"] == "next"]
        if not following:
            break
        pages.append(
            _search(web, token, following[0].removeprefix("http://testserver/fhir/AuditEvent?"))
        )
    positions = [_seq(entry["resource"]) for page in pages for entry in page.get("entry", [])]
    return positions, pages


def _seq(resource: dict[str, Any]) -> int:
    return int(resource["id"].removeprefix("audit-"))


def _activity(web: FhirTestClient, staff_token: StaffToken) -> tuple[str, str, list[str]]:
    """A desk writes and reads five patients, a physician reads two: (desk, officer,
    patients)."""
    desk, physician = staff_token(Role.FRONT_DESK), staff_token(Role.PHYSICIAN)
    officer = staff_token(Role.PRIVACY_OFFICER)
    patients = [patient(web, desk, f"Wong{n}") for n in range(5)]
    for someone in patients:
        assert web.get(f"/fhir/Patient/{someone}", headers=bearer(desk)).status_code == 200
    for someone in patients[:2]:
        web.get(f"/fhir/Patient/{someone}", headers=bearer(physician))
    return desk, officer, patients


def test_pages_newest_first_and_oldest_first_hold_every_entry_once(
    web: FhirTestClient, staff_token: StaffToken, services: Services
) -> None:
    _, officer, _ = _activity(web, staff_token)
    # Only REST entries: the officer's own searches (audit:ledger) are written as it
    # pages, and would be walked into oldest first.
    whole = _search(web, officer, "type=rest&_count=500&_total=accurate")
    expected = [_seq(entry["resource"]) for entry in whole["entry"]]
    assert whole["total"] == len(expected) == 13  # the clinic, 5 creates, 7 reads
    assert expected == sorted(expected)

    oldest, pages = _pages(web, officer, "type=rest&_sort=date&_count=4&_total=accurate")
    assert oldest == expected
    assert pages[0]["total"] == len(expected)
    assert all("total" not in page for page in pages[1:])  # counted once, on the page asked

    newest, pages = _pages(web, officer, "type=rest&_sort=-date&_count=4")
    assert newest == expected[::-1]
    assert len(pages) == len(expected) // 4 + 1
    assert all("_sort=-date" in link["url"] for page in pages for link in page["link"])
    recorded = [entry["resource"]["recorded"] for page in pages for entry in page.get("entry", [])]
    assert recorded == sorted(recorded, reverse=True)

    # A page boundary given by the caller is kept on every page (a window of positions).
    low, high = expected[3], expected[-3]
    windowed, _ = _pages(
        web, officer, f"type=rest&_sort=-date&_count=2&_after={low}&_before={high}"
    )
    assert windowed == [seq for seq in expected[::-1] if low < seq < high]


def test_fhirpy_fetches_every_page_newest_first(
    web: FhirTestClient, staff_token: StaffToken, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, officer, patients = _activity(web, staff_token)
    created = _search(web, officer, f"entity=Patient/{patients[0]}&_count=1")["entry"][0]
    agent = created["resource"]["agent"][0]["who"]["identifier"]["value"]  # the desk
    monkeypatch.setattr(requests.Session, "get_adapter", lambda _session, url: InProcess(web))
    client = SyncFHIRClient("http://testserver/fhir", authorization=f"Bearer {officer}")
    found = client.resources("AuditEvent").search(agent=agent).sort("-date").limit(3).fetch_all()
    positions = [_seq(resource.serialize()) for resource in found]
    assert len(positions) == len(set(positions)) == 10  # five creates, five reads
    assert positions == sorted(positions, reverse=True)


def test_type_subtype_entity_and_last_updated_narrow_as_the_entries_say(
    web: FhirTestClient, staff_token: StaffToken, services: Services, api: FhirTestClient
) -> None:
    _, officer, patients = _activity(web, staff_token)
    reads = _search(web, officer, "subtype=fhir:resource:read&_count=500")["entry"]
    assert len(reads) == 7
    for entry in reads:
        assert entry["resource"]["subtype"][0] == {"system": LEDGER, "code": "fhir:resource:read"}
    with_system = _search(web, officer, f"subtype={LEDGER}|fhir:resource:read&_count=500")
    assert with_system["entry"] == reads
    either = _search(
        web, officer, "subtype=fhir:resource:read,fhir:resource:create&_count=500&_total=accurate"
    )
    assert either["total"] == 13
    assert _search(web, officer, "type=http://elsewhere|rest&_total=accurate")["total"] == 0
    rest = _search(web, officer, f"type={REST}|rest&_count=500")["entry"]
    assert all(entry["resource"]["type"]["code"] == "rest" for entry in rest)
    officer_reads = _search(web, officer, "type=audit:ledger&_count=500")["entry"]
    assert officer_reads
    assert all(e["resource"]["subtype"][0]["code"] == "audit:ledger:read" for e in officer_reads)

    about = _search(web, officer, f"entity=Patient/{patients[0]}&_count=500")["entry"]
    assert len(about) == 3  # its create, the desk's read, the physician's
    for entry in about:
        refs = [e["what"].get("reference") for e in entry["resource"]["entity"]]
        assert f"Patient/{patients[0]}" in refs

    # _lastUpdated is the recorded time, as date is.
    middle = about[1]["resource"]["recorded"]
    # (type=rest: the entity search itself is now an entry about the patient, a release)
    since = _search(web, officer, f"entity=Patient/{patients[0]}&type=rest&_lastUpdated=ge{middle}")
    assert [e["resource"]["id"] for e in since["entry"]] == [e["resource"]["id"] for e in about[1:]]
    both = _search(
        web, officer, f"entity=Patient/{patients[0]}&_lastUpdated=ge{middle}&date=lt{middle}"
    )
    assert "entry" not in both or both["entry"] == []
    later = fhir_instant(services.clock() + timedelta(hours=1))
    assert _search(web, officer, f"_lastUpdated=gt{later}&_total=accurate")["total"] == 0


def test_an_entity_search_is_recorded_as_a_release_of_the_patient(
    web: FhirTestClient, staff_token: StaffToken, services: Services, api: FhirTestClient
) -> None:
    """A search by ``entity`` tells who opened the patient's record, as their access
    report does: it is recorded naming the patient (their own report lists it, the
    release budget counts it), whether the entity is the Patient or a record of theirs."""
    _, officer, patients = _activity(web, staff_token)
    made = api.post_json(
        "/fhir/Observation",
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "Blood pressure"},
            "subject": {"reference": f"Patient/{patients[1]}"},
        },
    )
    assert made.status_code == 201, made.text
    observation = made.json()["id"]
    pseudonyms = services.vault.patient_pseudonyms(patients[:2])
    for entity, whose in (
        (f"Patient/{patients[0]}", patients[0]),
        (f"Observation/{observation}", patients[1]),
    ):
        found = _search(web, officer, f"entity={entity}&_total=accurate")
        assert found["total"] >= 1
        size, _ = services.audit_ledger.store.head()
        data = services.audit_ledger.store.entry(size - 1)
        assert data is not None
        event = AuditEvent.from_canonical(data, seq=size - 1)
        assert event.tag.value == "audit:ledger:read"
        assert (event.resource_type, event.resource_id) == ("Patient", whose)
        assert event.patient_pseudonym == pseudonyms[whose]
        assert event.detail == {"returned": found["total"], "total": found["total"]}


def test_a_search_without_a_patient_is_recorded_once_with_its_total(
    web: FhirTestClient, staff_token: StaffToken, services: Services
) -> None:
    _, officer, _ = _activity(web, staff_token)
    before, _ = services.audit_ledger.store.head()
    found = _search(web, officer, "type=rest&_count=2&_total=accurate")
    after, _ = services.audit_ledger.store.head()
    assert after == before + 1
    data = services.audit_ledger.store.entry(before)
    assert data is not None
    event = AuditEvent.from_canonical(data, seq=before)
    assert event.tag.value == "audit:ledger:read" and event.resource_id is None
    assert event.detail == {"returned": 2, "total": found["total"]}


@pytest.mark.parametrize(
    "query",
    [
        "_sort=name", "_sort=date,-date", "_sort=date&_sort=-date", "_total=maybe",
        "_total=accurate&_total=none", "entity=123", "entity=Patient/", "entity=patient/1",
        "entity=http://elsewhere/Patient/1", "_before=x", "_before=-1", "_after=1e3",
        "type=", "subtype=a,", "_lastUpdated=yesterday", "_lastUpdated=xx2024",
        "_elements=id", "_since=2024", "_count=5&_count=6",
    ],
)  # fmt: skip
def test_a_malformed_or_unknown_parameter_is_refused_with_an_outcome(
    web: FhirTestClient, staff_token: StaffToken, query: str
) -> None:
    officer = staff_token(Role.PRIVACY_OFFICER)
    answer = web.get(f"/fhir/AuditEvent?{query}", headers=bearer(officer))
    assert answer.status_code == 400, (query, answer.text)
    assert answer.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.PHYSICIAN, Role.NURSE])
def test_staff_learn_nothing_from_the_new_parameters(
    web: FhirTestClient, staff_token: StaffToken, api: FhirTestClient, role: Role
) -> None:
    """An ordinary login asking for a patient it may not read, and for one that does not
    exist, with a total: the same refusal, word for word, before any parameter is read
    (a malformed one too), and nothing is counted."""
    outsider = staff_token(role)
    hidden = api.post_json(
        "/fhir/Patient",
        {
            "resourceType": "Patient",
            "name": [{"family": "Hidden"}],
            "managingOrganization": {"reference": "Organization/elsewhere"},
        },
    )
    assert hidden.status_code == 201, hidden.text
    hidden_id = hidden.json()["id"]
    answers = [
        web.get(f"/fhir/AuditEvent?{query}", headers=bearer(outsider))
        for query in (
            f"entity=Patient/{hidden_id}&_total=accurate",
            "entity=Patient/no-such-patient&_total=accurate",
            f"patient={hidden_id}&_sort=-date",
            "type=rest&_total=accurate",
            "_sort=nonsense",
        )
    ]
    assert {answer.status_code for answer in answers} == {403}
    assert len({answer.content for answer in answers}) == 1
    assert all("total" not in answer.text for answer in answers)


def test_an_earlier_checkpoint_is_served_at_its_size_to_anyone(
    services: Services, web: FhirTestClient, staff_token: StaffToken
) -> None:
    """A verifier holding a scope that cites size S fetches the note signed at S, after
    the ledger has grown and been signed again: it was served only the latest."""
    desk, officer = staff_token(Role.FRONT_DESK), staff_token(Role.PRIVACY_OFFICER)
    someone = patient(web, desk, "Lau")
    kept = services.audit_ledger.checkpoints.make("incident scope")
    for _ in range(3):
        assert web.get(f"/fhir/Patient/{someone}", headers=bearer(desk)).status_code == 200
    latest = services.audit_ledger.checkpoints.make("schedule")
    assert latest.size > kept.size

    for headers in ({}, bearer(officer), bearer(desk)):
        answer = web.get(f"/audit/checkpoint?tree_size={kept.size}", headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.text == kept.note  # byte for byte, its signatures and all
        assert answer.headers["content-type"] == "text/plain; charset=utf-8"
    assert web.get(f"/audit/checkpoint?tree_size={latest.size}").text == latest.note
    assert web.get("/audit/checkpoint").text == latest.note  # without it, as before
    unwrap = services.unwrap_ledger.checkpoints.make("schedule")
    answer = web.get(f"/audit/checkpoint?ledger=unwrap&tree_size={unwrap.size}")
    assert answer.text == unwrap.note
    # Asking for an old note signs nothing, whoever asks (an officer's plain ask, the
    # ledger having grown, would).
    assert web.get(f"/fhir/Patient/{someone}", headers=bearer(desk)).status_code == 200
    web.get(f"/audit/checkpoint?tree_size={kept.size}", headers=bearer(officer))
    now_latest = services.audit_ledger.checkpoints.latest()
    assert now_latest is not None and now_latest.note == latest.note


def test_a_size_no_checkpoint_was_signed_at_is_refused_alike(
    services: Services, web: FhirTestClient, staff_token: StaffToken
) -> None:
    desk, officer = staff_token(Role.FRONT_DESK), staff_token(Role.PRIVACY_OFFICER)
    someone = patient(web, desk, "Yip")
    kept = services.audit_ledger.checkpoints.make("schedule")
    assert web.get(f"/fhir/Patient/{someone}", headers=bearer(desk)).status_code == 200
    unsigned = services.audit_ledger.store.head()[0]
    assert unsigned > kept.size
    refusals = set()
    for headers in ({}, bearer(officer)):
        for tree_size in (kept.size - 1, unsigned, unsigned + 1000, 10**17, 10**20):
            answer = web.get(f"/audit/checkpoint?tree_size={tree_size}", headers=headers)
            # Whether the live tree has reached the size or not: nothing of the
            # unsigned head is told, to a stranger or an officer.
            assert answer.status_code == 404, answer.text
            refusals.add(answer.text.replace(str(tree_size), "N"))
    assert len(refusals) == 1
    for bad in ("-1", "abc", "1.5", ""):
        answer = web.get(f"/audit/checkpoint?tree_size={bad}")
        assert answer.status_code == 400, (bad, answer.text)
        assert "Traceback" not in answer.text
    assert web.get("/audit/checkpoint?tree_size=1", headers=bearer("nonsense")).status_code == 401
    # The inclusion proof's tree_size (round 66) too: a size past any number a row holds.
    huge = web.get(f"/audit/proof/inclusion?seq=0&tree_size={10**20}", headers=bearer(officer))
    assert huge.status_code == 404, huge.text
