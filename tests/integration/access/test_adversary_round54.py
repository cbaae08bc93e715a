"""Adversary round 54, reading what one may not: the ledger's routes as staff who are
not privacy officers (and as an integration client), and history polling with ``_since``
and its paging cursors as an integration client of one clinic (SQLite and PostgreSQL).

Every attack is sent as the tester sent it; what each may be told is compared with what
the same caller is told of a patient id never used, so a test fails if a refusal says
whether an id is a patient's.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest

from carevault.domain.roles import Role
from carevault.ledger.events import Outcome, Tag
from tests.integration.access.browser import basic, bearer
from tests.integration.access.group import TM, TW, Group, encounter, observation
from tests.support.staff import Staff, make_staff

NOT_OFFICERS = [
    Role.FRONT_DESK,
    Role.NURSE,
    Role.PHYSICIAN,
    Role.PHARMACIST,
    Role.BILLING,
    Role.CLINIC_MANAGER,
]


def _integration_client(group: Group, client_id: str = "tm-feed") -> dict[str, str]:
    """The headers of a client-credentials token of an app bound to an integration
    account of Tuen Mun."""
    account = make_staff(group.services, Role.INTEGRATION, [TM])
    _, secret = group.services.admin.add_client(
        "admin:test",
        client_id,
        "Tuen Mun feed",
        confidential=True,
        scopes="system/*.cruds",
        clinic_ids=[TM],
        account=account.account.username,
    )
    assert secret
    response = group.web.post(
        "/auth/token",
        data={"grant_type": "client_credentials", "scope": "system/*.cruds"},
        headers=basic(client_id, secret),
    )
    assert response.status_code == 200, response.text
    return bearer(response.json()["access_token"])


def _told(response: Any) -> tuple[int, str]:
    body = response.json()
    return response.status_code, "; ".join(i.get("diagnostics", "") for i in body["issue"])


@pytest.mark.parametrize("role", [*NOT_OFFICERS, Role.INTEGRATION])
def test_no_one_but_an_officer_reads_the_ledger_of_a_patient_or_learns_if_they_exist(
    group: Group, role: Role
) -> None:
    """AuditEvent search by patient (or whole), a patient's access report, an entry with
    its proof, and the FHIR doors around them (read, type history, POST _search): each
    refused alike for the clinic's own patient, another clinic's and an id never used,
    and each refusal recorded."""
    if role is Role.INTEGRATION:
        headers = _integration_client(group)
    else:
        headers = make_staff(group.services, role, [TM]).headers
    before = len(group.events(Tag.AUDIT_READ))
    answers: dict[str, set[tuple[int, str]]] = {}
    for patient in (group.tm_patient.id, group.tw_patient.id, "never-used-0"):
        for path in (
            f"/fhir/AuditEvent?patient={patient}",
            f"/fhir/AuditEvent?patient=Patient/{patient}&_count=500",
            f"/audit/patients/{patient}/access-report",
            f"/audit/patients/{patient}/access-report?before=99",
        ):
            response = group.web.get(path, headers=headers)
            said = _told(response)
            assert said[0] == 403, (path, response.text)
            assert patient not in said[1]
            answers.setdefault(path.replace(patient, "<id>"), set()).add(said)
    assert all(len(told) == 1 for told in answers.values()), answers
    for path in (
        "/fhir/AuditEvent",
        "/fhir/AuditEvent?agent=staff:x",
        "/audit/proof/inclusion?seq=0",
    ):
        assert group.web.get(path, headers=headers).status_code == 403, path
    for path in ("/fhir/AuditEvent/audit-1", "/fhir/AuditEvent/_history"):
        assert group.web.get(path, headers=headers).status_code == 404, path
    searched = group.web.post(
        "/fhir/AuditEvent/_search",
        content=f"patient={group.tm_patient.id}",
        headers={**headers, "content-type": "application/x-www-form-urlencoded"},
    )
    assert searched.status_code == 404
    refused = group.events(Tag.AUDIT_READ)[before:]
    assert len(refused) == 12 + 3
    assert all(event.outcome is Outcome.DENIED for event in refused)
    assert all(event.patient_pseudonym is None for event in refused)


def _poll(group: Group, headers: dict[str, str], url: str) -> tuple[list[str], list[str]]:
    """Every version a history poll lists, following its next links, and the links."""
    listed: list[str] = []
    links: list[str] = []
    following: str | None = url
    while following is not None and len(links) < 50:
        response = group.web.get(following, headers=headers)
        assert response.status_code == 200, response.text
        bundle = response.json()
        assert "total" not in bundle or bundle["total"] == len(bundle.get("entry", []))
        listed += [
            f"{e['resource']['resourceType']}/{e['resource']['id']}/{e['resource']['meta']['versionId']}"
            for e in bundle.get("entry", [])
            if "resource" in e
        ]
        following = next((ln["url"] for ln in bundle["link"] if ln["relation"] == "next"), None)
        if following is not None:
            following = following.removeprefix("http://testserver")
            links.append(following)
    return listed, links


def test_an_integration_clients_history_poll_lists_no_version_of_another_clinic(
    group: Group,
) -> None:
    """The client polls system and type history since a time, one version a page, while
    Tsuen Wan writes; its pages list Tuen Mun's versions only, and Tsuen Wan's writes
    neither add a page nor change the ones before."""
    client = _integration_client(group)
    since = quote((datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="seconds"))
    urls = [
        f"/fhir/_history?_since={since}&_count=1",
        f"/fhir/Observation/_history?_since={since}&_count=1",
        f"/fhir/Patient/_history?_since={since}&_count=1",
    ]
    before = {url: _poll(group, client, url)[0] for url in urls}
    tw = group.tw_patient
    for url, listed in before.items():
        assert listed, url
        assert not [v for v in listed if tw.id in v or tw.observation in v], (url, listed)

    rewritten = group.call(group.doctor_tw, "GET", f"/fhir/Observation/{tw.observation}").json()
    rewritten["code"] = {"text": "HbA1c 8.0 %"}
    put = group.call(group.doctor_tw, "PUT", f"/fhir/Observation/{tw.observation}", rewritten)
    assert put.status_code == 200, put.text
    made = group.call(group.doctor_tw, "POST", "/fhir/Observation", observation(tw.id))
    assert made.status_code == 201, made.text

    after = {url: _poll(group, client, url)[0] for url in urls}
    assert after == before


def test_a_history_cursor_is_no_one_elses(group: Group) -> None:
    """The next link of Tuen Mun's doctor's poll, sent by Tuen Mun's integration client
    (or the desk): 400 in the words a made-up cursor gets, nothing listed."""
    client = _integration_client(group)
    made = group.call(
        group.doctor_tm, "POST", "/fhir/Observation", observation(group.tm_patient.id)
    )
    assert made.status_code == 201, made.text
    _, links = _poll(group, group.doctor_tm.headers, "/fhir/_history?_count=1")
    assert links
    cursor = links[0]
    assert "_offset=" in cursor.rsplit("&", 1)[-1], cursor
    forged = cursor[: cursor.rindex("=") + 1] + "A" * len(cursor[cursor.rindex("=") + 1 :])
    for headers in (client, group.desk_tm.headers):
        theirs = group.web.get(cursor, headers=headers)
        made_up = group.web.get(forged, headers=headers)
        assert theirs.status_code == made_up.status_code == 400
        assert _told(theirs) == _told(made_up)


def _deleted_visit_of_tsuen_wan(group: Group) -> str:
    made = group.call(
        group.doctor_tw, "POST", "/fhir/Encounter", encounter(group.tw_patient.id, TW)
    )
    assert made.status_code == 201, made.text
    visit = str(made.json()["id"])
    assert group.call(group.doctor_tw, "DELETE", f"/fhir/Encounter/{visit}").status_code == 204
    return visit


def _write_naming(
    group: Group, who: Staff, method: str, path: str, body: dict[str, Any], visit: str
) -> tuple[int, str]:
    """The answer to a write of ``body`` naming ``Encounter/visit``: status, and the
    words of a refusal (or the record's type), the visit's id taken out."""
    sent = {**body, "encounter": {"reference": f"Encounter/{visit}"}}
    response = group.call(who, method, path, sent)
    answer = response.json()
    if answer["resourceType"] == "OperationOutcome":
        said = "; ".join(i.get("diagnostics", "") for i in answer["issue"])
    else:
        said = answer["resourceType"]
    return response.status_code, said.replace(visit, "<id>")


@pytest.mark.parametrize("role", [Role.PHYSICIAN, Role.NURSE, Role.FRONT_DESK, Role.PHARMACIST])
def test_a_write_naming_another_clinics_deleted_visit_answers_as_for_an_id_never_used(
    group: Group, role: Role
) -> None:
    """A read of Tsuen Wan's deleted visit answers 404, as an id never used does; a
    record of one's own patient naming it as its ``encounter`` was placed at the deleted
    visit's clinic and refused ("placed only at your clinics") where one naming an id
    never used was written (201), or refused for what it is: each id tried told whether
    it had been a visit, and another clinic's."""
    gone = _deleted_visit_of_tsuen_wan(group)
    insider = group.doctor_tm if role is Role.PHYSICIAN else make_staff(group.services, role, [TM])
    assert group.call(insider, "GET", f"/fhir/Encounter/{gone}").status_code == 404
    own = group.tm_patient
    condition = {
        "resourceType": "Condition",
        "subject": {"reference": f"Patient/{own.id}"},
        "code": {"text": "sprained ankle"},
    }
    stored = group.call(group.doctor_tm, "GET", f"/fhir/Observation/{own.observation}").json()

    for method, path, body in (
        ("POST", "/fhir/Observation", observation(own.id)),
        ("POST", "/fhir/Condition", condition),
        ("PUT", f"/fhir/Observation/{own.observation}", stored),
    ):
        deleted = _write_naming(group, insider, method, path, body, gone)
        never = _write_naming(group, insider, method, path, body, f"never-used-{len(gone)}")
        assert deleted == never, (method, path)
        assert "placed" not in deleted[1]


def test_a_record_naming_a_deleted_visit_stays_with_its_patients_clinics(group: Group) -> None:
    """What the fix writes: a record naming a deleted visit of another clinic is placed
    by its patient, as one naming an id never used: Tsuen Wan does not read it."""
    gone = _deleted_visit_of_tsuen_wan(group)
    body = {**observation(group.tm_patient.id), "encounter": {"reference": f"Encounter/{gone}"}}
    made = group.call(group.doctor_tm, "POST", "/fhir/Observation", body)
    assert made.status_code == 201, made.text
    record = made.json()["id"]
    assert group.call(group.doctor_tm, "GET", f"/fhir/Observation/{record}").status_code == 200
    assert group.call(group.doctor_tw, "GET", f"/fhir/Observation/{record}").status_code == 403
