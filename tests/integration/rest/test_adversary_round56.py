"""Adversary round 56, conditional references in transaction Bundles: Tuen Mun's staff
(desk, nurse, doctor, pharmacist, billing) and a doctor's app granted fewer scopes name
records as ``[type]?criteria`` to learn of records they may not see, or to attach a
record to a patient they may not reach; and instance history's links without ``_count``.
Each answer is compared with that of criteria matching nothing, or of a plain search by
the same caller (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from carevault.ledger.events import Tag
from tests.integration.access.group import (
    FLU,
    HIV,
    HKID_SYSTEM,
    TM,
    Group,
    booked_today,
    build_group,
    encounter,
    observation,
)
from tests.support.client import FhirTestClient
from tests.support.staff import Staff, make_staff, open_token

pytestmark = pytest.mark.postgres

ICD10 = "http://hl7.org/fhir/sid/icd-10"
NEVER_USED = "Z999999(9)"


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _bundle(kind: str, *resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": kind,
        "entry": [
            {"resource": r, "request": {"method": "POST", "url": r["resourceType"]}}
            for r in resources
        ],
    }


def _by_hkid(hkid: str) -> str:
    return f"Patient?identifier={HKID_SYSTEM}|{hkid}"


def _focused(group: Group, criteria: str) -> dict[str, Any]:
    sent = observation(group.tm_patient.id)
    sent["focus"] = [{"reference": criteria}]
    return sent


def _count(api: FhirTestClient, type_name: str) -> int:
    total: int = api.get(f"/fhir/{type_name}?_summary=count").json()["total"]
    return total


def test_a_diagnosis_withheld_from_a_pharmacist_answers_as_one_never_made(group: Group) -> None:
    """The pharmacist names ``Condition?patient=X&code=B20`` (HIV, which their reads
    withhold) and then a code the patient never had: the same 404, word for word."""
    tm = group.tm_patient
    made = group.call(
        group.doctor_tm,
        "POST",
        "/fhir/Condition",
        {"resourceType": "Condition", "code": HIV, "subject": {"reference": f"Patient/{tm.id}"}},
    )
    assert made.status_code == 201, made.text
    pharmacist = make_staff(group.services, Role.PHARMACIST, [TM])
    answers = [
        group.call(
            pharmacist,
            "POST",
            "/fhir",
            _bundle("transaction", _focused(group, f"Condition?patient={tm.id}&code={ICD10}|{c}")),
        )
        for c in ("B20", "Z99")
    ]
    assert [a.status_code for a in answers] == [404, 404]
    assert answers[0].text == answers[1].text


@pytest.mark.parametrize("who", ["desk_tm", "doctor_tm", "nurse"])
def test_another_clinics_hkid_answers_as_a_number_never_used(
    group: Group, api: FhirTestClient, who: str
) -> None:
    """An Encounter and an Appointment naming Tsuen Wan's patient by HKID, sent by Tuen
    Mun's staff (whose own searches do not reach them): 404 as for a number no one has,
    nothing written; the care relationship the visit would open is never opened."""
    caller: Staff = (
        make_staff(group.services, Role.NURSE, [TM]) if who == "nurse" else getattr(group, who)
    )
    tw = group.tw_patient
    before = (_count(api, "Encounter"), _count(api, "Appointment"))
    read_before = group.call(group.doctor_tm, "GET", f"/fhir/Patient/{tw.id}").text
    said = []
    for hkid in (tw.hkid, NEVER_USED):
        visit = encounter(tw.id, TM)
        visit["subject"] = {"reference": _by_hkid(hkid)}
        booking = booked_today(tw.id, TM)
        booking["participant"][0]["actor"] = {"reference": _by_hkid(hkid)}
        answer = group.call(caller, "POST", "/fhir", _bundle("transaction", visit, booking))
        said.append((answer.status_code, answer.text))
    assert said[0] == said[1] and said[0][0] == 404, said
    assert tw.id not in said[0][1]
    assert (_count(api, "Encounter"), _count(api, "Appointment")) == before
    assert group.call(group.doctor_tm, "GET", f"/fhir/Patient/{tw.id}").text == read_before


def test_a_patient_found_by_a_conditional_reference_is_named_in_the_ledger(group: Group) -> None:
    """Billing (group-wide, and not allowed to read HKIDs) resolves Tsuen Wan's patient
    by HKID in a Bundle whose write it may not make: the search that told it which
    patient holds the number names them in the ledger, as a plain search would."""
    billing = make_staff(group.services, Role.BILLING, [TM])
    tw = group.tw_patient
    pseudonym = group.services.vault.patient_pseudonyms([tw.id])[tw.id]
    seen = len(group.events())
    refused = group.call(
        billing, "POST", "/fhir", _bundle("transaction", _focused(group, _by_hkid(tw.hkid)))
    )
    assert refused.status_code == 403, refused.text
    searches = [e for e in group.events()[seen:] if e.tag == Tag.FHIR_SEARCH]
    assert [e.patient_pseudonym for e in searches] == [pseudonym]


def test_an_app_without_search_scope_learns_nothing_from_a_conditional_reference(
    group: Group,
) -> None:
    """A doctor's app granted only ``user/Observation.c``: naming a patient by HKID is a
    Patient search it may not make (403), for a number held and one never used alike."""
    token = open_token(group.services, group.doctor_tm.account, "user/Observation.c")
    headers = {"authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
    said = []
    for hkid in (group.tm_patient.hkid, NEVER_USED):
        sent = observation(group.tm_patient.id)
        sent["subject"] = {"reference": _by_hkid(hkid)}
        answer = group.web.post_json("/fhir", _bundle("transaction", sent), **headers)
        said.append((answer.status_code, answer.text))
    assert said[0] == said[1] and said[0][0] == 403, said


@pytest.mark.parametrize(
    "criteria",
    [
        "Patient?name=Chan&_include=Patient:general-practitioner",
        "Patient?name=Chan&_sort=birthdate",
        "Patient?name=Chan&_count=1",
        "Patient?name=Chan&_summary=count",
        "Patient?name=Chan&_elements=id",
        "Patient?name=Chan&_revinclude=Observation:patient",
        "Patient?general-practitioner.name=Wong",
        "Patient?_has:Observation:patient:code=x",
        "Patient?_sort=birthdate",
    ],
)
def test_criteria_that_shape_a_result_or_chain_are_refused(
    group: Group, api: FhirTestClient, criteria: str
) -> None:
    """Held: a conditional reference takes criteria that filter only, as a conditional
    interaction does (400), so no ``_count=1`` or ``_sort`` turns several matches into
    one; chains and ``_has`` are not supported."""
    before = _count(api, "Observation")
    answer = group.call(
        group.doctor_tm, "POST", "/fhir", _bundle("transaction", _focused(group, criteria))
    )
    assert answer.status_code == 400, answer.text
    assert _count(api, "Observation") == before


def test_a_list_of_ids_resolves_only_to_the_one_the_caller_may_see(group: Group) -> None:
    """Held: ``Patient?_id=<own>,<other clinic's>`` is one visible match, as the plain
    search shows one: resolved to the caller's own patient, never a 412 telling that
    the other id is a patient."""
    tm, tw = group.tm_patient, group.tw_patient
    answer = group.call(
        group.doctor_tm,
        "POST",
        "/fhir",
        _bundle("transaction", _focused(group, f"Patient?_id={tm.id},{tw.id}")),
    )
    assert answer.status_code == 200, answer.text
    location = answer.json()["entry"][0]["response"]["location"].split("/_history")[0]
    stored = group.call(group.doctor_tm, "GET", f"/fhir/{location}").json()
    assert stored["focus"] == [{"reference": f"Patient/{tm.id}"}]


def test_references_in_contained_resources_and_extensions_are_resolved_alike(
    group: Group,
) -> None:
    """Held: a search URI in a contained resource or an extension's valueReference is
    resolved by the same search (the caller's own patient), and names another clinic's
    patient nowhere (404, nothing written)."""
    tm, tw = group.tm_patient, group.tw_patient
    for hkid, status in ((tm.hkid, 200), (tw.hkid, 404)):
        sent = observation(tm.id)
        sent["contained"] = [
            {
                "resourceType": "Observation",
                "id": "c1",
                "status": "final",
                "code": {"text": "earlier reading"},
                "subject": {"reference": _by_hkid(hkid)},
            }
        ]
        sent["extension"] = [
            {"url": "http://example.org/about", "valueReference": {"reference": _by_hkid(hkid)}}
        ]
        answer = group.call(group.doctor_tm, "POST", "/fhir", _bundle("transaction", sent))
        assert answer.status_code == status, answer.text
        if status == 200:
            location = answer.json()["entry"][0]["response"]["location"].split("/_history")[0]
            stored = group.call(group.doctor_tm, "GET", f"/fhir/{location}").json()
            assert stored["contained"][0]["subject"] == {"reference": f"Patient/{tm.id}"}
            assert stored["extension"][0]["valueReference"] == {"reference": f"Patient/{tm.id}"}


def test_a_conditional_reference_in_a_batch_or_a_single_write_is_not_followed(
    group: Group, api: FhirTestClient
) -> None:
    """Held: outside a transaction the search URI is left as sent, and a patient named
    so is refused (422), in a batch entry as in a single POST: nothing written."""
    sent = observation(group.tm_patient.id)
    sent["subject"] = {"reference": _by_hkid(group.tm_patient.hkid)}
    before = _count(api, "Observation")
    batch = group.call(group.doctor_tm, "POST", "/fhir", _bundle("batch", sent))
    assert batch.json()["entry"][0]["response"]["status"] == "422", batch.text
    single = group.call(group.doctor_tm, "POST", "/fhir/Observation", sent)
    assert single.status_code == 422, single.text
    assert _count(api, "Observation") == before


def test_an_instance_history_without_count_links_no_count_and_lists_only_what_may_be_read(
    group: Group,
) -> None:
    """Held: flu corrected to HIV and back, paged by a pharmacist without ``_count``:
    versions 3 and 1, ``total`` 2, no next or previous link, and no link naming a number
    (neither of the versions found nor of those withheld)."""
    tm = group.tm_patient
    body = {"resourceType": "Condition", "code": FLU, "subject": {"reference": f"Patient/{tm.id}"}}
    made = group.call(group.doctor_tm, "POST", "/fhir/Condition", body)
    ident = made.json()["id"]
    for code in (HIV, FLU):
        changed = group.call(
            group.doctor_tm,
            "PUT",
            f"/fhir/Condition/{ident}",
            {**body, "id": ident, "code": code},
        )
        assert changed.status_code == 200, changed.text
    pharmacist = make_staff(group.services, Role.PHARMACIST, [TM])
    history = group.call(pharmacist, "GET", f"/fhir/Condition/{ident}/_history").json()
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["3", "1"]
    assert history["total"] == 2
    links = {link["relation"]: link["url"] for link in history["link"]}
    assert set(links) == {"self", "first"}
    assert all("_count" not in url and "_offset" not in url for url in links.values())


@pytest.mark.parametrize(
    ("criteria", "status"),
    [
        ("Patient?name=" + "a" * 100_000, 404),
        ("Patient?name=Chan%26_id%3Dx", 404),
        (f"Observation?subject=Patient?identifier={HKID_SYSTEM}|A123456(3)", 400),
    ],
    ids=["huge", "encoded-ampersand", "nested"],
)
def test_odd_criteria_find_nothing_and_write_nothing(
    group: Group, api: FhirTestClient, criteria: str, status: int
) -> None:
    """Held: a 100,000-character name and an encoded ``&`` are one value that matches
    no one (404); a search URI inside criteria is no reference to follow (400)."""
    before = _count(api, "Observation")
    answer = group.call(
        group.doctor_tm, "POST", "/fhir", _bundle("transaction", _focused(group, criteria))
    )
    assert answer.status_code == status, answer.text[:300]
    assert _count(api, "Observation") == before


def test_a_put_moving_a_record_to_another_clinics_patient_by_hkid_finds_no_one(
    group: Group,
) -> None:
    """Held: Tuen Mun's doctor rewrites their patient's observation with its subject as
    Tsuen Wan's patient's HKID (a PUT entry): 404 as for a number never used, the record
    unchanged; the same PUT naming their own patient's HKID is resolved and written. A
    PATCH entry is not taken in a Bundle at all (400)."""
    tm, tw = group.tm_patient, group.tw_patient
    path = f"/fhir/Observation/{tm.observation}"
    before = group.call(group.doctor_tm, "GET", path).json()

    def put(hkid: str) -> Any:
        body = {**observation(tm.id), "id": tm.observation}
        body["subject"] = {"reference": _by_hkid(hkid)}
        entry = {
            "resource": body,
            "request": {"method": "PUT", "url": f"Observation/{tm.observation}"},
        }
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [entry]}
        return group.call(group.doctor_tm, "POST", "/fhir", bundle)

    hidden, never = put(tw.hkid), put(NEVER_USED)
    assert (hidden.status_code, hidden.text) == (never.status_code, never.text)
    assert hidden.status_code == 404
    assert group.call(group.doctor_tm, "GET", path).json() == before
    own = put(tm.hkid)
    assert own.status_code == 200, own.text
    assert group.call(group.doctor_tm, "GET", path).json()["subject"] == {
        "reference": f"Patient/{tm.id}"
    }
    patch = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {"resourceType": "Parameters"},
                "request": {"method": "PATCH", "url": f"Observation/{tm.observation}"},
            }
        ],
    }
    assert group.call(group.doctor_tm, "POST", "/fhir", patch).status_code == 400
