"""Through the HTTP API: an account reads a known set of patients (some of it withheld by
its role), an incident is declared for that account and window by a privacy officer,
and the scope lists exactly those patients with exactly the categories each was shown;
another account's reads in the same window stay out. An amendment shows what changed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from carevault.bootstrap import Services
from carevault.domain.hkid import check_digit
from carevault.domain.roles import Role
from carevault.fhir.categories import element_categories
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate import Caller
from carevault.ledger.events import Outcome, Tag
from carevault.notify.scope import parse_scope
from carevault.vault.writer import Put
from tests.integration.access.browser import basic
from tests.integration.access.group import TM, Group, build_group, observation, patient_seen
from tests.support.client import FhirTestClient
from tests.support.staff import make_staff, open_token


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _hkid(prefix: str, digits: str) -> str:
    return f"{prefix}{digits}({check_digit(prefix, digits)})"


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _shown(body: dict[str, Any], shown: dict[str, set[str]]) -> None:
    """Record the categories of every patient resource in a response body, by patient."""
    resources = (
        [entry["resource"] for entry in body.get("entry", [])]
        if body["resourceType"] == "Bundle"
        else [body]
    )
    for resource in resources:
        kind = resource["resourceType"]
        if kind == "Patient":
            patient = resource["id"]
        elif "subject" in resource or "patient" in resource:
            patient = (resource.get("subject") or resource.get("patient"))["reference"].split("/")[
                1
            ]
        else:
            continue  # directory resources: no one's data
        categories = element_categories(RESOURCE_TYPES[kind], resource)
        shown.setdefault(patient, set()).update(str(c) for c in categories)


def test_scope_lists_exactly_what_the_account_was_shown(group: Group, api: FhirTestClient) -> None:
    hkids = [_hkid("B", "111111"), _hkid("D", "222222")]
    more = [
        patient_seen(api, TM, f"Ho{n}", hkid, f"1990-01-0{n + 1}") for n, hkid in enumerate(hkids)
    ]
    p1, p2, p3 = group.tm_patient.id, more[0].id, more[1].id
    api.post_json("/fhir/Observation", observation(p3, "BP 150/95"))
    since = datetime.now(UTC) - timedelta(seconds=1)
    shown: dict[str, set[str]] = {}
    # The front desk: patients' records with the HKID withheld, one $everything whose
    # clinical records are not for its eyes, and a refused read of an observation.
    for path in (f"/fhir/Patient/{p1}", f"/fhir/Patient/{p2}", f"/fhir/Patient/{p3}/$everything"):
        response = group.call(group.desk_tm, "GET", path)
        assert response.status_code == 200, response.text
        _shown(response.json(), shown)
    refused = group.call(group.desk_tm, "GET", f"/fhir/Observation/{group.tm_patient.observation}")
    assert refused.status_code in (403, 404)
    # Another account in the same window: a physician reading another patient.
    other = group.tw_patient.id
    assert group.call(group.doctor_tw, "GET", f"/fhir/Patient/{other}").status_code == 200
    until = datetime.now(UTC) + timedelta(seconds=1)
    assert "government_id" not in set().union(*shown.values())

    officer = group.officer.headers
    case = {"title": "desk account phished", "accounts": [group.desk_tm.account.username],
            "since": _instant(since), "until": _instant(until)}  # fmt: skip
    created = group.web.post("/admin/incidents", json=case, headers=officer)
    assert created.status_code == 201, created.text
    incident = created.json()["id"]

    scope = group.web.get(f"/admin/incidents/{incident}/scope?format=json", headers=officer)
    assert scope.status_code == 200, scope.text
    document = scope.json()
    confirmed = {
        line["patient"]: set(line["categories"]) for line in document["tiers"]["confirmed"]
    }
    assert confirmed == shown
    assert other not in {line["patient"] for tier in ("confirmed", "decrypted")
                         for line in document["tiers"][tier]}  # fmt: skip
    assert document["counts"]["people"]["confirmed"] == 3
    assert document["incident"]["compromised"]["accounts"] == [group.desk_tm.account.username]
    # The notification helper's reading of the same document.
    assert parse_scope(document).patient_count(("confirmed",)) == 3

    # The investigation learns the physician's account was used too: re-running says so.
    amended = group.web.post(
        f"/admin/incidents/{incident}/amend",
        json={"adds": {"accounts": [group.doctor_tw.account.username]}, "note": "second account"},
        headers=officer,
    )
    assert amended.status_code == 200, amended.text
    again = group.web.get(f"/admin/incidents/{incident}/scope", headers=officer).json()
    assert other in {line["patient"] for line in again["tiers"]["confirmed"]}
    assert again["incident"]["changes"]["confirmed"]["added"] == [other]
    timeline = group.web.get(f"/admin/incidents/{incident}/timeline", headers=officer).json()
    assert [item["kind"] for item in timeline["timeline"]] == [
        "declared", "scoped", "amended", "scoped"
    ]  # fmt: skip


def test_only_a_privacy_officer_handles_incidents(group: Group) -> None:
    case = {"title": "x", "accounts": ["someone"], "since": "2026-01-01"}
    refused = group.web.post("/admin/incidents", json=case, headers=group.doctor_tm.headers)
    assert refused.status_code == 403
    assert group.web.get("/admin/incidents", headers=group.desk_tm.headers).status_code == 403
    assert group.web.get("/admin/incidents").status_code == 401


@pytest.mark.parametrize(
    "case",
    [
        {"title": "x", "accounts": ["a"], "since": "yesterday"},
        {"title": "x", "addresses": ["10.0.0.300"], "since": "2026-01-01"},
        {"title": "x", "accounts": ["a"], "since": "2026-02-01", "until": "2026-01-01"},
        {"title": "", "accounts": ["a"], "since": "2026-01-01"},
        {"title": "x", "since": "2026-01-01"},
        {"title": "x", "accounts": "a", "since": "2026-01-01"},
        {"title": "x", "accounts": ["a"], "since": "2026-01-01", "colour": "red"},
    ],
)
def test_a_bad_declaration_is_refused_and_changes_nothing(
    group: Group, case: dict[str, Any]
) -> None:
    officer = group.officer.headers
    size = group.services.audit_ledger.store.head()[0]
    response = group.web.post("/admin/incidents", json=case, headers=officer)
    assert response.status_code == 400, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    assert group.web.get("/admin/incidents", headers=officer).json() == {"incidents": []}
    # The refusal itself is recorded (web:request:refused); nothing else is written.
    store = group.services.audit_ledger.store
    written = [json.loads(data)["tag"] for _, data in store.entries(size, store.head()[0])]
    assert set(written) <= {"web:request:refused"}, written


def test_scope_of_a_missing_incident_is_not_found(group: Group) -> None:
    response = group.web.get("/admin/incidents/99/scope", headers=group.officer.headers)
    assert response.status_code == 404


def test_the_same_person_registered_at_two_clinics_is_counted_once(
    group: Group, api: FhirTestClient
) -> None:
    from carevault.incidents import Actor, declare_case, scope_document
    from tests.integration.access.group import TW

    hkid = _hkid("E", "333333")
    first = patient_seen(api, TM, "Yip", hkid, "1960-05-05").id
    second = patient_seen(api, TW, "Yip", hkid.replace("(", " ("), "1960-05-05").id
    since = datetime.now(UTC) - timedelta(seconds=1)
    for patient in (first, second, group.tw_patient.id):
        assert api.get(f"/fhir/Patient/{patient}").status_code == 200
    case = {"title": "t", "accounts": ["system:test"], "since": _instant(since),
            "until": _instant(datetime.now(UTC) + timedelta(seconds=1))}  # fmt: skip
    incident = declare_case(group.services, Actor("staff:officer"), case).incident_id
    document = scope_document(group.services, incident)
    persons = {line["patient"]: line["person"] for line in document["tiers"]["confirmed"]}
    assert set(persons) == {first, second, group.tw_patient.id}
    assert persons[first] == persons[second] == min(first, second)
    assert persons[group.tw_patient.id] == group.tw_patient.id
    assert document["counts"]["people"]["confirmed"] == 2
    assert document["counts"]["by_clinic"]["confirmed"] == {TM: 1, TW: 2}


def test_an_incident_declared_from_an_unknown_alert_is_refused(group: Group) -> None:
    body = {"alert": "999", "since": "2026-01-01"}
    response = group.web.post("/admin/incidents", json=body, headers=group.officer.headers)
    assert response.status_code == 400 and "no alert 999" in response.text


def test_the_scope_runs_while_patient_data_is_offline(group: Group, api: FhirTestClient) -> None:
    """Containment must not stop the scope: people are then counted by record."""
    from carevault.containment.state import Mode
    from carevault.incidents import Actor, declare_case, scope_document

    since = datetime.now(UTC) - timedelta(seconds=1)
    assert api.get(f"/fhir/Patient/{group.tm_patient.id}").status_code == 200
    case = {"title": "t", "accounts": ["system:test"], "since": _instant(since)}
    incident = declare_case(group.services, Actor("staff:officer"), case).incident_id
    group.services.containment.start(Mode.PHI_OFFLINE, None, "incident", "staff:officer")
    document = scope_document(group.services, incident)
    assert [line["patient"] for line in document["tiers"]["confirmed"]] == [group.tm_patient.id]


def _scope_reads(services: Services) -> int:
    """Patient records the scope read through the gate (each one decrypted and recorded)."""
    events = [json.loads(data) for _, data in services.audit_ledger.store.entries()]
    return sum(
        1
        for event in events
        if event.get("principal") == "system:incident-scope"
        and event.get("tag") == "fhir:resource:read"
    )


def test_a_scope_run_again_reads_only_the_records_that_changed(
    group: Group, api: FhirTestClient
) -> None:
    """The people of a scope come from the HKID tokens of the records: a second run takes
    them from memory (no decryption, no ledger entry), and a record changed since is read
    again, so the answer is the one a full read would give."""
    from carevault.incidents import Actor, declare_case, scope_document
    from tests.integration.access.group import TW

    hkid = _hkid("G", "444444")
    first = patient_seen(api, TM, "Lau", hkid, "1970-06-06").id
    second = patient_seen(api, TW, "Lau", hkid, "1970-06-06").id
    since = datetime.now(UTC) - timedelta(seconds=1)
    for patient in (first, second):
        assert api.get(f"/fhir/Patient/{patient}").status_code == 200
    case = {"title": "t", "accounts": ["system:test"], "since": _instant(since),
            "until": _instant(datetime.now(UTC) + timedelta(hours=1))}  # fmt: skip
    incident = declare_case(group.services, Actor("staff:officer"), case).incident_id

    def persons() -> dict[str, str]:
        document = scope_document(group.services, incident)
        return {line["patient"]: line["person"] for line in document["tiers"]["confirmed"]}

    assert persons()[second] == min(first, second)
    reads = _scope_reads(group.services)
    assert reads == 2
    assert persons()[second] == min(first, second)
    assert _scope_reads(group.services) == reads, "an unchanged record was read again"
    body = api.get(f"/fhir/Patient/{second}").json()
    body["identifier"] = [
        {"system": body["identifier"][0]["system"], "value": _hkid("H", "555555")}
    ]
    # Changed by someone else than the incident's account (whose own writes the scope
    # groups without: adversary round 49).
    group.services.gate.write(
        Caller(principal="system:records"), [Put(RESOURCE_TYPES["Patient"], second, body)]
    )
    again = persons()
    assert again[second] == second and again[first] == first
    assert _scope_reads(group.services) == reads + 1, "only the changed record is read again"


def test_a_record_shredded_since_the_last_scope_run_is_not_matched_from_memory(
    group: Group, api: FhirTestClient
) -> None:
    """An erased record is counted on its own (before, an erased patient in a notifiable
    tier stopped the scope with an error)."""
    from carevault.incidents import Actor, declare_case, scope_document
    from tests.integration.access.group import TW

    hkid = _hkid("J", "666666")
    first = patient_seen(api, TM, "Mok", hkid, "1980-07-07").id
    second = patient_seen(api, TW, "Mok", hkid, "1980-07-07").id
    since = datetime.now(UTC) - timedelta(seconds=1)
    for patient in (first, second):
        assert api.get(f"/fhir/Patient/{patient}").status_code == 200
    case = {"title": "t", "accounts": ["system:test"], "since": _instant(since),
            "until": _instant(datetime.now(UTC) + timedelta(hours=1))}  # fmt: skip
    incident = declare_case(group.services, Actor("staff:officer"), case).incident_id

    def persons() -> dict[str, str]:
        document = scope_document(group.services, incident)
        return {line["patient"]: line["person"] for line in document["tiers"]["confirmed"]}

    assert persons()[second] == min(first, second)
    pseudonym = group.services.vault.patient_pseudonyms([second])[second]
    assert group.services.keys is not None
    group.services.keys.shred(pseudonym)
    again = persons()
    assert again[second] == second and again[first] == first


def test_the_api_gives_a_kept_run_back_on_request_and_computes_by_default(group: Group) -> None:
    """The default computes and keeps a new run (the body unchanged); ``run=latest`` or
    ``run=N`` gives a kept run back as it was computed, without computing or recording."""
    since = datetime.now(UTC) - timedelta(seconds=1)
    read = group.call(group.desk_tm, "GET", f"/fhir/Patient/{group.tm_patient.id}")
    assert read.status_code == 200
    officer = group.officer.headers
    case = {"title": "t", "accounts": [group.desk_tm.account.username],
            "since": _instant(since)}  # fmt: skip
    incident = group.web.post("/admin/incidents", json=case, headers=officer).json()["id"]
    path = f"/admin/incidents/{incident}/scope"
    assert group.web.get(f"{path}?run=latest", headers=officer).status_code == 404
    computed = group.web.get(path, headers=officer)
    assert computed.status_code == 200, computed.text
    assert set(computed.json()) == {"incident", "tiers", "changed", "registered", "counts"}
    assert computed.headers["x-carevault-scope-run"] == "1"
    again = group.web.get(path, headers=officer)
    assert again.headers["x-carevault-scope-run"] == "2"
    store = group.services.audit_ledger.store
    size = store.head()[0]
    for asked in ("latest", "2"):
        kept = group.web.get(f"{path}?run={asked}", headers=officer)
        assert kept.status_code == 200, kept.text
        assert kept.json() == again.json()
        assert kept.headers["x-carevault-scope-sha256"] == again.headers["x-carevault-scope-sha256"]
    first = group.web.get(f"{path}?run=1&format=csv", headers=officer)
    assert first.status_code == 200 and first.text.startswith("tier,patient")
    assert first.headers["x-carevault-scope-run"] == "1"
    # Reading kept runs computes nothing and records no scope run.
    written = [json.loads(data)["tag"] for _, data in store.entries(size, store.head()[0])]
    assert "incident:scope:computed" not in written
    assert group.web.get(f"{path}?run=9", headers=officer).status_code == 404
    assert group.web.get(f"{path}?run=first", headers=officer).status_code == 400
    runs = group.web.get(f"{path}/runs", headers=officer).json()["runs"]
    assert [(run["run"], run["sha256"]) for run in runs] == [
        (2, again.headers["x-carevault-scope-sha256"]),
        (1, computed.headers["x-carevault-scope-sha256"]),
    ]
    assert group.web.get(f"{path}?run=latest", headers=group.desk_tm.headers).status_code == 403
    assert group.web.get(f"{path}/runs", headers=group.doctor_tm.headers).status_code == 403


def test_a_time_without_a_zone_is_the_groups_in_every_admin_route(group: Group) -> None:
    """``2026-11-30T10:00`` is ten o'clock in the group's zone (Hong Kong: 02:00 UTC) in a
    declaration, an amendment and the audit search, as on the command line."""
    officer = group.officer.headers
    assert group.services.settings.timezone == "Asia/Hong_Kong"
    case = {"title": "naive", "accounts": [group.desk_tm.account.username],
            "since": "2026-11-30T10:00", "until": "2026-12-01"}  # fmt: skip
    declared = group.web.post("/admin/incidents", json=case, headers=officer)
    assert declared.status_code == 201, declared.text
    body = declared.json()
    assert body["since"] == "2026-11-30T02:00:00.000Z"
    assert body["until"] == "2026-11-30T16:00:00.000Z"
    amended = group.web.post(
        f"/admin/incidents/{body['id']}/amend",
        json={"since": "2026-11-29T09:30"}, headers=officer,
    )  # fmt: skip
    assert amended.status_code == 200, amended.text
    assert amended.json()["since"] == "2026-11-29T01:30:00.000Z"
    # The audit search reads its dates the same way: half an hour either side of now on
    # Hong Kong's clock finds the declaration (read as UTC, both would be 7.5 hours ahead).
    local = datetime.now(ZoneInfo("Asia/Hong_Kong"))
    before = (local - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M")
    after = (local + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M")
    found = group.web.get(
        f"/fhir/AuditEvent?date=ge{before}&date=le{after}&_count=500", headers=officer
    )
    assert found.status_code == 200, found.text
    assert found.json().get("entry"), found.json()


@pytest.mark.parametrize(
    "narrowing",
    [{"since": "2026-11-30T12:00"}, {"until": "2026-11-30T20:00"}, {"status": "closed"}],
    ids=["later-start", "earlier-end", "closing"],
)
def test_narrowing_an_incident_over_the_api_takes_the_officers_fresh_code(
    group: Group, narrowing: dict[str, str]
) -> None:
    """A later start, an earlier end or closing takes patients out of who is told: a bearer
    token alone (a stolen one, say) does not do it, as the console's form does not."""
    officer = group.officer.headers
    case = {"title": "t", "accounts": [group.desk_tm.account.username],
            "since": "2026-11-30T10:00", "until": "2026-12-01"}  # fmt: skip
    declared = group.web.post("/admin/incidents", json=case, headers=officer)
    assert declared.status_code == 201, declared.text
    incident = declared.json()
    path = f"/admin/incidents/{incident['id']}/amend"

    for refused in (
        narrowing,
        {**narrowing, "totp": ""},
        {**narrowing, "totp": "000000"},
        {**narrowing, "totp": 123456},
    ):
        answer = group.web.post(path, json=refused, headers=officer)
        assert answer.status_code == 403, answer.text
        assert answer.json()["resourceType"] == "OperationOutcome"
        shown = group.web.get(f"/admin/incidents/{incident['id']}", headers=officer).json()
        assert shown == incident
    officer_principal = f"staff:{group.officer.account.username}"
    refusals = [e for e in group.events(Tag.REQUEST_REFUSED) if e.principal == officer_principal]
    assert len(refusals) >= 4
    refused_amendments = group.events(Tag.INCIDENT_AMEND_REFUSED)
    assert len(refused_amendments) == 4
    assert {(e.principal, e.outcome) for e in refused_amendments} == {
        (officer_principal, Outcome.DENIED)
    }

    # Widening stays free; narrowing with the officer's own fresh code is done.
    widened = group.web.post(path, json={"since": "2026-11-30T09:00"}, headers=officer)
    assert widened.status_code == 200, widened.text
    done = group.web.post(path, json={**narrowing, "totp": group.officer.totp()}, headers=officer)
    assert done.status_code == 200, done.text
    assert done.json() != widened.json()


def test_the_incident_list_is_filtered_by_status_and_an_unknown_status_is_refused(
    group: Group,
) -> None:
    """``?status=`` narrows the list to incidents in that status (as ``/admin/alerts``
    does); a status that is not one is the officer's mistake, named, not an empty list
    nor every incident."""
    officer = group.officer.headers
    ids = []
    for title in ("first", "second"):
        case = {
            "title": title,
            "accounts": [group.desk_tm.account.username],
            "since": "2026-11-30T10:00",
        }
        declared = group.web.post("/admin/incidents", json=case, headers=officer)
        assert declared.status_code == 201, declared.text
        ids.append(declared.json()["id"])
    contained = group.web.post(
        f"/admin/incidents/{ids[1]}/amend", json={"status": "contained"}, headers=officer
    )
    assert contained.status_code == 200, contained.text

    def listed(query: str) -> list[int]:
        response = group.web.get(f"/admin/incidents{query}", headers=officer)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["incidents"]]

    assert listed("") == [ids[1], ids[0]]
    assert listed("?status=open") == [ids[0]]
    assert listed("?status=contained") == [ids[1]]
    assert listed("?status=closed") == []
    for wrong in ("bogus", "OPEN", ""):
        refused = group.web.get(f"/admin/incidents?status={wrong}", headers=officer)
        assert refused.status_code == 400, (wrong, refused.text)
        assert refused.json()["resourceType"] == "OperationOutcome"
        assert "status must be one of open, contained, closed" in refused.text


def test_an_account_no_one_has_is_refused_when_declared_or_added(group: Group) -> None:
    """A typo in a username matches no ledger entry: declared, the scope would be empty and
    read as "no patient affected". It is refused with a 400 that names it, whether
    declared or added by an amendment; a full principal of a process is taken as given,
    one of a client app if the app is registered, and a username however it is spelt."""
    officer = group.officer.headers
    desk = group.desk_tm.account.username
    case = {"title": "t", "accounts": [desk.upper(), f"{desk}x"], "since": "2026-01-01"}
    refused = group.web.post("/admin/incidents", json=case, headers=officer)
    assert refused.status_code == 400, refused.text
    assert f"no staff account '{desk}x'" in refused.text
    assert group.web.get("/admin/incidents", headers=officer).json() == {"incidents": []}
    case["accounts"] = [desk.upper(), "system:backup-agent", "client:test-app"]
    declared = group.web.post("/admin/incidents", json=case, headers=officer)
    assert declared.status_code == 201, declared.text
    path = f"/admin/incidents/{declared.json()['id']}/amend"
    for wrong in ("chan.tn", f"staff:{desk}x", "stafff:chan.tm"):
        added = group.web.post(path, json={"adds": {"accounts": [wrong]}}, headers=officer)
        assert added.status_code == 400, added.text
        assert repr(wrong) in added.json()["issue"][0]["diagnostics"]
    shown = group.web.get(f"/admin/incidents/{declared.json()['id']}", headers=officer).json()
    assert shown == declared.json()


def test_a_client_clinic_or_session_no_one_has_is_refused_when_declared_or_added(
    group: Group,
) -> None:
    """A typo in a client id, a clinic or a session matches no entry either: a 400
    OperationOutcome naming it, declared or added, and nothing changed. A client and a
    clinic are taken as the group spells them, a session as it was issued."""
    officer = group.officer.headers
    session = group.services.sessions.list_for(group.desk_tm.account.account_id)[0].session_id
    for field, wrong in (("clients", "test-ap"), ("clinics", f"{TM}x"), ("sessions", "s0")):
        case = {"title": "t", field: [wrong], "since": "2026-01-01"}
        refused = group.web.post("/admin/incidents", json=case, headers=officer)
        assert refused.status_code == 400, refused.text
        assert refused.json()["resourceType"] == "OperationOutcome"
        assert f"{field}: no " in refused.text and repr(wrong) in refused.text
    assert group.web.get("/admin/incidents", headers=officer).json() == {"incidents": []}
    case = {"title": "t", "clients": ["TEST-APP"], "clinics": [TM.upper()],
            "sessions": [session], "since": "2026-01-01"}  # fmt: skip
    declared = group.web.post("/admin/incidents", json=case, headers=officer)
    assert declared.status_code == 201, declared.text
    compromised = declared.json()["compromised"]
    assert (compromised["clients"], compromised["clinics"]) == (["test-app"], [TM])
    path = f"/admin/incidents/{declared.json()['id']}"
    for field, wrong in (("clients", "lab"), ("clinics", "tn"), ("sessions", session.lower())):
        added = group.web.post(f"{path}/amend", json={"adds": {field: [wrong]}}, headers=officer)
        assert added.status_code == 400, added.text
        assert repr(wrong) in added.json()["issue"][0]["diagnostics"]
    assert group.web.get(path, headers=officer).json() == declared.json()


def _client_token(group: Group, scopes: str) -> str:
    """A client-credentials token of a confidential integration app granted ``scopes``."""
    _, secret = group.services.admin.add_client(
        "admin:test", "lab-feed", "Lab feed", confidential=True, scopes=scopes, clinic_ids=[TM]
    )
    assert secret
    answer = group.web.post(
        "/auth/token",
        data={"grant_type": "client_credentials", "scope": scopes},
        headers=basic("lab-feed", secret),
    )
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


def test_no_other_role_client_or_narrowed_token_declares_widens_narrows_or_closes(
    group: Group,
) -> None:
    """Every incident route, for a clinic manager, a nurse, an integration app's token and
    an officer's own token granted less than the whole account: 403, nothing changed."""
    officer = group.officer.headers
    case = {"title": "t", "accounts": [group.desk_tm.account.username], "since": "2026-01-01"}
    declared = group.web.post("/admin/incidents", json=case, headers=officer).json()
    path = f"/admin/incidents/{declared['id']}"
    others = {
        "manager": make_staff(group.services, Role.CLINIC_MANAGER, [TM]).headers,
        "nurse": make_staff(group.services, Role.NURSE, [TM]).headers,
        "client": {"authorization": f"Bearer {_client_token(group, 'system/*.cruds')}"},
        "narrowed officer": {
            "authorization": "Bearer "
            + open_token(group.services, group.officer.account, "user/Patient.rs")
        },
    }
    totp = group.officer.totp()
    for who, headers in others.items():
        for method, url, body in (
            ("POST", "/admin/incidents", case),
            ("POST", f"{path}/amend", {"adds": {"clients": ["x"]}}),
            ("POST", f"{path}/amend", {"since": "2025-12-01"}),
            ("POST", f"{path}/amend", {"status": "closed", "totp": totp}),
            ("POST", f"{path}/amend", {"until": "2026-01-02", "totp": totp}),
            ("GET", "/admin/incidents", None),
            ("GET", path, None),
            ("GET", f"{path}/timeline", None),
            ("GET", f"{path}/scope", None),
            ("GET", f"{path}/scope/runs", None),
        ):
            answer = group.web.request(method, url, json=body, headers=headers)
            assert answer.status_code == 403, (who, method, url, answer.text)
    assert group.web.get(path, headers=officer).json() == declared
    assert len(group.web.get("/admin/incidents", headers=officer).json()["incidents"]) == 1
    assert group.web.get(f"{path}/scope/runs", headers=officer).json()["runs"] == []
