"""Adversary round 57, a doctor's SMART app granted fewer scopes, and oracles: Tuen Mun's
doctor's app granted ``user/Observation.rs`` only reaches for Patient data through
``_include``, ``_revinclude``, ``$everything``, history, Bundles and conditional
interactions; Tuen Mun's staff compare what they are told of a record hidden from them
with what they are told of an id never used (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from carevault.bootstrap import Services
from tests.integration.access.group import Group, build_group
from tests.support.client import FhirTestClient
from tests.support.staff import open_token

pytestmark = pytest.mark.postgres


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _app(group: Group, scope: str = "user/Observation.rs") -> dict[str, str]:
    token = open_token(group.services, group.doctor_tm.account, scope)
    return {"authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}


def _types(bundle: dict[str, Any]) -> set[str]:
    return {
        str(entry["resource"]["resourceType"])
        for entry in bundle.get("entry", [])
        if "resource" in entry
    }


@pytest.mark.parametrize(
    "path",
    [
        "/fhir/Observation?patient={p}&_include=Observation:patient",
        "/fhir/Observation?patient={p}&_include=Observation:subject",
        "/fhir/Observation?patient={p}&_include=*",
        "/fhir/Observation?_id={o}&_include=Observation:patient",
        "/fhir/Observation/_history",
        "/fhir/_history",
        "/fhir/Observation/{o}/_history",
    ],
)
def test_an_observation_app_is_shown_no_patient(group: Group, path: str) -> None:
    """Held: what the app is shown holds Observations only, or is refused."""
    headers = _app(group)
    tm = group.tm_patient
    answer = group.web.get(path.format(p=tm.id, o=tm.observation), headers=headers)
    assert answer.status_code in (200, 400, 403), answer.text
    if answer.status_code == 200:
        shown = _types(answer.json()) - {"OperationOutcome"}
        assert shown <= {"Observation"}, shown
    assert tm.hkid not in answer.text and "Chan" not in answer.text


@pytest.mark.parametrize(
    "path",
    [
        "/fhir/Patient/{p}",
        "/fhir/Patient/{p}/$everything",
        "/fhir/Patient/{p}/_history",
        "/fhir/Patient?_id={p}",
        "/fhir/Patient?_id={p}&_summary=count",
        "/fhir/Patient?_id={p}&_revinclude=Observation:patient",
        "/fhir/Encounter?patient={p}",
    ],
)
def test_an_observation_app_is_refused_patient_reads(group: Group, path: str) -> None:
    """Held: 403 for the app's every way at the Patient and its other records."""
    answer = group.web.get(path.format(p=group.tm_patient.id), headers=_app(group))
    assert answer.status_code == 403, answer.text
    assert group.tm_patient.hkid not in answer.text


def test_an_observation_app_reads_no_patient_through_a_bundle(group: Group) -> None:
    """Held: a batch's and a transaction's GET of the Patient are refused to the app."""
    tm = group.tm_patient
    for kind in ("batch", "transaction"):
        bundle = {
            "resourceType": "Bundle",
            "type": kind,
            "entry": [
                {"request": {"method": "GET", "url": f"Observation?patient={tm.id}"}},
                {"request": {"method": "GET", "url": f"Patient/{tm.id}"}},
            ],
        }
        answer = group.web.post_json("/fhir", bundle, **_app(group))
        assert tm.hkid not in answer.text and "Chan" not in answer.text, answer.text
        if answer.status_code == 200:
            assert "Patient" not in _types(answer.json())
        else:
            assert answer.status_code == 403


NEVER = "6b0c2a52-9f1e-4a55-8b55-0d8f5a1c0c57"


def _said(group: Group, who: Any, method: str, path: str, ident: str, **more: Any) -> Any:
    headers = dict(who.headers)
    headers.update(more.pop("headers", {}))
    answer = group.web.request(method, path.format(id=ident), headers=headers, **more)
    text = answer.text.replace(ident, "ID")
    # A Bundle's own id and time are new with each answer.
    text = re.sub(
        r'^\{"resourceType":"Bundle","id":"[^"]+","meta":\{"lastUpdated":"[^"]+"\}', "", text
    )
    return (
        answer.status_code,
        text,
        {k: v.replace(ident, "ID") for k, v in answer.headers.items() if k.lower() in _TOLD},
    )


_TOLD = {"etag", "location", "content-location", "last-modified", "www-authenticate"}


@pytest.mark.parametrize(
    ("method", "path", "extra"),
    [
        ("GET", "/fhir/Condition/{id}", {"headers": {"If-None-Match": 'W/"1"'}}),
        ("GET", "/fhir/Condition/{id}", {"headers": {"If-Modified-Since": "Sat, 1 Jan 2000"}}),
        ("HEAD", "/fhir/Condition/{id}", {}),
        ("GET", "/fhir/Condition/{id}?_elements=id", {}),
        ("GET", "/fhir/Condition/{id}?_summary=true", {}),
        ("GET", "/fhir/Condition/{id}/_history?_count=0", {}),
        ("GET", "/fhir/Condition/{id}/_history/2", {}),
        ("GET", "/fhir/Condition?_id={id}&_elements=id", {}),
        ("GET", "/fhir/Condition?_id={id}&_include=Condition:patient", {}),
        ("GET", "/fhir/Condition?_id={id}&_total=accurate", {}),
        ("GET", "/fhir/Condition?_lastUpdated=gt2000-01-01&_id={id}&_count=0", {}),
        ("DELETE", "/fhir/Condition?_id={id}", {}),
        (
            "PATCH",
            "/fhir/Condition?_id={id}",
            {"headers": {"Content-Type": "application/json-patch+json"}, "content": b"[]"},
        ),
        ("GET", "/fhir/Condition/{id}/$everything", {}),
    ],
)
def test_a_diagnosis_withheld_from_a_pharmacist_answers_as_an_id_never_used(
    group: Group, method: str, path: str, extra: dict[str, Any]
) -> None:
    """Held: Tuen Mun's HIV diagnosis, withheld whole from its pharmacist, is answered
    as an id never used, word for word and header for header, in the ways not tried in
    round 55 (conditional reads, HEAD, views, counts, conditional patch and delete)."""
    from carevault.domain.roles import Role
    from tests.integration.access.group import HIV, doctors_condition
    from tests.support.staff import make_staff

    hidden = doctors_condition(group, HIV)
    pharmacist = make_staff(group.services, Role.PHARMACIST, ["clinic-tm"])
    assert _said(group, pharmacist, method, path, hidden, **dict(extra)) == _said(
        group, pharmacist, method, path, NEVER, **dict(extra)
    )


@pytest.mark.parametrize("element", ["reasonReference", "supportingInformation"])
def test_a_prescription_naming_a_withheld_diagnosis_answers_as_one_naming_no_record(
    group: Group, element: str
) -> None:
    """Held: Tuen Mun's pharmacist writes a prescription for its patient whose reason (or
    supporting information) is the HIV diagnosis withheld from them, then one naming an id
    never used: both written alike (the reference is not looked up), nothing told."""
    from carevault.domain.roles import Role
    from tests.integration.access.group import HIV, doctors_condition
    from tests.support.staff import make_staff

    hidden = doctors_condition(group, HIV)
    pharmacist = make_staff(group.services, Role.PHARMACIST, ["clinic-tm"])
    said = []
    for ident in (hidden, NEVER):
        sent = {
            "resourceType": "MedicationRequest",
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": {"text": "metformin 500 mg"},
            "subject": {"reference": f"Patient/{group.tm_patient.id}"},
            element: [{"reference": f"Condition/{ident}"}],
        }
        answer = group.call(pharmacist, "POST", "/fhir/MedicationRequest", sent)
        body = answer.json()
        said.append((answer.status_code, sorted(body), body.get(element)))
    assert said[0][:2] == said[1][:2]
    assert said[0][0] in (201, 403), said


def test_a_patient_launch_app_writes_no_care_for_another_patient(group: Group) -> None:
    """Held: an app the doctor launched for one patient (asking ``patient/*.cruds``) books,
    or records a visit for, another patient of the clinic: 403, nothing written, no care
    opened (a patient launch is granted no writes at all: the chosen patient's booking is
    refused alike)."""
    from carevault.access.sessions import LaunchPatient
    from tests.integration.access.group import TM, booked_today, encounter

    services = group.services
    services.clients.add(
        "launch-app",
        "Launch app",
        confidential=False,
        scopes="launch/patient patient/*.cruds",
        redirect_uris=["http://127.0.0.1/callback"],
    )
    chosen = group.tm_patient.id
    other = _system_patient(group)
    pseudonym = services.vault.patient_pseudonyms([chosen])[chosen]
    pair = services.sessions.open(
        subject=group.doctor_tm.account.account_id,
        account_id=group.doctor_tm.account.account_id,
        client_id="launch-app",
        scope="launch/patient patient/*.cruds",
        with_refresh=False,
        source_address="127.0.0.1",
        user_agent="tests",
        patient=LaunchPatient(chosen, pseudonym),
    )
    headers = {
        "authorization": f"Bearer {pair.access_token}",
        "Content-Type": "application/fhir+json",
    }
    for body in (booked_today(other, TM, "dr-tm"), encounter(other, TM, "dr-tm")):
        answer = group.web.post_json(f"/fhir/{body['resourceType']}", body, **headers)
        assert answer.status_code == 403, answer.text
    mine = group.web.post_json("/fhir/Appointment", booked_today(chosen, TM, "dr-tm"), **headers)
    assert mine.status_code == 403, mine.text


def _system_patient(group: Group) -> str:
    from carevault.domain.roles import Role
    from tests.support.staff import make_staff

    desk = make_staff(group.services, Role.FRONT_DESK, ["clinic-tm"])
    made = group.call(
        desk,
        "POST",
        "/fhir/Patient",
        {
            "resourceType": "Patient",
            "name": [{"family": "Ho"}],
            "managingOrganization": {"reference": "Organization/clinic-tm"},
        },
    )
    assert made.status_code == 201, made.text
    return str(made.json()["id"])
