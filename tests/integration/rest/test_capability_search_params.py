"""Every search parameter the CapabilityStatement lists, exercised one by one from a table
(issue 14): for each (type, parameter) a value the type's probe record carries finds it,
and a value it does not carry leaves it out. The table must name exactly what the
statement lists, so a parameter added to the registry without a row here fails, and so
does a row for a parameter the statement no longer lists. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from carevault.bootstrap import build_services
from carevault.gate import Caller
from carevault.web.app import create_app
from carevault.web.security import caller
from tests.conftest import make_settings
from tests.support.client import FhirTestClient
from tests.support.schemas import module_schema

CS = "http://example.org/cs"
ID = "http://example.org/id"
DAY = "2026-11-20T10:00:00+08:00"  # within the local day 2026-11-20 (Asia/Hong_Kong)
PERIOD = {"start": "2026-11-20T09:00:00+08:00", "end": "2026-11-20T11:00:00+08:00"}
ON_DAY, OFF_DAY = "ge2026-11-19", "lt2026-11-19"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def concept(code: str) -> dict[str, Any]:
    return {"coding": [{"system": CS, "code": code}]}


def identifier(value: str) -> list[dict[str, str]]:
    return [{"system": ID, "value": value}]


#: (type, parameter) → (a value the probe carries, a value it does not). ``{P}``, ``{PR}``,
#: ``{O}``, ``{L}``, ``{S}``: the ids of the probe Patient, Practitioner, Organization,
#: Location and Schedule. _id and _lastUpdated are added for every type below.
TABLE: dict[tuple[str, str], tuple[str, str]] = {
    ("Patient", "identifier"): (f"{ID}|PAT-1", f"{ID}|PAT-2"),
    ("Patient", "name"): ("hartl", "zzyzx"),
    ("Patient", "family"): ("hartley", "wing"),
    ("Patient", "given"): ("wing", "hartley"),
    ("Patient", "birthdate"): ("1980-05-05", "1980-05-06"),
    ("Patient", "phone"): ("61234567", "69990000"),
    ("Patient", "email"): ("w.hartley@example.org", "x@example.org"),
    ("Patient", "gender"): ("female", "male"),
    ("Practitioner", "identifier"): (f"{ID}|PR-1", f"{ID}|PR-2"),
    ("Practitioner", "name"): ("osei", "zzyzx"),
    ("Practitioner", "family"): ("osei", "ama"),
    ("Practitioner", "given"): ("ama", "osei"),
    ("PractitionerRole", "identifier"): (f"{ID}|ROLE-1", f"{ID}|ROLE-2"),
    ("PractitionerRole", "practitioner"): ("Practitioner/{PR}", "Practitioner/nope"),
    ("PractitionerRole", "organization"): ("Organization/{O}", "Organization/nope"),
    ("PractitionerRole", "specialty"): (f"{CS}|cardiology", f"{CS}|dermatology"),
    ("Organization", "identifier"): (f"{ID}|ORG-1", f"{ID}|ORG-2"),
    ("Organization", "name"): ("harbour", "zzyzx"),
    ("Organization", "partof"): ("Organization/{PARENT}", "Organization/nope"),
    ("Location", "identifier"): (f"{ID}|LOC-1", f"{ID}|LOC-2"),
    ("Location", "name"): ("wing", "zzyzx"),
    ("Location", "status"): ("active", "inactive"),
    ("Location", "organization"): ("Organization/{O}", "Organization/nope"),
    ("Schedule", "identifier"): (f"{ID}|SCH-1", f"{ID}|SCH-2"),
    ("Schedule", "actor"): ("Location/{L}", "Location/nope"),
    ("Schedule", "date"): (ON_DAY, OFF_DAY),
    ("Slot", "identifier"): (f"{ID}|SLOT-1", f"{ID}|SLOT-2"),
    ("Slot", "schedule"): ("Schedule/{S}", "Schedule/nope"),
    ("Slot", "start"): (ON_DAY, OFF_DAY),
    ("Slot", "status"): ("free", "busy"),
    ("Encounter", "patient"): ("{P}", "nope"),
    ("Encounter", "subject"): ("Patient/{P}", "Patient/nope"),
    ("Encounter", "code"): (f"{CS}|enc", f"{CS}|other"),
    ("Encounter", "date"): (ON_DAY, OFF_DAY),
    ("Encounter", "status"): ("finished", "planned"),
    ("Encounter", "practitioner"): ("Practitioner/{PR}", "Practitioner/nope"),
    ("Encounter", "identifier"): (f"{ID}|ENC-1", f"{ID}|ENC-2"),
    ("Appointment", "patient"): ("Patient/{P}", "Patient/nope"),
    ("Appointment", "code"): (f"{CS}|appt", f"{CS}|other"),
    ("Appointment", "date"): (ON_DAY, OFF_DAY),
    ("Appointment", "status"): ("booked", "cancelled"),
    ("Appointment", "practitioner"): ("Practitioner/{PR}", "Practitioner/nope"),
    ("Appointment", "location"): ("Location/{L}", "Location/nope"),
    ("Appointment", "actor"): ("Location/{L}", "Location/nope"),
    ("Appointment", "identifier"): (f"{ID}|APPT-1", f"{ID}|APPT-2"),
    ("Encounter", "class"): (f"{ACT}|AMB", f"{ACT}|IMP"),
    ("Condition", "clinical-status"): ("active", "resolved"),
    ("Condition", "category"): (f"{CS}|problem", f"{CS}|diagnosis"),
    ("Condition", "onset-date"): (ON_DAY, OFF_DAY),
    ("Condition", "recorded-date"): (ON_DAY, OFF_DAY),
    ("ServiceRequest", "authored"): (ON_DAY, OFF_DAY),
    ("ServiceRequest", "occurrence"): (ON_DAY, OFF_DAY),
    ("MedicationRequest", "intent"): ("order", "plan"),
    ("Observation", "category"): (f"{CS}|vital", f"{CS}|lab"),
    ("AllergyIntolerance", "clinical-status"): ("active", "resolved"),
    ("Goal", "lifecycle-status"): ("active", "completed"),
    ("CareTeam", "participant"): ("Practitioner/{PR}", "Practitioner/nope"),
    ("ServiceRequest", "performer"): ("Practitioner/{PR}", "Practitioner/nope"),
    ("ServiceRequest", "requester"): ("Practitioner/{PR}", "Practitioner/nope"),
    ("ServiceRequest", "identifier"): (f"{ID}|SR-1", f"{ID}|SR-2"),
}

#: Patient-data types: (status of the probe, another status); each has patient, code
#: and date rows, and subject where it has that parameter.
CLINICAL_STATUS = {
    "Condition": None,
    "Observation": ("final", "amended"),
    "DiagnosticReport": ("final", "partial"),
    "Procedure": ("completed", "stopped"),
    "Immunization": ("completed", "not-done"),
    "AllergyIntolerance": None,
    "MedicationRequest": ("active", "stopped"),
    "CarePlan": ("active", "revoked"),
    "Goal": None,
    "CareTeam": ("active", "inactive"),
    "ServiceRequest": ("active", "revoked"),
    "ImagingStudy": ("available", "cancelled"),
    "DocumentReference": ("current", "superseded"),
    "Coverage": ("active", "cancelled"),
    "Claim": ("active", "cancelled"),
    "ExplanationOfBenefit": ("active", "cancelled"),
}
WITH_SUBJECT = {
    "Condition",
    "Observation",
    "DiagnosticReport",
    "Procedure",
    "MedicationRequest",
    "CarePlan",
    "Goal",
    "CareTeam",
    "ServiceRequest",
    "ImagingStudy",
    "DocumentReference",
}
for _type, _status in CLINICAL_STATUS.items():
    TABLE[(_type, "patient")] = ("Patient/{P}", "Patient/nope")
    TABLE[(_type, "code")] = (f"{CS}|{_type.lower()}", f"{CS}|other")
    TABLE[(_type, "date")] = (ON_DAY, OFF_DAY)
    if _type in WITH_SUBJECT:
        TABLE[(_type, "subject")] = ("Patient/{P}", "Patient/nope")
    if _status is not None:
        TABLE[(_type, "status")] = _status

#: R4's names of parameters the registry knows by another name: each finds what that
#: name finds (``test_an_alias_finds_exactly_what_its_registry_name_finds``).
ALIASES = {
    ("Encounter", "type"): "code",
    ("Appointment", "service-type"): "code",
    ("Immunization", "vaccine-code"): "code",
    ("MedicationRequest", "authoredon"): "date",
    ("CarePlan", "category"): "code",
    ("Goal", "start-date"): "date",
    ("CareTeam", "category"): "code",
    ("ImagingStudy", "started"): "date",
    ("DocumentReference", "type"): "code",
    ("Coverage", "type"): "code",
    ("Coverage", "beneficiary"): "patient",
    ("Claim", "created"): "date",
    ("ExplanationOfBenefit", "created"): "date",
}
for (_type, _alias), _name in ALIASES.items():
    TABLE[(_type, _alias)] = TABLE[(_type, _name)]


def _clinical(type_name: str, ids: dict[str, str]) -> dict[str, Any]:
    """The probe record of a patient-data type: its code is ``<type in lower case>``."""
    patient = {"reference": f"Patient/{ids['P']}"}
    practitioner = {"reference": f"Practitioner/{ids['PR']}"}
    code = concept(type_name.lower())
    status = CLINICAL_STATUS[type_name]
    body: dict[str, Any] = {"resourceType": type_name}
    if status is not None:
        body["status"] = status[0]
    insurance = [{"sequence": 1, "focal": True, "coverage": {"reference": "Coverage/c1"}}]
    specific: dict[str, dict[str, Any]] = {
        "Condition": {
            "subject": patient,
            "code": code,
            "category": [concept("problem")],
            "onsetDateTime": DAY,
            "recordedDate": DAY,
            "clinicalStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                        "code": "active",
                    }
                ]
            },
        },
        "Observation": {
            "subject": patient,
            "code": code,
            "effectiveDateTime": DAY,
            "category": [concept("vital")],
        },
        "DiagnosticReport": {"subject": patient, "code": code, "effectiveDateTime": DAY},
        "Procedure": {"subject": patient, "code": code, "performedDateTime": DAY},
        "Immunization": {"patient": patient, "vaccineCode": code, "occurrenceDateTime": DAY},
        "AllergyIntolerance": {
            "patient": patient,
            "code": code,
            "recordedDate": DAY,
            "clinicalStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                        "code": "active",
                    }
                ]
            },
        },
        "MedicationRequest": {
            "intent": "order",
            "subject": patient,
            "medicationCodeableConcept": code,
            "authoredOn": DAY,
        },
        "CarePlan": {"intent": "plan", "subject": patient, "category": [code], "period": PERIOD},
        "Goal": {
            "lifecycleStatus": "active",
            "subject": patient,
            "description": code,
            "startDate": "2026-11-20",
        },
        "CareTeam": {
            "subject": patient,
            "category": [code],
            "period": PERIOD,
            "participant": [{"member": practitioner}],
        },
        "ServiceRequest": {
            "intent": "order",
            "subject": patient,
            "code": code,
            "occurrenceDateTime": DAY,
            "authoredOn": DAY,
            "performer": [practitioner],
            "requester": practitioner,
            "identifier": identifier("SR-1"),
        },
        "ImagingStudy": {"subject": patient, "modality": [code["coding"][0]], "started": DAY},
        "DocumentReference": {
            "subject": patient,
            "type": code,
            "date": DAY,
            "content": [{"attachment": {"contentType": "text/plain", "data": "bm90ZQ=="}}],
        },
        "Coverage": {
            "beneficiary": patient,
            "payor": [patient],
            "type": code,
            "period": PERIOD,
        },
        "Claim": {
            "type": code,
            "use": "claim",
            "patient": patient,
            "created": DAY,
            "provider": practitioner,
            "priority": concept("normal"),
            "insurance": insurance,
        },
        "ExplanationOfBenefit": {
            "type": code,
            "use": "claim",
            "patient": patient,
            "created": DAY,
            "insurer": {"reference": f"Organization/{ids['O']}"},
            "provider": practitioner,
            "outcome": "complete",
            "insurance": [{"focal": True, "coverage": {"reference": "Coverage/c1"}}],
        },
    }
    return {**body, **specific[type_name]}


def _directory_and_visits(ids: dict[str, str]) -> list[dict[str, Any]]:
    """Probes of the other types, written in order (later ones refer to earlier ones)."""
    patient = {"reference": f"Patient/{ids['P']}"}
    practitioner = {"reference": f"Practitioner/{ids['PR']}"}
    return [
        {
            "resourceType": "PractitionerRole",
            "identifier": identifier("ROLE-1"),
            "practitioner": practitioner,
            "organization": {"reference": f"Organization/{ids['O']}"},
            "specialty": [concept("cardiology")],
        },
        {
            "resourceType": "Encounter",
            "identifier": identifier("ENC-1"),
            "status": "finished",
            "class": {"system": ACT, "code": "AMB"},
            "type": [concept("enc")],
            "subject": patient,
            "participant": [{"individual": practitioner}],
            "serviceProvider": {"reference": f"Organization/{ids['O']}"},
            "period": PERIOD,
        },
        {
            "resourceType": "Appointment",
            "identifier": identifier("APPT-1"),
            "status": "booked",
            "serviceType": [concept("appt")],
            "start": PERIOD["start"],
            "end": PERIOD["end"],
            "participant": [
                {"actor": patient, "status": "accepted"},
                {"actor": practitioner, "status": "accepted"},
                {"actor": {"reference": f"Location/{ids['L']}"}, "status": "accepted"},
            ],
        },
        {
            "resourceType": "Slot",
            "identifier": identifier("SLOT-1"),
            "schedule": {"reference": f"Schedule/{ids['S']}"},
            "status": "free",
            "start": PERIOD["start"],
            "end": PERIOD["end"],
        },
    ]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def probes(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[FhirTestClient, dict[str, str], dict[str, Any]]]:
    url = None
    if request.param == "postgres":
        context = module_schema(request.getfixturevalue("pg_database"))
        url = context.__enter__()
        request.addfinalizer(lambda: context.__exit__(None, None, None))
    home: Path = tmp_path_factory.mktemp(f"capability-{request.param}")
    settings = make_settings(home, url)
    services = build_services(settings, create_keys=True, migrate=True)
    app = create_app(settings, services)
    app.dependency_overrides[caller] = lambda: Caller(principal="system:test")
    try:
        with FhirTestClient(app) as api:
            ids, made = _seed(api)
            yield api, ids, made
    finally:
        services.close()


def _seed(api: FhirTestClient) -> tuple[dict[str, str], dict[str, Any]]:
    ids: dict[str, str] = {}
    made: dict[str, Any] = {}

    def create(key: str | None, body: dict[str, Any]) -> None:
        response = api.post_json(f"/fhir/{body['resourceType']}", body)
        assert response.status_code == 201, (body["resourceType"], response.text)
        if key is not None:
            ids[key] = response.json()["id"]
        if key != "PARENT":  # the probe Organization is the clinic, part of the parent
            made.setdefault(body["resourceType"], response.json())

    create("PARENT", {"resourceType": "Organization", "name": "Group Parent"})
    create(
        "O",
        {
            "resourceType": "Organization",
            "identifier": identifier("ORG-1"),
            "name": "Harbour Clinic",
            "partOf": {"reference": f"Organization/{ids['PARENT']}"},
        },
    )
    create(
        "PR",
        {
            "resourceType": "Practitioner",
            "identifier": identifier("PR-1"),
            "name": [{"family": "Osei", "given": ["Ama"]}],
        },
    )
    create(
        "L",
        {
            "resourceType": "Location",
            "identifier": identifier("LOC-1"),
            "name": "East Wing",
            "status": "active",
            "managingOrganization": {"reference": f"Organization/{ids['O']}"},
        },
    )
    create(
        "S",
        {
            "resourceType": "Schedule",
            "identifier": identifier("SCH-1"),
            "actor": [{"reference": f"Location/{ids['L']}"}],
            "planningHorizon": PERIOD,
        },
    )
    create(
        "P",
        {
            "resourceType": "Patient",
            "identifier": identifier("PAT-1"),
            "name": [{"family": "Hartley", "given": ["Wing"]}],
            "birthDate": "1980-05-05",
            "gender": "female",
            "telecom": [
                {"system": "phone", "value": "+852 6123 4567"},
                {"system": "email", "value": "w.hartley@example.org"},
            ],
            "managingOrganization": {"reference": f"Organization/{ids['O']}"},
        },
    )
    for body in _directory_and_visits(ids):
        create(None, body)
    for type_name in CLINICAL_STATUS:
        create(None, _clinical(type_name, ids))
    return ids, made


def _statement_params(api: FhirTestClient) -> set[tuple[str, str]]:
    """The statement's parameters of the record types (AuditEvent's, the privacy
    officer's audit search, are checked with an officer's token in
    tests/integration/access/test_integrator_round57.py)."""
    statement = api.get("/fhir/metadata").json()
    return {
        (resource["type"], param["name"])
        for resource in statement["rest"][0]["resource"]
        if resource["type"] != "AuditEvent"
        for param in resource.get("searchParam", [])
    }


def _with_meta_rows(
    table: dict[tuple[str, str], tuple[str, str]], made: dict[str, Any]
) -> dict[tuple[str, str], tuple[str, str]]:
    rows = dict(table)
    for type_name, probe in made.items():
        rows[(type_name, "_id")] = (probe["id"], "nope")
        rows[(type_name, "_lastUpdated")] = (
            f"ge{probe['meta']['lastUpdated'][:10]}",
            "lt2000-01-01",
        )
    return rows


def test_the_table_names_exactly_the_parameters_the_statement_lists(
    probes: tuple[FhirTestClient, dict[str, str], dict[str, Any]],
) -> None:
    api, _, made = probes
    assert set(made) == {type_name for type_name, _ in _statement_params(api)}
    assert set(_with_meta_rows(TABLE, made)) == _statement_params(api)


def test_each_listed_parameter_finds_its_probe_and_not_with_another_value(
    probes: tuple[FhirTestClient, dict[str, str], dict[str, Any]],
) -> None:
    api, ids, made = probes
    wrong: list[str] = []
    for (type_name, name), (carried, other) in sorted(_with_meta_rows(TABLE, made).items()):
        probe = made[type_name]["id"]
        for value, expected in ((carried, True), (other, False)):
            for key, known in ids.items():
                value = value.replace("{" + key + "}", known)
            response = api.get(
                f"/fhir/{type_name}",
                params={name: value, "_count": "100"},
            )
            assert response.status_code == 200, (type_name, name, response.text)
            found = {
                entry["resource"]["id"]
                for entry in response.json().get("entry", [])
                if entry["search"]["mode"] == "match"
            }
            if (probe in found) is not expected:
                wrong.append(
                    f"{type_name}?{name}={value}: expected {'a' if expected else 'no'} match"
                )
    assert wrong == []


def _found(api: FhirTestClient, type_name: str, params: dict[str, str]) -> tuple[int, list[str]]:
    response = api.get(f"/fhir/{type_name}", params={**params, "_count": "100"})
    if response.status_code != 200:
        return response.status_code, []
    return 200, sorted(e["resource"]["id"] for e in response.json().get("entry", []))


def test_an_alias_finds_exactly_what_its_registry_name_finds(
    probes: tuple[FhirTestClient, dict[str, str], dict[str, Any]],
) -> None:
    api, ids, _ = probes
    differ: list[str] = []
    for (type_name, alias), name in sorted(ALIASES.items()):
        carried, other = TABLE[(type_name, name)]
        values = [carried, other]
        if carried.startswith(("ge", "lt")):  # dates: other prefixes and precisions too
            values += ["2026-11-20", "gt2026-11-20T10:00:00+08:00", "le2026", "ne2026-11-20"]
        elif "|" in carried:  # tokens: system only, code only, no system
            system, _, code = carried.partition("|")
            values += [f"{system}|", code, f"|{code}", f"{code},other"]
        for value in values:
            for key, known in ids.items():
                value = value.replace("{" + key + "}", known)
            by_alias = _found(api, type_name, {alias: value})
            if by_alias != _found(api, type_name, {name: value}):
                differ.append(f"{type_name}?{alias}={value}")
        modifier = "missing" if name != "patient" else "identifier"
        if _found(api, type_name, {f"{alias}:{modifier}": "true"})[0] != 400:
            differ.append(f"{type_name}?{alias}:{modifier} was not refused")
    assert differ == []


def test_paging_links_repeat_the_alias_the_client_sent(
    probes: tuple[FhirTestClient, dict[str, str], dict[str, Any]],
) -> None:
    api, _, made = probes
    response = api.get(
        "/fhir/MedicationRequest",
        params={"authoredon": ON_DAY, "_sort": "-authoredon", "_count": "1"},
    )
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert [e["resource"]["id"] for e in bundle["entry"]] == [made["MedicationRequest"]["id"]]
    for link in bundle["link"]:
        assert f"authoredon={ON_DAY}" in link["url"], link
        assert "_sort=-authoredon" in link["url"], link
        assert "date=" not in link["url"], link


def test_the_statement_names_r4_definitions_only_for_r4_parameters(
    probes: tuple[FhirTestClient, dict[str, str], dict[str, Any]],
) -> None:
    api, _, _ = probes
    statement = api.get("/fhir/metadata").json()
    entries = {
        (resource["type"], param["name"]): param
        for resource in statement["rest"][0]["resource"]
        for param in resource.get("searchParam", [])  # a Group (a clinic) has none
    }
    spec = "http://hl7.org/fhir/SearchParameter/"
    standard = {
        ("MedicationRequest", "authoredon"): "MedicationRequest-authoredon",
        ("Encounter", "type"): "clinical-type",
        ("Immunization", "vaccine-code"): "Immunization-vaccine-code",
        ("Coverage", "beneficiary"): "Coverage-beneficiary",
        ("Observation", "patient"): "clinical-patient",
        ("Observation", "code"): "clinical-code",
        ("Encounter", "date"): "clinical-date",
        ("Patient", "birthdate"): "individual-birthdate",
        ("Slot", "start"): "Slot-start",
        ("Encounter", "_id"): "Resource-id",
    }
    for key, expected in standard.items():
        assert entries[key]["definition"] == spec + expected, key
    own = [
        ("MedicationRequest", "date"),
        ("Encounter", "code"),
        ("Immunization", "code"),
        ("Condition", "date"),
        ("ImagingStudy", "code"),
    ]
    for key in own:
        assert "definition" not in entries[key], key
        assert entries[key]["documentation"].startswith("CareVault's own parameter"), key
    assert "authoredOn" in entries[("MedicationRequest", "date")]["documentation"]
    assert "Encounter.type" in entries[("Encounter", "code")]["documentation"]
    # Every entry is one or the other.
    assert all("definition" in e or "documentation" in e for e in entries.values())
    coverage = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Coverage")
    assert "Coverage:beneficiary" in coverage["searchInclude"]


def test_the_r4_parameters_added_for_clients_take_their_types_usual_forms(
    probes: tuple[FhirTestClient, dict[str, str], dict[str, Any]],
) -> None:
    """Encounter ``class``, Condition ``category`` and ``onset-date``, MedicationRequest
    ``intent``: the prefixes and precisions of a date, the forms of a token."""
    api, _, made = probes
    wrong: list[str] = []
    # The probe Condition's onset and recorded date are the same: its date is its onset.
    for value in (
        "2026-11-20",
        "gt2026-11-20T10:00:00+08:00",
        "le2026",
        "ne2026-11-20",
        "ge2026-11-21",
    ):
        if _found(api, "Condition", {"onset-date": value}) != _found(
            api, "Condition", {"date": value}
        ):
            wrong.append(f"Condition?onset-date={value}")
    intent = "http://hl7.org/fhir/CodeSystem/medicationrequest-intent"
    for type_name, name, value, expected in (
        ("Encounter", "class", f"{ACT}|", True),
        ("Encounter", "class", "AMB", True),
        ("Encounter", "class", "IMP,AMB", True),
        ("Encounter", "class", "|AMB", False),
        ("Condition", "category", f"{CS}|", True),
        ("Condition", "category", "problem", True),
        ("Condition", "category", f"{ID}|problem", False),
        ("MedicationRequest", "intent", f"{intent}|order", True),
        ("MedicationRequest", "intent", f"{intent}|", True),
        ("MedicationRequest", "intent", "|order", True),
        ("MedicationRequest", "intent", f"{CS}|order", False),
    ):
        status, found = _found(api, type_name, {name: value})
        if status != 200 or (made[type_name]["id"] in found) is not expected:
            wrong.append(f"{type_name}?{name}={value}: {status}, expected match {expected}")
    assert wrong == []


def test_the_r4_dates_added_for_clients_read_only_their_own_element(
    probes: tuple[FhirTestClient, dict[str, str], dict[str, Any]],
) -> None:
    """Condition ``recorded-date`` reads recordedDate alone (``onset-date`` the onset,
    ``date`` either); ServiceRequest ``authored`` reads authoredOn alone, ``occurrence``
    the occurrence alone (``date`` either). Each with the prefixes of every date."""
    api, ids, _ = probes
    subject = {"reference": f"Patient/{ids['P']}"}
    condition = api.post_json(
        "/fhir/Condition",
        {"resourceType": "Condition", "subject": subject,
         "onsetDateTime": "2010-05-01", "recordedDate": "2020-05-01"},
    ).json()["id"]  # fmt: skip
    request = api.post_json(
        "/fhir/ServiceRequest",
        {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
         "subject": subject, "authoredOn": "2021-01-10",
         "occurrencePeriod": {"start": "2021-03-01", "end": "2021-03-31"}},
    ).json()["id"]  # fmt: skip
    wrong: list[str] = []
    for type_name, made, name, value, expected in (
        ("Condition", condition, "recorded-date", "2020-05-01", True),
        ("Condition", condition, "recorded-date", "2010-05-01", False),
        ("Condition", condition, "recorded-date", "ge2020", True),
        ("Condition", condition, "recorded-date", "lt2015", False),
        ("Condition", condition, "onset-date", "2010-05-01", True),
        ("Condition", condition, "onset-date", "2020-05-01", False),
        ("Condition", condition, "date", "2020-05-01", True),
        ("ServiceRequest", request, "authored", "2021-01-10", True),
        ("ServiceRequest", request, "authored", "2021-03", False),
        ("ServiceRequest", request, "authored", "sa2021-01-09", True),
        ("ServiceRequest", request, "occurrence", "2021-03", True),
        ("ServiceRequest", request, "occurrence", "2021-01-10", False),
        ("ServiceRequest", request, "occurrence", "eb2021-04", True),
        ("ServiceRequest", request, "date", "2021-01-10", True),
    ):
        status, found = _found(api, type_name, {name: value})
        if status != 200 or (made in found) is not expected:
            wrong.append(f"{type_name}?{name}={value}: {status}, expected match {expected}")
    assert wrong == []


def test_approximately_finds_dates_near_the_value_encrypted_and_in_the_clear(
    probes: tuple[FhirTestClient, dict[str, str], dict[str, Any]],
) -> None:
    """``ap``: within a tenth of the gap between now and the value, either side (R4's
    recommendation). A value ten years and more back is approximately a year wide either
    side, whatever day the test runs: a Condition recorded in mid-January of that year
    is found by ``ap`` of the first of June, where ``eq`` misses it, and one recorded two
    years before is not. The same on a directory date kept in the clear (Slot start),
    where the comparison runs in SQL, and on ``_lastUpdated``."""
    api, ids, _ = probes
    subject = {"reference": f"Patient/{ids['P']}"}
    near, far = (
        api.post_json(
            "/fhir/Condition",
            {"resourceType": "Condition", "subject": subject, "recordedDate": recorded},
        ).json()["id"]
        for recorded in ("2012-01-15", "2010-01-15")
    )
    slots = [
        api.post_json(
            "/fhir/Slot",
            {
                "resourceType": "Slot",
                "schedule": {"reference": f"Schedule/{ids['S']}"},
                "status": "free",
                "start": f"{start}T09:00:00+08:00",
                "end": f"{start}T09:15:00+08:00",
            },
        ).json()["id"]  # fmt: skip
        for start in ("2012-01-15", "2010-01-15")
    ]
    for type_name, name, (hit, miss) in (
        ("Condition", "recorded-date", (near, far)),
        ("Condition", "date", (near, far)),
        ("Slot", "start", tuple(slots)),
    ):
        status, found = _found(api, type_name, {name: "ap2012-06-01"})
        assert status == 200, (type_name, name)
        assert hit in found and miss not in found, (type_name, name, found)
        assert hit not in _found(api, type_name, {name: "2012-06-01"})[1]
    # Nothing was written ten years ago, and ap of a day that long ago is not today.
    assert _found(api, "Condition", {"_lastUpdated": "ap2012-06-01"}) == (200, [])
    refused = api.get("/fhir/Condition", params={"recorded-date": "zz2012"})
    assert refused.status_code == 400


def test_the_r4_dates_added_for_clients_sort_either_way_by_their_own_element(
    probes: tuple[FhirTestClient, dict[str, str], dict[str, Any]],
) -> None:
    """``_sort`` on Condition ``recorded-date`` and ServiceRequest ``authored`` and
    ``occurrence`` orders by that element alone, ascending or descending (``-``), as
    ``_sort=date`` does (after decryption): each record's other date runs the other way,
    so a sort by the wrong element shows. A parameter that is not a date is still
    refused with 400, naming those that sort."""
    api, ids, _ = probes
    subject = {"reference": f"Patient/{ids['P']}"}
    code = concept("sorted")
    conditions = {
        recorded: api.post_json(
            "/fhir/Condition",
            {
                "resourceType": "Condition",
                "subject": subject,
                "code": code,
                "onsetDateTime": onset,
                "recordedDate": recorded,
            },
        ).json()["id"]
        for onset, recorded in (
            ("2001-01-01", "2023-01-01"),
            ("2003-01-01", "2021-01-01"),
            ("2002-01-01", "2022-01-01"),
        )
    }
    requests = {
        authored: api.post_json(
            "/fhir/ServiceRequest",
            {
                "resourceType": "ServiceRequest",
                "status": "active",
                "intent": "order",
                "subject": subject,
                "code": code,
                "authoredOn": authored,
                **occurrence,
            },
        ).json()["id"]
        for authored, occurrence in (
            ("2021-01-10", {"occurrencePeriod": {"start": "2021-06-01", "end": "2021-06-30"}}),
            ("2021-02-10", {"occurrenceDateTime": "2021-04-01T09:00:00+08:00"}),
            ("2021-03-10", {"occurrencePeriod": {"start": "2021-05-01"}}),
        )
    }
    by_recorded = [conditions[day] for day in sorted(conditions)]
    by_authored = [requests[day] for day in sorted(requests)]
    by_occurrence = [by_authored[1], by_authored[2], by_authored[0]]

    def order(type_name: str, sort: str) -> list[str]:
        response = api.get(
            f"/fhir/{type_name}", params={"code": f"{CS}|sorted", "_sort": sort, "_count": "100"}
        )
        assert response.status_code == 200, (type_name, sort, response.text)
        return [entry["resource"]["id"] for entry in response.json()["entry"]]

    assert order("Condition", "recorded-date") == by_recorded
    assert order("Condition", "-recorded-date") == by_recorded[::-1]
    assert order("Condition", "date") == order("Condition", "onset-date") == by_recorded[::-1]
    assert order("ServiceRequest", "authored") == by_authored
    assert order("ServiceRequest", "-authored") == by_authored[::-1]
    assert order("ServiceRequest", "occurrence") == by_occurrence
    assert order("ServiceRequest", "-occurrence,authored") == by_occurrence[::-1]
    page = api.get(
        "/fhir/Condition",
        params={"code": f"{CS}|sorted", "_sort": "-recorded-date", "_count": "2"},
    ).json()
    assert [entry["resource"]["id"] for entry in page["entry"]] == by_recorded[:0:-1]
    assert all("_sort=-recorded-date" in link["url"] for link in page["link"]), page["link"]
    refused = api.get("/fhir/Condition", params={"_sort": "-category"})
    assert refused.status_code == 400
    (issue,) = refused.json()["issue"]
    assert issue["code"] == "invalid", issue
    assert "sortable: _lastUpdated, _id, date, onset-date, recorded-date" in issue["diagnostics"]
