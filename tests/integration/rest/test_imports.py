"""Imports that name no clinic of ours, and conditional creates that would duplicate a
record the caller may not see. Real Synthea bundles (vendored under tests/fixtures) as input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from carevault.bootstrap import Services
from carevault.db import read_transaction
from carevault.domain.roles import Role
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate import Caller
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.vault.tables import resource_head
from carevault.vault.writer import Put
from carevault.web.app import create_app
from tests.integration.access.browser import basic, bearer
from tests.support.client import FHIR_JSON, FhirTestClient
from tests.support.staff import Staff, make_staff
from tests.support.synthea import BUNDLES as SYNTHEA_BUNDLES

pytestmark = pytest.mark.postgres

BUNDLES = SYNTHEA_BUNDLES[:2]
MINE, OTHER = "clinic-a", "clinic-b"
HKID = "http://carevault.hk/sid/hkid"


@pytest.fixture
def web(services: Services) -> Iterator[FhirTestClient]:
    services.gate.write(
        Caller(principal="system:test", purpose="HOPERAT"),
        [
            Put(
                RESOURCE_TYPES["Organization"],
                clinic,
                {"resourceType": "Organization", "id": clinic},
            )
            for clinic in (MINE, OTHER)
        ],
    )
    with FhirTestClient(create_app(services.settings, services)) as client:
        yield client


def _importer(services: Services, web: FhirTestClient, name: str, clinics: list[str]) -> str:
    """A client-credentials token of a confidential app bound to an integration account."""
    services.accounts.add(name, "Importer", Role.INTEGRATION, clinics, "correct horse battery")
    _, secret = services.admin.add_client(
        "admin:test",
        f"{name}-app",
        "Importer",
        confidential=True,
        scopes="system/*.cruds",
        clinic_ids=clinics,
        account=name,
    )
    assert secret
    response = web.post(
        "/auth/token",
        data={"grant_type": "client_credentials", "scope": "system/*.cruds"},
        headers=basic(f"{name}-app", secret),
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def _post_bundle(web: FhirTestClient, token: str, path: Path) -> Any:
    return web.post("/fhir", content=path.read_bytes(), headers={**bearer(token), **FHIR_JSON})


def _clinics_of_patient_records(services: Services, patient_id: str) -> set[str | None]:
    with read_transaction(services.engine) as connection:
        pseudonym = connection.execute(
            select(resource_head.c.patient_pseudonym).where(
                resource_head.c.resource_type == "Patient",
                resource_head.c.resource_id == patient_id,
            )
        ).scalar_one()
        return set(
            connection.execute(
                select(resource_head.c.clinic_id).where(
                    resource_head.c.patient_pseudonym == pseudonym
                )
            ).scalars()
        )


def _events(services: Services, tag: Tag) -> list[AuditEvent]:
    found = [AuditEvent.from_canonical(data) for _, data in services.audit_ledger.store.entries()]
    return [event for event in found if event.tag is tag]


def test_a_single_clinic_importer_brings_synthea_bundles_into_its_clinic(
    services: Services, web: FhirTestClient
) -> None:
    token = _importer(services, web, "importer", [MINE])
    desk_mine = make_staff(services, Role.FRONT_DESK, [MINE])
    desk_other = make_staff(services, Role.FRONT_DESK, [OTHER])

    for path in BUNDLES:
        response = _post_bundle(web, token, path)
        assert response.status_code == 200, response.text
        patient_id = response.json()["entry"][0]["response"]["location"].split("/")[1]
        # Every record of the patient is placed at the importer's clinic (or, naming none,
        # follows the patient), although the bundle names its own (outside) provider
        # organization as the service provider.
        assert _clinics_of_patient_records(services, patient_id) - {None} == {MINE}
        sent = json.loads(path.read_text())
        family = next(
            entry["resource"]["name"][0]["family"]
            for entry in sent["entry"]
            if entry["resource"]["resourceType"] == "Patient"
        )
        seen_here = web.get(f"/fhir/Patient?family={family}", headers=desk_mine.headers).json()
        seen_there = web.get(f"/fhir/Patient?family={family}", headers=desk_other.headers).json()
        assert [e["resource"]["id"] for e in seen_here.get("entry", [])] == [patient_id]
        assert seen_there.get("entry", []) == []
        encounter = next(
            e["resource"] for e in sent["entry"] if e["resource"]["resourceType"] == "Encounter"
        )
        stored = web.get(
            f"/fhir/Encounter?patient={patient_id}&_count=1", headers=bearer(token)
        ).json()["entry"][0]["resource"]
        # The body keeps the provider it names (the reference resolved to its new id).
        assert stored["serviceProvider"]["reference"].startswith("Organization/")
        assert stored["serviceProvider"]["reference"] != f"Organization/{MINE}"
        assert encounter["serviceProvider"]["reference"].startswith("urn:uuid:")


def test_an_importer_of_two_clinics_is_told_which_field_to_set(
    services: Services, web: FhirTestClient
) -> None:
    token = _importer(services, web, "importer2", [MINE, OTHER])

    response = _post_bundle(web, token, BUNDLES[0])

    assert response.status_code == 422
    diagnostics = response.json()["issue"][0]["diagnostics"]
    assert "Patient.managingOrganization" in diagnostics
    with read_transaction(services.engine) as connection:
        patients = connection.execute(
            select(resource_head.c.resource_id).where(resource_head.c.resource_type == "Patient")
        ).all()
    assert patients == []


def test_records_named_at_another_clinic_of_the_group_are_still_refused(
    services: Services, web: FhirTestClient
) -> None:
    token = _importer(services, web, "importer3", [MINE])
    make_staff(services, Role.FRONT_DESK, [OTHER])  # someone works there: a clinic of ours
    bundle = json.loads(BUNDLES[0].read_text())
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "Encounter":
            entry["resource"]["serviceProvider"] = {"reference": f"Organization/{OTHER}"}

    response = web.post("/fhir", content=json.dumps(bundle), headers={**bearer(token), **FHIR_JSON})

    assert response.status_code == 403


def _patient(hkid: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": HKID, "value": hkid}],
        "name": [{"family": "Chan", "given": ["Tai Man"]}],
        "birthDate": "1970-03-14",
    }


def _conditional(web: FhirTestClient, staff: Staff, hkid: str) -> Any:
    return web.post(
        "/fhir/Patient",
        content=json.dumps(_patient(hkid)),
        headers={**staff.headers, **FHIR_JSON, "If-None-Exist": f"identifier={HKID}|{hkid}"},
    )


def test_a_conditional_create_never_duplicates_a_patient_the_caller_may_not_see(
    services: Services, web: FhirTestClient
) -> None:
    desk_other = make_staff(services, Role.FRONT_DESK, [OTHER])
    desk_mine = make_staff(services, Role.FRONT_DESK, [MINE])
    first = _conditional(web, desk_other, "A123456(3)")
    assert first.status_code == 201
    again = _conditional(web, desk_other, "A123456(3)")
    assert (again.status_code, again.json()["id"]) == (200, first.json()["id"])

    hidden = _conditional(web, desk_mine, "A123456(3)")

    assert hidden.status_code == 409
    issue = hidden.json()["issue"][0]
    assert issue["code"] == "duplicate" and "$register" in issue["diagnostics"]
    assert "Chan" not in hidden.text and first.json()["id"] not in hidden.text
    with read_transaction(services.engine) as connection:
        count = len(
            connection.execute(
                select(resource_head.c.resource_id).where(
                    resource_head.c.resource_type == "Patient"
                )
            ).all()
        )
    assert count == 1
    refused = [e for e in _events(services, Tag.FHIR_CREATE) if e.outcome is Outcome.DENIED]
    assert [e.principal for e in refused] == [
        desk_mine.account.username and f"staff:{desk_mine.account.username}"
    ]
    # A new patient is created as ever.
    assert _conditional(web, desk_mine, "C668668(9)").status_code == 201


def test_criteria_in_a_creates_query_are_a_conditional_create_never_ignored(
    services: Services, web: FhirTestClient
) -> None:
    """Hole: search parameters in a POST's query (how fhirpy's get_or_create asks for a
    conditional create) were ignored, so every call made another record of the same
    patient. They are now the create's criteria, judged as If-None-Exist is (the hidden
    match refused with 409 too); unknown ones are refused; both forms at once, 400."""
    desk_other = make_staff(services, Role.FRONT_DESK, [OTHER])
    desk_mine = make_staff(services, Role.FRONT_DESK, [MINE])
    query = urlencode({"identifier": f"{HKID}|A123456(3)"})

    def create(staff: Staff, path: str, **headers: str) -> Any:
        body = json.dumps(_patient("A123456(3)"))
        return web.post(path, content=body, headers={**staff.headers, **FHIR_JSON, **headers})

    first = create(desk_other, f"/fhir/Patient?{query}")
    again = create(desk_other, f"/fhir/Patient?{query}&_format=json")
    hidden = create(desk_mine, f"/fhir/Patient?{query}")
    unknown = create(desk_other, "/fhir/Patient?colour=blue")
    both = create(desk_other, f"/fhir/Patient?{query}", **{"If-None-Exist": query})

    assert first.status_code == 201
    assert (again.status_code, again.json()["id"]) == (200, first.json()["id"])
    assert hidden.status_code == 409 and hidden.json()["issue"][0]["code"] == "duplicate"
    assert unknown.status_code == 400 and "colour" in unknown.text
    assert both.status_code == 400 and both.json()["resourceType"] == "OperationOutcome"
    with read_transaction(services.engine) as connection:
        patients = connection.execute(
            select(resource_head.c.resource_id).where(resource_head.c.resource_type == "Patient")
        ).all()
    assert len(patients) == 1


def test_probing_identifiers_with_conditional_creates_is_throttled(
    services: Services, web: FhirTestClient
) -> None:
    desk_other = make_staff(services, Role.FRONT_DESK, [OTHER])
    prober = make_staff(services, Role.FRONT_DESK, [MINE])
    assert _conditional(web, desk_other, "A123456(3)").status_code == 201

    answers = [_conditional(web, prober, "A123456(3)").status_code for _ in range(6)]

    assert answers == [409] * 5 + [429]
    # The throttle is the registration's: the same account cannot fish with $register now.
    assert _conditional(web, prober, "C668668(9)").status_code == 429
