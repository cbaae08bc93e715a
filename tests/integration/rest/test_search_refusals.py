"""A search is either right or refused (issue 14, part 1): filters the server does not
understand answer 400 naming them, in lenient mode too; token searches honour
``system|code``, ``|code`` and ``system|``; ``_include`` and ``_revinclude`` return
what the caller could read directly, each recorded in the ledger. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from carevault.ledger.events import Tag
from carevault.web.app import create_app
from tests.integration.access.audit_log import events
from tests.support.client import FhirTestClient
from tests.support.staff import Staff, make_staff

HKID = "http://carevault.hk/sid/hkid"
GENDER = "http://hl7.org/fhir/administrative-gender"
LOINC = "http://loinc.org"


def _create(api: FhirTestClient, body: dict[str, Any]) -> dict[str, Any]:
    response = api.post_json(f"/fhir/{body['resourceType']}", body)
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    return made


def _matches(bundle: dict[str, Any], mode: str = "match") -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == mode]


@pytest.fixture
def people(api: FhirTestClient) -> dict[str, Any]:
    made: dict[str, Any] = {}
    made["female"] = _create(
        api,
        {
            "resourceType": "Patient",
            "identifier": [{"system": HKID, "value": "A123456(3)"}],
            "name": [{"family": "Chan"}],
            "gender": "female",
        },
    )
    made["male"] = _create(
        api,
        {
            "resourceType": "Patient",
            "identifier": [{"system": "urn:clinic:mrn", "value": "MRN-7"}],
            "name": [{"family": "Wong"}],
            "gender": "male",
        },
    )
    made["coded"] = _create(
        api,
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
            "subject": {"reference": f"Patient/{made['female']['id']}"},
        },
    )
    made["local"] = _create(
        api,
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"code": "8480-6"}]},
            "subject": {"reference": f"Patient/{made['male']['id']}"},
        },
    )
    return made


@pytest.mark.parametrize(
    ("search", "named"),
    [
        ("Observation?subject.name=zzzz-no-such-name", "subject.name"),
        ("Observation?subject:Patient.name=zzzz", "subject:Patient.name"),
        ("Observation?patient.identifier=A123456", "patient.identifier"),
        ("Patient?_has:Observation:patient:code=8480-6", "_has:Observation:patient:code"),
        ("Patient?shoe-size=44", "shoe-size"),
        ("Patient?_tag=vip", "_tag"),
        ("Patient?_text=diabetes", "_text"),
        ("Patient?_filter=name eq chan", "_filter"),
        ("Patient?_include=*", "_include"),
        ("Patient?_include:iterate=Patient:organization", "_include:iterate"),
        ("Observation?_include=Observation:code", "_include"),
        ("Observation?_revinclude=Encounter:subject", "_revinclude"),
        ("Patient?name:contains=chan", "name:contains"),
    ],
)
def test_a_filter_not_understood_is_refused_in_lenient_mode_too(
    api: FhirTestClient, people: dict[str, Any], search: str, named: str
) -> None:
    for headers in ({}, {"Prefer": "handling=lenient"}, {"Prefer": "handling=strict"}):
        response = api.get(f"/fhir/{search}", headers=headers)
        assert response.status_code == 400, (search, response.text)
        issue = response.json()["issue"][0]
        assert issue["severity"] == "error"
        assert named in issue["diagnostics"], issue
        assert "zzzz" not in issue["diagnostics"]  # values are never quoted back


def test_parameters_that_only_shape_the_display_may_be_ignored(
    api: FhirTestClient, people: dict[str, Any]
) -> None:
    bundle = api.get("/fhir/Patient?gender=female&_totalMethod=count&_pretty=true").json()
    assert [p["id"] for p in _matches(bundle)] == [people["female"]["id"]]
    warning = _matches(bundle, "outcome")[0]["issue"][0]
    assert warning["severity"] == "warning" and "_totalMethod" in warning["diagnostics"]
    strict = api.get("/fhir/Patient?_totalMethod=count", headers={"Prefer": "handling=strict"})
    assert strict.status_code == 400


def test_token_search_with_a_system_on_a_code_element(
    api: FhirTestClient, people: dict[str, Any]
) -> None:
    female = [people["female"]["id"]]

    def found(value: str) -> list[str]:
        response = api.get("/fhir/Patient", params={"gender": value})
        assert response.status_code == 200, response.text
        return [p["id"] for p in _matches(response.json())]

    assert found(f"{GENDER}|female") == female
    assert found("female") == female
    assert found("|female") == female  # a code element carries no system of its own
    assert sorted(found(f"{GENDER}|")) == sorted([people["female"]["id"], people["male"]["id"]])
    assert found("http://example.org/other-genders|female") == []
    status = api.get(
        "/fhir/Observation", params={"status": "http://hl7.org/fhir/observation-status|final"}
    )
    assert len(_matches(status.json())) == 2


def test_token_search_on_codings_and_identifiers(
    api: FhirTestClient, people: dict[str, Any]
) -> None:
    def observations(value: str) -> list[str]:
        bundle = api.get("/fhir/Observation", params={"code": value}).json()
        return sorted(o["id"] for o in _matches(bundle))

    coded, local = people["coded"]["id"], people["local"]["id"]
    assert observations(f"{LOINC}|8480-6") == [coded]
    assert observations("|8480-6") == [local]
    assert observations("8480-6") == sorted([coded, local])
    assert observations(f"{LOINC}|") == [coded]
    assert observations("http://snomed.info/sct|8480-6") == []

    def patients(value: str) -> list[str]:
        bundle = api.get("/fhir/Patient", params={"identifier": value}).json()
        return [p["id"] for p in _matches(bundle)]

    assert patients(f"{HKID}|A1234563") == [people["female"]["id"]]
    assert patients("urn:clinic:mrn|MRN-7") == [people["male"]["id"]]
    assert patients(f"{HKID}|") == [people["female"]["id"]]
    assert patients("urn:clinic:mrn|A1234563") == []
    assert api.get("/fhir/Patient", params={"identifier": "|"}).status_code == 400


@pytest.fixture
def desk(services: Services, api: FhirTestClient) -> Iterator[tuple[FhirTestClient, Staff]]:
    with FhirTestClient(create_app(services.settings, services)) as web:
        clerk = make_staff(services, Role.FRONT_DESK, ["clinic-a"])
        web.put_json(
            "/fhir/Organization/clinic-a",
            {"resourceType": "Organization", "id": "clinic-a", "name": "A"},
            **clerk.headers,
        )
        yield web, clerk


def test_include_gives_what_a_direct_read_gives_and_is_recorded(
    services: Services, desk: tuple[FhirTestClient, Staff]
) -> None:
    web, clerk = desk
    patients = []
    for number in range(3):
        made = web.post_json(
            "/fhir/Patient",
            {
                "resourceType": "Patient",
                "identifier": [{"system": HKID, "value": "A123456(3)"}],
                "name": [{"family": f"Include{number}"}],
                "birthDate": "1970-01-01",
            },
            **clerk.headers,
        )
        assert made.status_code == 201, made.text
        patients.append(made.json()["id"])
    for patient_id in patients + patients[:1]:
        visit = {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": f"Patient/{patient_id}"},
            "serviceProvider": {"reference": "Organization/clinic-a"},
        }
        assert web.post_json("/fhir/Encounter", visit, **clerk.headers).status_code == 201
    store = services.audit_ledger.store
    before = len(events(store, Tag.FHIR_SEARCH))
    response = web.get(
        "/fhir/Encounter?_include=Encounter:subject&_count=10", headers=clerk.headers
    )
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["total"] == 4
    included = _matches(bundle, "include")
    assert sorted(p["id"] for p in included) == sorted(patients)  # each once
    for patient in included:
        direct = web.get(f"/fhir/Patient/{patient['id']}", headers=clerk.headers).json()
        assert patient == direct
        assert "identifier" not in patient  # the front desk cannot read HKIDs back
    searches = events(store, Tag.FHIR_SEARCH)[before:]
    recorded = {(e.resource_type, e.patient_pseudonym) for e in searches if e.patient_pseudonym}
    assert len({p for t, p in recorded if t == "Patient"}) == 3  # the includes, per patient
    reverse = web.get(
        f"/fhir/Patient?_id={patients[0]}&_revinclude=Encounter:subject", headers=clerk.headers
    ).json()
    assert [p["id"] for p in _matches(reverse)] == [patients[0]]
    assert len(_matches(reverse, "include")) == 2


def test_every_include_the_statement_lists_is_honoured(api: FhirTestClient) -> None:
    statement = api.get("/fhir/metadata").json()
    for resource in statement["rest"][0]["resource"]:
        type_name = resource["type"]
        for name in ("searchInclude", "searchRevInclude"):
            for value in resource.get(name, []):  # AuditEvent's search includes nothing
                kind = "_include" if name == "searchInclude" else "_revinclude"
                response = api.get(
                    f"/fhir/{type_name}",
                    params={kind: value, "_count": "1"},
                    headers={"Prefer": "handling=strict"},
                )
                assert response.status_code == 200, (type_name, value, response.text)
    patient = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Patient")
    assert "Observation:subject" in patient["searchRevInclude"]
    observation = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Observation")
    assert "Observation:subject" in observation["searchInclude"]
