"""``_summary`` and ``_elements`` as clients we did not write send them, over plain HTTP
to a running server: fhirpy's ``.elements()``, and the query strings of HAPI's generic
client (``.summaryMode()``, ``.elementsSubset()``, ``_format=json``) and of SMART apps.
The front desk's views stay within what its role may see."""

from __future__ import annotations

import pytest
import requests
from fhirpy import SyncFHIRClient

from carevault.config import Settings
from tests.support.auth import colleagues, token_for
from tests.support.conformance import check_body
from tests.support.server import RunningServer

# What a client (or a browser) sees of the HTTP API: run on PostgreSQL, as production is; the
# storage under it is tested on both backends by the integration tests.
pytestmark = [pytest.mark.e2e, pytest.mark.only_backend("postgres")]

HKID_SYSTEM = "http://carevault.hk/sid/hkid"
SUBSETTED = "SUBSETTED"


def _get(server: RunningServer, token: str, path: str) -> requests.Response:
    response = requests.get(
        f"{server.fhir}/{path}",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"},
        timeout=30,
    )
    check_body(response.headers.get("content-type", ""), response.content)
    return response


def test_views_asked_by_third_party_clients(live_server: RunningServer, settings: Settings) -> None:
    (desk, doctor), clinic = colleagues(settings.home, "front_desk", "physician")
    desk_token = token_for(live_server.url, desk)
    doctor_token = token_for(live_server.url, doctor)
    client = SyncFHIRClient(live_server.fhir, authorization=f"Bearer {doctor_token}")
    front = SyncFHIRClient(live_server.fhir, authorization=f"Bearer {desk_token}")
    patient = front.resource(
        "Patient",
        text={
            "status": "generated",
            "div": '<div xmlns="http://www.w3.org/1999/xhtml">Leung Wing Sze</div>',
        },
        identifier=[{"system": HKID_SYSTEM, "value": "K654321(9)"}],
        name=[{"family": "Leung", "given": ["Wing Sze"]}],
        birthDate="1991-08-12",
        maritalStatus={"text": "single"},
    )
    patient.save()
    # The physician's visit: what lets them read the patient (a care relationship).
    client.resource(
        "Encounter",
        status="finished",
        **{"class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}},
        subject=patient.to_reference(),
        # At the clinic, where the patient is registered: a visit at no clinic opens
        # nothing, and without care the physician is shown no narrative of a Patient.
        serviceProvider={"reference": f"Organization/{clinic}"},
        period={"start": "2026-11-27T09:00:00+08:00", "end": "2026-11-27T09:20:00+08:00"},
    ).save()

    # fhirpy: .elements() sends _elements=name,id,resourceType (in any order).
    [named] = (
        client.resources("Patient").search(_id=patient.id).elements("name").fetch_raw()["entry"]
    )
    assert set(named["resource"]) == {"resourceType", "id", "meta", "name"}
    assert [label["code"] for label in named["resource"]["meta"]["security"]] == [SUBSETTED]

    # HAPI's generic client: .summaryMode(SummaryEnum.TRUE) on a search and a read.
    bundle = _get(live_server, doctor_token, f"Patient?_id={patient.id}&_summary=true&_format=json")
    assert bundle.status_code == 200, bundle.text
    summary = bundle.json()["entry"][0]["resource"]
    assert "maritalStatus" not in summary and "text" not in summary
    assert summary["identifier"][0]["value"] == "K654321(9)"
    read = _get(live_server, doctor_token, f"Patient/{patient.id}?_summary=text&_format=json")
    assert set(read.json()) == {"resourceType", "id", "meta", "text"}
    # .elementsSubset("identifier", "name"): the comma percent-encoded.
    subset = _get(live_server, doctor_token, f"Patient/{patient.id}?_elements=identifier%2Cname")
    assert set(subset.json()) == {"resourceType", "id", "meta", "identifier", "name"}

    # The front desk asks for the HKID by name: its role withholds it, the view does not
    # bring it back; nor does asking for every element.
    for query in ("_elements=identifier", "_summary=false", "_summary=true"):
        at_desk = _get(live_server, desk_token, f"Patient/{patient.id}?{query}")
        assert at_desk.status_code == 200, at_desk.text
        assert "K654321" not in at_desk.text

    refused = _get(live_server, doctor_token, f"Patient/{patient.id}?_summary=bogus")
    assert refused.status_code == 400
    assert refused.json()["resourceType"] == "OperationOutcome"
