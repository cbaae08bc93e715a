"""Adversary round 59, membership by identifier: Tuen Mun's doctor or nurse, whose roles
read government ids and so are shown a search's ``total``, holds a list of HKIDs (a
celebrity's, an ex-partner's, a leaked list) and asks
``Patient?identifier=<an HKID>&_summary=count`` (or ``_count=0``, or the whole list at
once): each total said whether the number was a patient of theirs, yet the entry named
no patient, spent nothing from the release budget and showed in no access report. Round
58 (stop 47) named whom a count by telephone or email counts; an identifier names one
person more surely still. Likewise a conditional create refused for a match the caller
may not see told that an HKID is a patient's of the group, and named no one. SQLite and
PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from carevault.bootstrap import Services
from carevault.domain.hkid import check_digit
from carevault.domain.roles import Role
from carevault.ledger.events import Outcome, Tag
from tests.integration.access.group import (
    FLU,
    HIV,
    HKID_SYSTEM,
    TM,
    TODAY,
    Group,
    build_group,
    created,
    encounter,
    registered_patient,
)
from tests.integration.rest.test_adversary_round58 import _without_made
from tests.integration.rest.test_contact_counts import _pseudonyms, _told_of
from tests.integration.rest.test_identifier_paging import _get
from tests.support.client import FHIR_JSON, FhirTestClient
from tests.support.ledgers import patient_pseudonym
from tests.support.staff import Staff, make_staff

pytestmark = pytest.mark.postgres


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _hkid(serial: str) -> str:
    return f"K{serial}({check_digit('K', serial)})"


@pytest.fixture
def listed(api: FhirTestClient, group: Group) -> dict[str, str]:
    """Three patients of Tuen Mun, by their HKIDs."""
    return {
        hkid: created(
            api,
            {
                "resourceType": "Patient",
                "identifier": [{"system": HKID_SYSTEM, "value": hkid}],
                "name": [{"family": "Yip", "given": [given]}],
                "managingOrganization": {"reference": f"Organization/{TM}"},
            },
        )
        for hkid, given in (
            (_hkid("100001"), "Wing"),
            (_hkid("100002"), "Kit"),
            (_hkid("100003"), "Lai"),
        )
    }


@pytest.mark.parametrize("role", [Role.PHYSICIAN, Role.NURSE])
@pytest.mark.parametrize("alone", [{"_summary": "count"}, {"_count": "0"}])
def test_a_count_by_identifier_names_whom_it_counts(
    group: Group, listed: dict[str, str], role: Role, alone: dict[str, str]
) -> None:
    who = make_staff(group.services, role, [TM])
    hkid = next(iter(listed))
    counted = _get(group, who, "/fhir/Patient", {"identifier": hkid, **alone})
    assert counted["total"] == 1 and "entry" not in counted
    assert _told_of(group, who) == _pseudonyms(group, {listed[hkid]})


def test_a_count_of_a_list_of_identifiers_names_every_patient_it_counts(
    group: Group, listed: dict[str, str]
) -> None:
    doctor = make_staff(group.services, Role.PHYSICIAN, [TM])
    numbers = [*listed, _hkid("100004"), f"{HKID_SYSTEM}|{_hkid('100005')}"]
    counted = _get(
        group, doctor, "/fhir/Patient", {"identifier": ",".join(numbers), "_summary": "count"}
    )
    assert counted["total"] == 3
    assert _told_of(group, doctor) == _pseudonyms(group, set(listed.values()))


@pytest.mark.settings(release_budget="nurse=2/100")
def test_counts_by_identifier_stop_at_the_release_budget(
    group: Group, listed: dict[str, str]
) -> None:
    nurse = make_staff(group.services, Role.NURSE, [TM])
    for hkid in list(listed)[:2]:
        assert _get(group, nurse, "/fhir/Patient", {"identifier": hkid, "_count": "0"})["total"]
    third = group.web.get(
        "/fhir/Patient",
        params={"identifier": list(listed)[2], "_summary": "count"},
        headers=nurse.headers,
    )
    assert third.status_code == 429, third.text


def test_a_number_no_one_holds_names_no_one(group: Group, listed: dict[str, str]) -> None:
    doctor = make_staff(group.services, Role.PHYSICIAN, [TM])
    counted = _get(
        group, doctor, "/fhir/Patient", {"identifier": _hkid("100009"), "_summary": "count"}
    )
    assert counted["total"] == 0
    assert _told_of(group, doctor) == set()


def _answer(group: Group, who: Staff, method: str, path: str, patient: str) -> tuple[int, Any]:
    """Status and body of ``path`` about ``patient``, without what the server makes and
    the patient's own record."""
    headers = dict(who.headers)
    body = None
    if method == "POST":
        headers.update({**FHIR_JSON, "If-None-Exist": f"patient={patient}"})
        body = json.dumps(
            {
                "resourceType": "Condition",
                "code": FLU,
                "subject": {"reference": f"Patient/{patient}"},
            }
        )
    response = group.web.request(method, path.format(p=patient), content=body, headers=headers)
    told = _without_made(json.loads(response.text.replace(patient, "P")))
    if "entry" in told:  # the two patients' own records differ, as two people do
        told["entry"] = [e for e in told["entry"] if e["resource"]["resourceType"] != "Patient"]
    return response.status_code, told


HIV_DOORS = [
    ("POST", "/fhir/Condition"),
    ("PUT", "/fhir/Condition?patient={p}"),
    ("DELETE", "/fhir/Condition?patient={p}"),
    ("GET", "/fhir/Condition?patient={p}&_summary=count"),
    ("GET", "/fhir/Condition?patient={p}&_count=1"),
    ("GET", "/fhir/Patient/{p}/$everything?_type=Condition"),
    ("GET", "/fhir/Patient?_id={p}&_revinclude=Condition:subject"),
]


def test_a_pharmacist_tells_no_withheld_diagnosis_from_conditional_writes_or_counts(
    group: Group, api: FhirTestClient
) -> None:
    """Held: Tuen Mun's pharmacist, of two patients with a flu diagnosis each and an HIV
    diagnosis (withheld from her) for one, gets the same answers about both."""
    pharmacist = make_staff(group.services, Role.PHARMACIST, [TM])
    with_hiv, without = group.tm_patient.id, registered_patient(api, TM, "Ng")
    created(api, encounter(without, TM, day=TODAY - timedelta(days=1)))
    for patient, codes in ((with_hiv, (FLU, HIV)), (without, (FLU,))):
        for code in codes:
            created(
                api,
                {
                    "resourceType": "Condition",
                    "code": code,
                    "subject": {"reference": f"Patient/{patient}"},
                },
            )
    for method, path in HIV_DOORS:
        told = _answer(group, pharmacist, method, path, with_hiv)
        assert told == _answer(group, pharmacist, method, path, without), (method, path, told)


def _tuen_mun_patient(hkid: str) -> dict[str, object]:
    """A patient of Tuen Mun's written with the HKID ``hkid``."""
    return {
        "resourceType": "Patient",
        "identifier": [{"system": HKID_SYSTEM, "value": hkid}],
        "name": [{"family": "Lee"}],
        "managingOrganization": {"reference": f"Organization/{TM}"},
    }


def test_a_conditional_create_refused_for_an_unseen_match_names_whom_it_matched(
    group: Group,
) -> None:
    """Tuen Mun's nurse tests Tsuen Wan's patient's HKID with ``If-None-Exist``: the 409
    tells that the number is a patient's of the group, and its entry now names them (their
    access report shows it; the detectors pick it)."""
    nurse = make_staff(group.services, Role.NURSE, [TM])
    hkid = group.tw_patient.hkid
    body = _tuen_mun_patient(hkid)
    headers = {**nurse.headers, **FHIR_JSON, "If-None-Exist": f"identifier={HKID_SYSTEM}|{hkid}"}
    refused = group.web.post("/fhir/Patient", content=json.dumps(body), headers=headers)
    assert refused.status_code == 409, refused.text
    (entry,) = [
        event
        for event in group.events(Tag.FHIR_CREATE)
        if event.principal == f"staff:{nurse.account.username}"
    ]
    assert entry.outcome is Outcome.DENIED
    assert entry.patient_pseudonym == patient_pseudonym(group.services, group.tw_patient.id)


def test_a_patient_written_with_another_clinics_hkid_names_whose_it_is(group: Group) -> None:
    """Tuen Mun's desk writes Tsuen Wan's patient's HKID onto a patient of its own: the
    409 tells that the number is a patient's of the group; besides the refusal naming the
    desk's own record, an entry names the patient who holds it."""
    desk = group.desk_tm
    hkid = group.tw_patient.hkid
    body = _tuen_mun_patient(hkid)
    refused = group.call(desk, "POST", "/fhir/Patient", body)
    assert refused.status_code == 409, refused.text
    named = {
        event.patient_pseudonym
        for event in group.events(Tag.FHIR_CREATE)
        if event.principal == f"staff:{desk.account.username}" and event.outcome is Outcome.DENIED
    }
    assert patient_pseudonym(group.services, group.tw_patient.id) in named
