"""Adversary round 58, held: the doors round 55 and 57 did not try for a record one may not
know of. Tuen Mun's doctor sends the id of a Tsuen Wan diagnosis deleted there, and its
pharmacist the id of an HIV diagnosis it is withheld, through batch and transaction
entries, search modifiers and result parameters, conditional writes and new records
referring to it; and Tuen Mun's desk and doctor send the HKID of a patient Tsuen Wan
deleted. Each answers as an id (or number) never used does, but for the ids the server
makes (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from carevault.bootstrap import Services
from carevault.domain.hkid import check_digit
from carevault.domain.roles import Role
from tests.integration.access.group import (
    HIV,
    HKID_SYSTEM,
    TM,
    TW,
    Group,
    build_group,
    created,
    doctors_condition,
    register_body,
)
from tests.support.client import FhirTestClient
from tests.support.staff import Staff, make_staff

pytestmark = pytest.mark.postgres

UNKNOWN = "no-such-record"
#: What differs between two answers alike: ids, times and addresses the server makes.
MADE = frozenset({"id", "meta", "link", "fullUrl", "location", "etag", "lastModified"})


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _entry(method: str, url: str, resource: Any = None, **request: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"request": {"method": method, "url": url, **request}}
    if resource is not None:
        entry["resource"] = resource
    return entry


def _bundle(kind: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def _observation(**more: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "HbA1c"},
        "subject": {"reference": "Patient/{p}"},
        **more,
    }


NEW = {
    "resourceType": "Condition",
    "code": {"text": "cough"},
    "subject": {"reference": "Patient/{p}"},
}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}

DOORS: list[tuple[str, str, Any, dict[str, str]]] = [
    ("POST", "/fhir", _bundle("batch", _entry("GET", "Condition/{r}")), {}),
    ("POST", "/fhir", _bundle("batch", _entry("GET", "Condition/{r}/_history/1")), {}),
    ("POST", "/fhir", _bundle("batch", _entry("GET", "Condition/{r}/_history")), {}),
    ("POST", "/fhir", _bundle("batch", _entry("DELETE", "Condition/{r}")), {}),
    ("POST", "/fhir", _bundle("batch", _entry("DELETE", "Condition?_id={r}")), {}),
    ("POST", "/fhir", _bundle("transaction", _entry("GET", "Condition/{r}")), {}),
    ("POST", "/fhir", _bundle("transaction", _entry("GET", "Condition?_id={r}")), {}),
    ("POST", "/fhir", _bundle("transaction", _entry("DELETE", "Condition/{r}")), {}),
    (
        "POST",
        "/fhir",
        _bundle("transaction", _entry("DELETE", "Condition/{r}", ifMatch='W/"1"')),
        {},
    ),
    ("POST", "/fhir", _bundle("transaction", _entry("DELETE", "Condition?_id={r}")), {}),
    (
        "POST",
        "/fhir",
        _bundle("transaction", _entry("POST", "Condition", NEW, ifNoneExist="_id={r}")),
        {},
    ),
    ("POST", "/fhir", _bundle("transaction", _entry("PUT", "Condition?_id={r}", NEW)), {}),
    ("GET", "/fhir/Condition?_id={r}&_include=Condition:subject", None, {}),
    ("GET", "/fhir/Condition?_id={r}&_revinclude=Condition:subject", None, {}),
    ("GET", "/fhir/Condition?_id={r}&_total=accurate", None, {}),
    ("GET", "/fhir/Condition?_id:not={r}&_summary=count", None, {}),
    ("GET", "/fhir/Condition?_id:missing=false&_id={r}", None, {}),
    ("GET", "/fhir/Condition?_id={r}&_sort=-_lastUpdated", None, {}),
    ("GET", "/fhir/Condition/_history?_id={r}", None, {}),
    ("GET", "/fhir/Condition/{r}?_summary=count", None, {}),
    ("GET", "/fhir/Condition/{r}/_history?_since=2000-01-01", None, {}),
    ("GET", "/fhir/Condition/{r}/_history?_at=2000-01-01", None, {}),
    ("GET", "/fhir/Condition/{r}/_history/abc", None, {}),
    ("GET", "/fhir/Condition/{r}/_history/0", None, {}),
    ("GET", "/fhir/Condition/{r}/_history/01", None, {}),
    ("GET", "/fhir/Condition/{r}", None, {"Accept": "application/fhir+xml"}),
    ("GET", "/fhir/Condition/{r}", None, {"Prefer": "handling=strict"}),
    ("OPTIONS", "/fhir/Condition/{r}", None, {}),
    ("GET", "/fhir/Observation?_has:Condition:subject:_id={r}", None, {}),
    ("POST", "/fhir/Condition", NEW, {"If-None-Exist": "_id={r}"}),
    ("PUT", "/fhir/Condition?_id={r}", NEW, {}),
    (
        "POST",
        "/fhir",
        _bundle(
            "transaction",
            _entry("POST", "Observation", _observation(focus=[{"reference": "Condition/{r}"}])),
        ),
        {},
    ),
    ("POST", "/fhir/Observation", _observation(focus=[{"reference": "Condition/{r}"}]), {}),
    ("POST", "/fhir/Observation", _observation(hasMember=[{"reference": "Condition/{r}"}]), {}),
    (
        "POST",
        "/fhir/Observation",
        _observation(derivedFrom=[{"reference": "Condition/{r}/_history/1"}]),
        {"Prefer": "return=representation"},
    ),
    (
        "POST",
        "/fhir/Condition",
        {**NEW, "evidence": [{"detail": [{"reference": "Condition/{r}"}]}]},
        {},
    ),
    ("GET", "/fhir/Observation?focus=Condition/{r}&_summary=count", None, {}),
    ("GET", "/fhir/MedicationRequest?reason-reference=Condition/{r}&_summary=count", None, {}),
]


def _filled(value: Any, record: str, patient: str) -> Any:
    if isinstance(value, str):
        return value.replace("{r}", record).replace("{p}", patient)
    if isinstance(value, dict):
        return {k: _filled(v, record, patient) for k, v in value.items()}
    if isinstance(value, list):
        return [_filled(v, record, patient) for v in value]
    return value


def _without_made(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_made(v) for k, v in value.items() if k not in MADE}
    if isinstance(value, list):
        return [_without_made(v) for v in value]
    return value


def _said(response: Any, record: str) -> tuple[int, Any]:
    text = response.text.replace(record, UNKNOWN)
    try:
        return response.status_code, _without_made(json.loads(text))
    except ValueError:
        return response.status_code, text


def _hidden(group: Group, kind: str) -> tuple[str, Staff]:
    """A diagnosis the caller may not know of, and the caller."""
    if kind == "deleted-at-tw":
        made = group.call(
            group.doctor_tw, "POST", "/fhir/Condition", _filled(NEW, "", group.tw_patient.id)
        )
        assert made.status_code == 201, made.text
        record = str(made.json()["id"])
        assert group.call(group.doctor_tw, "DELETE", f"/fhir/Condition/{record}").status_code == 204
        return record, group.doctor_tm
    return doctors_condition(group, HIV), make_staff(group.services, Role.PHARMACIST, [TM])


@pytest.mark.parametrize(
    ("method", "path", "body", "headers"),
    DOORS,
    ids=[f"{n}-{m}-{p.rsplit('/', 1)[-1][:30]}" for n, (m, p, _, _) in enumerate(DOORS)],
)
@pytest.mark.parametrize("hidden", ["deleted-at-tw", "hiv-for-a-pharmacist"])
def test_a_record_one_may_not_know_of_answers_as_an_id_never_used_at_every_other_door(
    group: Group, hidden: str, method: str, path: str, body: Any, headers: dict[str, str]
) -> None:
    record, caller = _hidden(group, hidden)
    patient = group.tm_patient.id

    def sent(ident: str) -> Any:
        merged = {**caller.headers, **headers}
        given = _filled(body, ident, patient)
        if given is None:
            return group.web.request(method, _filled(path, ident, patient), headers=merged)
        merged.setdefault("Content-Type", "application/fhir+json")
        return group.web.request(
            method, _filled(path, ident, patient), content=json.dumps(given), headers=merged
        )

    unknown = sent(UNKNOWN)
    answer = sent(record)
    assert _said(answer, record) == _said(unknown, UNKNOWN), (answer.text, unknown.text)


def _hkid(letter: str) -> str:
    return f"{letter}123456({check_digit(letter, '123456')})"


def _patient(hkid: str, clinic: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": HKID_SYSTEM, "value": hkid}],
        "name": [{"family": "Ho"}],
        "birthDate": "1990-01-01",
        "managingOrganization": {"reference": f"Organization/{clinic}"},
    }


@pytest.mark.parametrize("who", ["desk_tm", "doctor_tm"])
def test_the_hkid_of_a_patient_deleted_at_another_clinic_answers_as_one_never_used(
    group: Group, api: FhirTestClient, who: str
) -> None:
    caller: Staff = getattr(group, who)
    deleted, never = _hkid("D"), _hkid("E")
    patient = created(api, _patient(deleted, TW))
    assert group.call(group.desk_tw, "DELETE", f"/fhir/Patient/{patient}").status_code == 204

    def answers(hkid: str) -> list[int]:
        # $register first: the create after it makes a record with the number.
        registered = group.call(
            caller, "POST", "/fhir/Patient/$register", register_body(hkid, "1990-01-01")
        )
        conditional = group.web.request(
            "POST",
            "/fhir/Patient",
            content=json.dumps(_patient(hkid, TM)),
            headers={
                **caller.headers,
                "Content-Type": "application/fhir+json",
                "If-None-Exist": f"identifier={HKID_SYSTEM}|{hkid}",
            },
        )
        return [registered.status_code, conditional.status_code]

    assert answers(deleted) == answers(never)
