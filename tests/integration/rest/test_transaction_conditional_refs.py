"""Conditional references in a transaction (FHIR R4 http.html#trules, "Conditional
References"): a client that knows a record only by an identifier may name it as a search
URI, ``[type]?query``; "When processing transactions, servers SHALL: check all references
for search URIs; ... use the search to locate matching resources; if there are no
matches, or multiple matches, the transaction fails ...; if there is a single match, the
server replaces the search URI with a reference to the matching resource". They were
stored as written, a search URI where a reference to a record belongs. Each is run as
the caller's own search, through the gate: it finds only what the caller could."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from carevault.bootstrap import Services
from tests.integration.access.group import HKID_SYSTEM, Group, build_group
from tests.integration.rest.test_interactions import create, observation, patient
from tests.support.client import FhirTestClient

pytestmark = pytest.mark.postgres

MCHK = "urn:hk:mchk"


def _transaction(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def _post(resource: dict[str, Any]) -> dict[str, Any]:
    return {"resource": resource, "request": {"method": "POST", "url": resource["resourceType"]}}


def _practitioner(api: FhirTestClient, number: str) -> dict[str, Any]:
    return create(
        api,
        {
            "resourceType": "Practitioner",
            "identifier": [{"system": MCHK, "value": number}],
            "name": [{"family": "Wong"}],
        },
    )


def test_a_search_uri_naming_one_record_is_replaced_by_a_reference_to_it(
    api: FhirTestClient,
) -> None:
    made = create(api, patient())
    doctor = _practitioner(api, "M12345")
    sent = observation(made["id"], "2024-01-01")
    sent["subject"] = {"reference": f"Patient?identifier={HKID_SYSTEM}|A123456(3)"}
    sent["performer"] = [{"reference": f"Practitioner?identifier={MCHK}|M12345"}]
    again = observation(made["id"], "2024-01-02")
    again["performer"] = [{"reference": f"Practitioner?identifier={MCHK}|M12345"}]
    answered = api.post_json("/fhir", _transaction(_post(sent), _post(again)))
    assert answered.status_code == 200, answered.text
    for entry in answered.json()["entry"]:
        stored = api.get(f"/fhir/{entry['response']['location'].split('/_history')[0]}").json()
        assert stored["subject"] == {"reference": f"Patient/{made['id']}"}
        assert stored["performer"] == [{"reference": f"Practitioner/{doctor['id']}"}]


@pytest.mark.parametrize("matches", [0, 2])
def test_a_search_uri_naming_no_record_or_several_fails_the_transaction(
    api: FhirTestClient, matches: int
) -> None:
    made = create(api, patient())
    for _ in range(matches):
        _practitioner(api, "M777")
    sent = observation(made["id"], "2024-01-01")
    sent["performer"] = [{"reference": f"Practitioner?identifier={MCHK}|M777"}]
    before = api.get("/fhir/Observation?_summary=count").json()["total"]
    answered = api.post_json("/fhir", _transaction(_post(sent)))
    assert answered.status_code == (404 if matches == 0 else 412), answered.text
    assert answered.json()["resourceType"] == "OperationOutcome"
    assert api.get("/fhir/Observation?_summary=count").json()["total"] == before


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def test_a_search_uri_finds_only_what_the_callers_own_search_finds(group: Group) -> None:
    """The treating doctor at Tsuen Wan names their patient by HKID: resolved. The
    doctor at Tuen Mun, naming the same HKID, finds no patient (theirs to see): the
    transaction fails as for no match, and names nobody."""
    tw = group.tw_patient
    sent = observation(tw.id, "2024-01-01")
    sent["subject"] = {"reference": f"Patient?identifier={HKID_SYSTEM}|{tw.hkid}"}
    answered = group.call(group.doctor_tw, "POST", "/fhir", _transaction(_post(sent)))
    assert answered.status_code == 200, answered.text
    location = answered.json()["entry"][0]["response"]["location"].split("/_history")[0]
    stored = group.call(group.doctor_tw, "GET", f"/fhir/{location}").json()
    assert stored["subject"] == {"reference": f"Patient/{tw.id}"}

    refused = group.call(group.doctor_tm, "POST", "/fhir", _transaction(_post(sent)))
    assert refused.status_code == 404, refused.text
    assert tw.id not in refused.text
