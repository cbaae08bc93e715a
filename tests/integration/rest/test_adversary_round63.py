"""Adversary round 63, the newest doors: ``If-Modified-Since`` on reads (and
``request.ifModifiedSince`` on a Bundle's GET entry), conditional update and delete as
Bundle entries, and the router's refusals under ``/fhir``. Tuen Mun's front desk and
doctor (ordinary logins of one clinic of two) try to learn whether a record they may not
read exists, when it changed or what it holds, or to write what they may not. Each
attack is sent as they sent it, on SQLite and PostgreSQL, on a clock the test moves.

Every attack held, and each is kept as a guard (named ``guard``) where earlier rounds'
tests did not send it: those sent the new doors as the system, or only by HKID, not as
staff of one clinic at another clinic's values. Seen this round and closed after it: a
Bundle's write entries ignored ``ifNoneMatch`` (a loader's create-only ``PUT`` replaced a
booking Tuen Mun's desk wrote first under the loader's id); the last tests hold them to
the request alone."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from carevault.bootstrap import Services
from carevault.clock import http_date, to_micros
from tests.integration.access.group import (
    HIV,
    HKID_SYSTEM,
    TM,
    Group,
    build_group,
    created,
    registered_patient,
)
from tests.support.client import FhirTestClient
from tests.support.console import MovableClock
from tests.support.staff import Staff

pytestmark = [pytest.mark.postgres, pytest.mark.movable_clock]

#: Seconds the clock moves on after the group is written: every record predates a date
#: this far back by more than a second, so the date is one that answers 304.
LATER = 60


@pytest.fixture
def group(services: Services, api: FhirTestClient, clock: MovableClock) -> Iterator[Group]:
    for built in build_group(services, api):
        clock.advance(LATER)
        yield built


def _since(clock: MovableClock) -> int:
    """A moment after every record of the group was written, before the clock's now."""
    return to_micros(clock()) - LATER // 2 * 1_000_000


def _instant(micros: int) -> str:
    return datetime.fromtimestamp(micros // 1_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _bundle(kind: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def _ledger_size(group: Group) -> int:
    return int(group.services.audit_ledger.store.head()[0])


def _answer(response: Any) -> tuple[int, str | None, str | None, str | None, str]:
    """What a caller can tell apart in an answer: status, the version headers, body."""
    headers = response.headers
    return (
        response.status_code,
        headers.get("etag"),
        headers.get("last-modified"),
        headers.get("allow"),
        response.text,
    )


def _get(group: Group, who: Staff, method: str, path: str, since: int | None) -> Any:
    headers = dict(who.headers)
    if since is not None:
        headers["If-Modified-Since"] = http_date(since)
    return group.web.request(method, path, headers=headers)


def _entries(response: Any) -> list[dict[str, Any]]:
    """A Bundle answer's entry responses (the ``response`` parts), or the refusal."""
    body = response.json()
    if body.get("resourceType") != "Bundle":
        return [{"refused": response.status_code, "outcome": body}]
    return [entry["response"] for entry in body["entry"]]


@pytest.mark.parametrize("who", ["desk_tm", "doctor_tm"])
def test_guard_if_modified_since_tells_nothing_of_a_record_the_caller_may_not_read(
    group: Group, clock: MovableClock, who: str
) -> None:
    """A date that answers 304 for a record the caller reads changes nothing for one
    they may not read (Tsuen Wan's patient, a version of it, its observation) or one
    never written: the same status, headers and words as without the date, by GET,
    HEAD and a batch's or transaction's GET entry; no ``Last-Modified`` leaves with a
    refusal, and each refused read is in the ledger as it is without the date."""
    staff: Staff = getattr(group, who)
    since = _since(clock)
    tw = group.tw_patient
    own = f"/fhir/Patient/{group.tm_patient.id}"
    for method in ("GET", "HEAD"):
        # Staff reads take the loop's path (SQLite) or the prefetch (PostgreSQL), which
        # the system's reads in rest/test_if_modified_since.py do not: a 304 there is
        # in the ledger too, before it is answered.
        before = _ledger_size(group)
        assert _get(group, staff, method, own, since).status_code == 304, method
        assert _ledger_size(group) > before, method
    hidden = [f"/fhir/Patient/{tw.id}", f"/fhir/Patient/{tw.id}/_history/1"]
    hidden.append(f"/fhir/Observation/{tw.observation}")
    never = ["/fhir/Patient/r63-never", "/fhir/Patient/r63-never/_history/1"]
    for path in [*hidden, *never]:
        for method in ("GET", "HEAD"):
            plain = _get(group, staff, method, path, None)
            before = _ledger_size(group)
            dated = _get(group, staff, method, path, since)
            assert _ledger_size(group) > before, (method, path)
            assert _answer(dated) == _answer(plain), (method, path)
            assert dated.status_code == (403 if path in hidden else 404), (method, path)
            assert "last-modified" not in dated.headers and "etag" not in dated.headers
    entry = {"method": "GET", "url": f"Patient/{tw.id}"}
    dated_entry = {**entry, "ifModifiedSince": _instant(since)}
    own_entry = {"method": "GET", "url": f"Patient/{group.tm_patient.id}"}
    own_entry["ifModifiedSince"] = _instant(since)
    batch = _bundle("batch", *({"request": e} for e in (own_entry, entry, dated_entry)))
    answered = _entries(group.call(staff, "POST", "/fhir", batch))
    assert answered[0]["status"].startswith("304"), answered
    assert answered[1] == answered[2] and answered[1]["status"] == "403", answered
    for kind in ("transaction", "batch"):
        plain = group.call(staff, "POST", "/fhir", _bundle(kind, {"request": entry}))
        dated = group.call(staff, "POST", "/fhir", _bundle(kind, {"request": dated_entry}))
        assert dated.status_code == plain.status_code, kind
        assert _entries(dated) == _entries(plain), kind
        # The entries' words, not the Bundle's own id and time, which are random.
        assert "304" not in json.dumps(_entries(dated)), kind


def _desk_criteria(group: Group) -> list[tuple[str, str]]:
    """Criteria on values of Tsuen Wan's patient the desk may not read, each beside the
    same criteria matching no one."""
    tw = group.tw_patient
    return [
        (f"birthdate={tw.birth_date}&family=Lee", "birthdate=1901-01-01&family=Lee"),
        (f"_id={tw.id}", "_id=r63-never"),
        (f"identifier={HKID_SYSTEM}|{tw.hkid}", f"identifier={HKID_SYSTEM}|Z999999(9)"),
    ]


def _desk_entries(criteria: str) -> list[dict[str, Any]]:
    url = f"Patient?{criteria}"
    planted = {
        "resourceType": "Patient",
        "name": [{"family": "Planted"}],
        "managingOrganization": {"reference": f"Organization/{TM}"},
    }
    return [
        {"request": {"method": "DELETE", "url": url}},
        {"request": {"method": "DELETE", "url": url, "ifMatch": 'W/"1"'}},
        {"request": {"method": "PUT", "url": url, "ifMatch": 'W/"1"'}, "resource": planted},
    ]


def test_guard_a_desks_conditional_entries_on_another_clinics_values_tell_and_touch_nothing(
    group: Group,
) -> None:
    """Tuen Mun's desk sends conditional deletes (plain and with ``ifMatch``) and a
    conditional update with ``ifMatch`` whose criteria are Tsuen Wan's patient's birth
    date and name, id or HKID, in a batch and a transaction: each answers exactly as
    the same criteria matching no one do (204, 204, 412, the same words), and the
    patient is not touched."""
    for matching, nobody in _desk_criteria(group):
        for one, other in zip(_desk_entries(matching), _desk_entries(nobody), strict=True):
            for kind in ("batch", "transaction"):
                hit = group.call(group.desk_tm, "POST", "/fhir", _bundle(kind, one))
                miss = group.call(group.desk_tm, "POST", "/fhir", _bundle(kind, other))
                assert hit.status_code == miss.status_code, (kind, one)
                assert _entries(hit) == _entries(miss), (kind, one)
    held = group.call(group.desk_tw, "GET", f"/fhir/Patient/{group.tw_patient.id}")
    assert held.status_code == 200 and held.json()["meta"]["versionId"] == "1"
    assert "Planted" not in held.text


def test_guard_a_doctors_conditional_writes_on_a_diagnosis_he_may_not_see_tell_nothing(
    group: Group, api: FhirTestClient
) -> None:
    """Tuen Mun's doctor does not care for two patients registered at his clinic; one
    has an HIV diagnosis. Criteria naming the diagnosis (``Condition?patient=&code=``)
    as a conditional update, delete, create (``ifNoneExist``) or reference, alone and in
    a batch and a transaction, answer alike for both patients, and delete nothing."""
    with_hiv = registered_patient(api, TM, "Ho")
    without = registered_patient(api, TM, "Yu")
    diagnosis = created(
        api,
        {"resourceType": "Condition", "code": HIV, "subject": {"reference": f"Patient/{with_hiv}"}},
    )

    def answers(patient: str) -> list[Any]:
        url = f"Condition?patient={patient}&code={HIV['coding'][0]['system']}|B20"
        body = {
            "resourceType": "Condition",
            "code": {"text": "review"},
            "subject": {"reference": f"Patient/{patient}"},
        }
        noted = {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "review"},
            "subject": {"reference": f"Patient/{patient}"},
            "focus": [{"reference": url}],
        }
        entries = [
            {"request": {"method": "PUT", "url": url}, "resource": body},
            {"request": {"method": "DELETE", "url": url}},
            {"request": {"method": "POST", "url": "Condition", "ifNoneExist": url.split("?")[1]}}
            | {"resource": body},
            {"request": {"method": "POST", "url": "Observation"}, "resource": noted},
        ]
        said: list[Any] = []
        for method, sent in (("PUT", body), ("DELETE", None)):
            alone = group.call(group.doctor_tm, method, f"/fhir/{url}", sent)
            said.append((alone.status_code, alone.text.replace(patient, "P")))
        for kind in ("batch", "transaction"):
            for entry in entries:
                answer = group.call(group.doctor_tm, "POST", "/fhir", _bundle(kind, entry))
                said.append(
                    (answer.status_code, json.dumps(_entries(answer)).replace(patient, "P"))
                )
        return said

    assert answers(with_hiv) == answers(without)
    kept = api.get(f"/fhir/Condition/{diagnosis}")
    assert kept.status_code == 200 and kept.json()["meta"]["versionId"] == "1"


ROUTED = [
    ("POST", "/fhir/{type}/{id}"),
    ("PATCH", "/fhir/{type}/{id}/_history/1"),
    ("DELETE", "/fhir/{type}/{id}/_history"),
    ("GET", "/fhir/{type}/{id}/_history/1/more"),
    ("PUT", "/fhir/{type}/{id}/$everything"),
    ("GET", "/fhir/{type}/{id}/$nonsense"),
    ("GET", "/fhir/{type}/{id}/Condition"),
    ("HEAD", "/fhir/{type}/{id}/_history/1/_history"),
]


@pytest.mark.parametrize(("method", "path"), ROUTED)
def test_guard_routing_refusals_read_the_same_for_any_id_and_any_type(
    group: Group, method: str, path: str
) -> None:
    """The router's refusals, to Tuen Mun's desk: the same status, ``Allow`` and words
    for Tsuen Wan's patient, Tuen Mun's and an id never used; and for a type the desk
    reads (Patient) and one it may not (Observation), the type's name aside. The
    ledger records the refusal alike, whatever the id."""
    tw, tm = group.tw_patient, group.tm_patient
    said: dict[str, set[tuple[Any, ...]]] = {}
    for type_name, ids in (
        ("Patient", (tw.id, tm.id, "r63-never")),
        ("Observation", (tw.observation, tm.observation, "r63-never")),
    ):
        for ident in ids:
            before = _ledger_size(group)
            answer = group.call(group.desk_tm, method, path.format(type=type_name, id=ident))
            grown = _ledger_size(group) - before
            status, _, _, allow, text = _answer(answer)
            text = text.replace(ident, "ID").replace(type_name, "TYPE")
            said.setdefault(type_name, set()).add((status, allow, text, grown))
            assert status in (404, 405), answer.text
    assert [len(answers) for answers in said.values()] == [1, 1], said
    if "$everything" not in path:
        # $everything is Patient's operation alone: Observation has none of that name.
        assert said["Patient"] == said["Observation"], said


def _patient_version(api: FhirTestClient, patient: str) -> str:
    response = api.get(f"/fhir/Patient/{patient}")
    assert response.status_code == 200, response.text
    return str(response.json()["meta"]["versionId"])


def _put_entry(patient: str, **request: str) -> dict[str, Any]:
    return {
        "resource": {
            "resourceType": "Patient",
            "id": patient,
            "name": [{"family": "Replaced"}],
            "managingOrganization": {"reference": f"Organization/{TM}"},
        },
        "request": {"method": "PUT", "url": f"Patient/{patient}", **request},
    }


@pytest.mark.parametrize("kind", ["transaction", "batch"])
def test_a_write_entrys_if_none_match_is_weighed_as_the_request_alone_weighs_it(
    api: FhirTestClient, kind: str
) -> None:
    """A loader's ``PUT`` entry with ``ifNoneMatch: *`` (create, never replace) replaced
    a record written first under its id (a desk's booking, this round), and a ``DELETE``
    entry with it deleted, where the same request alone answers ``412``. Now an entry's
    ``ifNoneMatch`` is the request's ``If-None-Match``: ``412`` and nothing written."""
    patient = registered_patient(api, TM, "Chan")
    alone = api.put(
        f"/fhir/Patient/{patient}",
        content=json.dumps(_put_entry(patient)["resource"]),
        headers={"content-type": "application/fhir+json", "If-None-Match": "*"},
    )
    assert alone.status_code == 412, alone.text
    for entry in (
        _put_entry(patient, ifNoneMatch="*"),
        _put_entry(patient, ifNoneMatch='W/"1"'),
        {"request": {"method": "DELETE", "url": f"Patient/{patient}", "ifNoneMatch": "*"}},
    ):
        answer = api.post_json("/fhir", _bundle(kind, entry))
        if kind == "transaction":
            assert answer.status_code == 412, answer.text
        else:
            assert answer.status_code == 200, answer.text
            assert _entries(answer)[0]["status"].startswith("412"), answer.text
        assert _patient_version(api, patient) == "1"
    # A version not named, or an id not used yet, is written as alone.
    other = api.post_json("/fhir", _bundle(kind, _put_entry(patient, ifNoneMatch='W/"9"')))
    assert other.status_code == 200, other.text
    assert _patient_version(api, patient) == "2"
    fresh = api.post_json("/fhir", _bundle(kind, _put_entry("never-used-63", ifNoneMatch="*")))
    assert fresh.status_code == 200, fresh.text
    assert _entries(fresh)[0]["status"].startswith("201"), fresh.text


@pytest.mark.parametrize("kind", ["transaction", "batch"])
def test_an_if_none_match_no_write_can_weigh_is_refused_naming_its_entry(
    api: FhirTestClient, kind: str
) -> None:
    patient = registered_patient(api, TM, "Chan")
    answer = api.post_json("/fhir", _bundle(kind, _put_entry(patient, ifNoneMatch="yes")))
    if kind == "transaction":
        assert answer.status_code == 400, answer.text
        assert "Bundle.entry[0]" in answer.text and "If-None-Match" in answer.text
    else:
        assert _entries(answer)[0]["status"].startswith("400"), answer.text
    assert _patient_version(api, patient) == "1"
