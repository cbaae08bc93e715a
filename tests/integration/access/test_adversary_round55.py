"""Adversary round 55, the other doors to what one may not know of: Tuen Mun's staff send
the id of a Tsuen Wan patient or diagnosis deleted there (seen in a letter, a
``Patient.link``), and its pharmacist the id of an HIV diagnosis, to every request that
takes one (history and its paging, ``$everything``, PATCH and DELETE with and without
``If-Match``, searches by id and patient, a new record naming the patient), and compare
the answer with that of an id never used (SQLite and PostgreSQL). Any difference would
tell which ids had been patients, or which records are withheld."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from tests.integration.access.group import (
    HIV,
    TM,
    Group,
    build_group,
    deleted_patient,
    observation,
)
from tests.support.client import FhirTestClient
from tests.support.staff import Staff, make_staff

UNKNOWN = "no-such-patient"
JSON_PATCH = {"Content-Type": "application/json-patch+json"}


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _said(response: Any, patient: str) -> tuple[int, Any]:
    """The status and the body, with the id asked about written as the unknown one's."""
    text = response.text.replace(patient, UNKNOWN)
    return response.status_code, text if not text.startswith("{") else _without_times(text)


def _without_times(text: str) -> Any:
    """A JSON answer without what differs between two answers alike (a Bundle's id,
    its time, its links' ids)."""
    body = json.loads(text)
    for key in ("id", "meta", "link"):
        body.pop(key, None)
    return body


def _request(
    group: Group, who: Staff, method: str, path: str, body: Any, headers: dict[str, str]
) -> Any:
    merged = {**who.headers, **headers}
    if body is None:
        return group.web.request(method, path, headers=merged)
    if "Content-Type" not in merged:
        merged["Content-Type"] = "application/fhir+json"
    return group.web.request(method, path, content=json.dumps(body), headers=merged)


REQUESTS: list[tuple[str, str, Any, dict[str, str]]] = [
    ("GET", "/fhir/Patient/{p}/_history", None, {}),
    ("GET", "/fhir/Patient/{p}/_history?_count=1", None, {}),
    ("GET", "/fhir/Patient/{p}/_history/1", None, {}),
    ("GET", "/fhir/Patient/{p}/_history/2", None, {}),
    ("GET", "/fhir/Patient/{p}/$everything", None, {}),
    ("PATCH", "/fhir/Patient/{p}", [{"op": "add", "path": "/gender", "value": "male"}], JSON_PATCH),
    (
        "PATCH",
        "/fhir/Patient/{p}",
        [{"op": "add", "path": "/gender", "value": "male"}],
        {**JSON_PATCH, "If-Match": 'W/"1"'},
    ),
    ("DELETE", "/fhir/Patient/{p}", None, {"If-Match": 'W/"2"'}),
    ("DELETE", "/fhir/Patient/{p}", None, {"If-Match": 'W/"1"'}),
    ("POST", "/fhir/Observation", "observation", {}),
    ("GET", "/fhir/Observation?patient={p}", None, {}),
    ("GET", "/fhir/Observation?subject=Patient/{p}&_summary=count", None, {}),
    ("GET", "/fhir/Patient?_id={p}", None, {}),
    ("GET", "/fhir/Patient?link={p}", None, {}),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "headers"),
    REQUESTS,
    ids=[f"{m} {p.split('{p}')[-1] or p}" for m, p, _, _ in REQUESTS],
)
@pytest.mark.parametrize("who", ["desk_tm", "doctor_tm"])
def test_another_clinics_deleted_patient_answers_as_an_id_never_used(
    group: Group,
    api: FhirTestClient,
    who: str,
    method: str,
    path: str,
    body: Any,
    headers: dict[str, str],
) -> None:
    patient = deleted_patient(group, api)
    caller: Staff = getattr(group, who)

    def sent(ident: str) -> Any:
        given = observation(ident) if body == "observation" else body
        return _request(group, caller, method, path.format(p=ident), given, headers)

    unknown = sent(UNKNOWN)
    answer = sent(patient)
    assert _said(answer, patient) == _said(unknown, UNKNOWN), (answer.text, unknown.text)


RECORD_REQUESTS: list[tuple[str, str, Any, dict[str, str]]] = [
    ("GET", "/fhir/Condition/{r}", None, {}),
    ("GET", "/fhir/Condition/{r}/_history", None, {}),
    ("GET", "/fhir/Condition/{r}/_history?_count=0", None, {}),
    ("GET", "/fhir/Condition/{r}/_history/1", None, {}),
    ("GET", "/fhir/Condition?_id={r}", None, {}),
    ("GET", "/fhir/Condition?_id={r}&_summary=count", None, {}),
    ("PATCH", "/fhir/Condition/{r}", [{"op": "remove", "path": "/note"}], JSON_PATCH),
    (
        "PATCH",
        "/fhir/Condition/{r}",
        [{"op": "add", "path": "/clinicalStatus", "value": {"text": "resolved"}}],
        {**JSON_PATCH, "If-Match": 'W/"1"'},
    ),
    ("DELETE", "/fhir/Condition/{r}", None, {}),
    ("DELETE", "/fhir/Condition/{r}", None, {"If-Match": 'W/"1"'}),
    ("DELETE", "/fhir/Condition/{r}", None, {"If-Match": 'W/"2"'}),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "headers"),
    RECORD_REQUESTS,
    ids=[
        f"{m} {p.split('{r}')[-1] or p} {h.get('If-Match', '')}" for m, p, _, h in RECORD_REQUESTS
    ],
)
@pytest.mark.parametrize("hidden", ["deleted-at-tw", "hiv-for-a-pharmacist"])
def test_a_record_one_may_not_know_of_answers_as_an_id_never_used(
    group: Group,
    hidden: str,
    method: str,
    path: str,
    body: Any,
    headers: dict[str, str],
) -> None:
    """A Tsuen Wan diagnosis deleted there, sent by Tuen Mun's doctor; Tuen Mun's HIV
    diagnosis, sent by its pharmacist: every door answers as for an id never used."""
    if hidden == "deleted-at-tw":
        made = group.call(
            group.doctor_tw,
            "POST",
            "/fhir/Condition",
            {
                "resourceType": "Condition",
                "code": {"text": "sprained ankle"},
                "subject": {"reference": f"Patient/{group.tw_patient.id}"},
            },
        )
        assert made.status_code == 201, made.text
        record = made.json()["id"]
        path_of = f"/fhir/Condition/{record}"
        assert group.call(group.doctor_tw, "DELETE", path_of).status_code == 204
        caller = group.doctor_tm
    else:
        made = group.call(
            group.doctor_tm,
            "POST",
            "/fhir/Condition",
            {
                "resourceType": "Condition",
                "code": HIV,
                "subject": {"reference": f"Patient/{group.tm_patient.id}"},
            },
        )
        assert made.status_code == 201, made.text
        record = made.json()["id"]
        caller = make_staff(group.services, Role.PHARMACIST, [TM])

    unknown = _request(group, caller, method, path.format(r="no-such-record"), body, headers)
    answer = _request(group, caller, method, path.format(r=record), body, headers)
    expected = _said(unknown, "no-such-record")
    assert _said(answer, record) == expected, (answer.text, unknown.text)
