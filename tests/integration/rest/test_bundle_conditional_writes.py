"""A Bundle's ``PUT`` and ``DELETE`` entries on ``[type]?[criteria]``: conditional update
and delete (R4 http.html#trules), answered as the same request on its own answers it
(``rest/conditional.py``), the match found through the gate before anything is written.
Converters from HL7 v2 and CDA send their transactions so ("update the patient with this
MRN, or create them"); they were refused with 400. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from carevault.bootstrap import Services
from tests.integration.access.group import TM, Group, build_group
from tests.integration.rest.test_interactions import HKID_SYSTEM, create, observation, patient
from tests.support.client import FhirTestClient


def _by_hkid(hkid: str) -> str:
    return f"identifier={HKID_SYSTEM}|{hkid}"


def _bundle(kind: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def _put(url: str, resource: dict[str, Any], full_url: str | None = None, **request: str) -> Any:
    entry: dict[str, Any] = {"request": {"method": "PUT", "url": url, **request}}
    entry["resource"] = resource
    if full_url is not None:
        entry["fullUrl"] = full_url
    return entry


def _delete(url: str) -> dict[str, Any]:
    return {"request": {"method": "DELETE", "url": url}}


def _patients(api: FhirTestClient, hkid: str) -> list[dict[str, Any]]:
    found = api.get("/fhir/Patient", params={"identifier": f"{HKID_SYSTEM}|{hkid}"})
    assert found.status_code == 200, found.text
    return [entry["resource"] for entry in found.json().get("entry", [])]


def test_a_transaction_creates_or_updates_by_criteria_and_its_references_follow(
    api: FhirTestClient,
) -> None:
    known = create(api, patient("Ho", "Ka Ming", "R555555(7)"))
    bundle = _bundle(
        "transaction",
        _put(
            f"Patient?{_by_hkid('R555555(7)')}",
            {**patient("Ho", "Ka Ming", "R555555(7)"), "gender": "female"},
        ),
        _put(
            f"Patient?{_by_hkid('Z000000(1)')}",
            patient("Wong", "Siu Fan", "Z000000(1)"),
            full_url="urn:uuid:0b8f7c8e-2f0a-4d8e-9f53-3c1f0e0a1b11",
        ),
        {
            "fullUrl": "urn:uuid:5e1b9a52-7b8a-4a8b-8d5e-0c9d6a1f2e33",
            "request": {"method": "POST", "url": "Observation"},
            "resource": {
                **observation("unknown", "2026-12-01"),
                "subject": {"reference": "urn:uuid:0b8f7c8e-2f0a-4d8e-9f53-3c1f0e0a1b11"},
            },
        },
    )

    answer = api.post_json("/fhir", bundle)

    assert answer.status_code == 200, answer.text
    updated, created, noted = (entry["response"] for entry in answer.json()["entry"])
    assert updated["status"].startswith("200")
    assert updated["location"].startswith(f"Patient/{known['id']}/_history/2")
    assert created["status"].startswith("201")
    [new] = _patients(api, "Z000000(1)")
    assert created["location"].startswith(f"Patient/{new['id']}/_history/1")
    assert api.get(f"/fhir/Patient/{known['id']}").json()["gender"] == "female"
    observation_id = noted["location"].split("/")[1]
    stored = api.get(f"/fhir/Observation/{observation_id}").json()
    assert stored["subject"]["reference"] == f"Patient/{new['id']}"


def test_a_transaction_deletes_by_criteria_and_a_delete_that_matches_nothing_deletes_nothing(
    api: FhirTestClient,
) -> None:
    gone = create(api, patient("Ho", "Ka Ming", "R555555(7)"))
    bundle = _bundle(
        "transaction",
        _delete(f"Patient?{_by_hkid('R555555(7)')}"),
        _delete(f"Patient?{_by_hkid('Z000000(1)')}"),
    )

    answer = api.post_json("/fhir", bundle)

    assert answer.status_code == 200, answer.text
    assert [e["response"]["status"][:3] for e in answer.json()["entry"]] == ["204", "204"]
    assert api.get(f"/fhir/Patient/{gone['id']}").status_code == 410


@pytest.mark.parametrize(
    ("entry", "status", "words"),
    [
        # Two matches: 412, as PUT [type]?[criteria] alone.
        (lambda: _put("Patient?family=Chan", patient()), 412, "more than one"),
        (lambda: _delete("Patient?family=Chan"), 412, "more than one"),
        # An id that is not the match's, or an id where nothing matches. (The match is
        # not the record the first entry writes: two entries coming to one patient are
        # refused before either is looked up, ``test_transaction_one_identifier``.)
        (
            lambda: _put(
                f"Patient?{_by_hkid('B234567(1)')}",
                {**patient("Chan", "Siu Ming", "B234567(1)"), "id": "someone"},
            ),
            400,
            "not the id",
        ),
        (
            lambda: _put(
                f"Patient?{_by_hkid('Z000000(1)')}", {**patient(hkid="Z000000(1)"), "id": "mine"}
            ),
            400,
            "server-assigned",
        ),
        # If-Match of another version, and If-Match where nothing matches.
        (
            lambda: _put(
                f"Patient?{_by_hkid('B234567(1)')}",
                patient("Chan", "Siu Ming", "B234567(1)"),
                ifMatch='W/"7"',
            ),
            412,
            "If-Match names version 7",
        ),
        (
            lambda: _put(
                f"Patient?{_by_hkid('Z000000(1)')}", patient(hkid="Z000000(1)"), ifMatch='W/"1"'
            ),
            412,
            "nothing matches",
        ),
        # Criteria that filter nothing, or that the server does not know: never ignored.
        (lambda: _put("Patient?_count=1", patient()), 400, "not a search criterion"),
        (lambda: _put("Patient?shoe-size=9", patient()), 400, "shoe-size"),
    ],
)
def test_a_transaction_with_a_refused_conditional_entry_writes_nothing_and_says_as_alone(
    api: FhirTestClient, entry: Any, status: int, words: str
) -> None:
    first = create(api, patient())
    create(api, patient("Chan", "Siu Ming", "B234567(1)"))
    bundle = _bundle(
        "transaction",
        _put(f"Patient/{first['id']}", {**first, "gender": "male"}),
        entry(),
    )
    made = entry()
    request = made["request"]
    alone = api.request(
        request["method"],
        f"/fhir/{request['url']}",
        content=None if "resource" not in made else json.dumps(made["resource"]),
        headers={"content-type": "application/fhir+json"}
        | ({"If-Match": request["ifMatch"]} if "ifMatch" in request else {}),
    )
    assert alone.status_code == status, alone.text

    answer = api.post_json("/fhir", bundle)

    assert answer.status_code == status, answer.text
    [issue] = answer.json()["issue"]
    # Named by its entry; a version the write finds is not current, by its record (as
    # for any PUT entry).
    assert issue["diagnostics"].startswith(("Bundle.entry[1]", "Patient/"))
    assert words in issue["diagnostics"]
    assert api.get(f"/fhir/Patient/{first['id']}").json()["meta"]["versionId"] == "1"


def test_two_entries_whose_criteria_find_one_record_are_refused(api: FhirTestClient) -> None:
    made = create(api, patient())
    bundle = _bundle(
        "transaction",
        _put(f"Patient?{_by_hkid('A123456(3)')}", {**patient(), "gender": "male"}),
        _put(f"Patient/{made['id']}", {**made, "gender": "female"}),
    )

    answer = api.post_json("/fhir", bundle)

    assert answer.status_code == 400, answer.text
    assert "written by Bundle.entry" in answer.json()["issue"][0]["diagnostics"]
    assert api.get(f"/fhir/Patient/{made['id']}").json()["meta"]["versionId"] == "1"


def test_a_batch_runs_each_conditional_entry_on_its_own(api: FhirTestClient) -> None:
    known = create(api, patient("Ho", "Ka Ming", "R555555(7)"))
    create(api, patient())
    create(api, patient("Chan", "Siu Ming", "B234567(1)"))
    bundle = _bundle(
        "batch",
        _put(f"Patient?{_by_hkid('R555555(7)')}", {**patient("Ho", "Ka Ming", "R555555(7)")}),
        _put("Patient?family=Chan", patient()),
        _put(f"Patient?{_by_hkid('Z000000(1)')}", patient("Wong", "Siu Fan", "Z000000(1)")),
        _delete(f"Patient?{_by_hkid('Q000000(7)')}"),
    )

    answer = api.post_json("/fhir", bundle)

    assert answer.status_code == 200, answer.text
    statuses = [entry["response"]["status"][:3] for entry in answer.json()["entry"]]
    assert statuses == ["200", "412", "201", "204"]
    assert api.get(f"/fhir/Patient/{known['id']}").json()["meta"]["versionId"] == "2"
    assert len(_patients(api, "Z000000(1)")) == 1


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _lee(group: Group) -> dict[str, Any]:
    hkid = group.tw_patient.hkid
    return {
        "resourceType": "Patient",
        "identifier": [{"system": HKID_SYSTEM, "value": hkid}],
        "name": [{"family": "Lee", "given": ["Planted"]}],
        "managingOrganization": {"reference": f"Organization/{TM}"},
    }


@pytest.mark.parametrize("kind", ["transaction", "batch"])
def test_a_desks_conditional_update_matching_only_another_clinics_patient_is_refused(
    group: Group, kind: str
) -> None:
    """As ``PUT Patient?identifier=…`` alone: a create where only a hidden record matches
    is refused (409, a failed registration), never a second record of the patient, and
    the hidden record is not touched."""
    url = f"Patient?{_by_hkid(group.tw_patient.hkid)}"
    alone = group.call(group.desk_tm, "PUT", f"/fhir/{url}", _lee(group))
    assert alone.status_code == 409, alone.text

    answer = group.call(group.desk_tm, "POST", "/fhir", _bundle(kind, _put(url, _lee(group))))

    if kind == "transaction":
        assert answer.status_code == 409, answer.text
    else:
        assert answer.json()["entry"][0]["response"]["status"].startswith("409"), answer.text
    held = group.call(group.desk_tw, "GET", f"/fhir/Patient/{group.tw_patient.id}").json()
    assert held["meta"]["versionId"] == "1" and "Planted" not in str(held)
    found = group.call(
        group.desk_tw, "GET", f"/fhir/Patient?identifier={HKID_SYSTEM}|{group.tw_patient.hkid}"
    ).json()
    assert len(found.get("entry", [])) == 1


@pytest.mark.parametrize("kind", ["transaction", "batch"])
def test_a_desks_conditional_delete_matching_only_another_clinics_patient_deletes_nothing(
    group: Group, kind: str
) -> None:
    url = f"Patient?{_by_hkid(group.tw_patient.hkid)}"

    answer = group.call(group.desk_tm, "POST", "/fhir", _bundle(kind, _delete(url)))

    assert answer.status_code == 200, answer.text
    assert answer.json()["entry"][0]["response"]["status"].startswith("204")
    kept = group.call(group.desk_tw, "GET", f"/fhir/Patient/{group.tw_patient.id}")
    assert kept.status_code == 200, kept.text
