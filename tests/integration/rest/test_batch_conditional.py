"""A batch entry's ``request.ifNoneExist`` is honoured as If-None-Exist is (an
adversary's finding: it was dropped).

``POST /fhir/Patient`` with If-None-Exist naming an HKID held at another clinic is
refused (409, counted as a failed registration, throttled: Gate.refuse_unseen_matches),
and so is the same conditional create inside a transaction Bundle. In a *batch* Bundle
``rest/transaction._batch_entry`` never looks at ``ifNoneExist``: the entry is written
unconditionally, so a desk splits another clinic's patient into a second record (the
harm the refusal exists to prevent), past the throttle and with no refusal in the
ledger; and a client that sends a conditional create to dedupe gets duplicates.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from carevault.bootstrap import Services
from tests.integration.access.group import HKID_SYSTEM, TM, Group, build_group
from tests.support.client import FhirTestClient


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _conditional_create(kind: str, hkid: str) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": kind,
        "entry": [
            {
                "request": {
                    "method": "POST",
                    "url": "Patient",
                    "ifNoneExist": f"identifier={HKID_SYSTEM}|{hkid}",
                },
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [{"system": HKID_SYSTEM, "value": hkid}],
                    "name": [{"family": "Lee"}],
                    "managingOrganization": {"reference": f"Organization/{TM}"},
                },
            }
        ],
    }


def _patients_with(group: Group, hkid: str) -> int:
    found = group.web.get(
        "/fhir/Patient",
        params={"identifier": f"{HKID_SYSTEM}|{hkid}"},
        headers=group.desk_tm.headers,
    )
    assert found.status_code == 200, found.text
    # Counted from the page: a search by identifier of a role that may not read
    # government ids has no total (rest/test_identifier_paging.py).
    return len(found.json().get("entry", []))


def test_a_transactions_conditional_create_of_a_hidden_hkid_is_refused(group: Group) -> None:
    hkid = group.tw_patient.hkid
    answer = group.call(group.desk_tm, "POST", "/fhir", _conditional_create("transaction", hkid))
    assert answer.status_code == 409, answer.text
    assert _patients_with(group, hkid) == 0


def test_a_batchs_conditional_create_of_a_hidden_hkid_is_refused_too(group: Group) -> None:
    hkid = group.tw_patient.hkid
    answer = group.call(group.desk_tm, "POST", "/fhir", _conditional_create("batch", hkid))
    assert answer.status_code == 200, answer.text
    [entry] = answer.json()["entry"]
    assert entry["response"]["status"].startswith("409"), entry
    assert _patients_with(group, hkid) == 0, "the batch made a second record of the patient"


def test_a_batchs_conditional_create_finds_the_existing_record(group: Group) -> None:
    """Plain FHIR semantics: a visible match is returned, not duplicated."""
    hkid = group.tm_patient.hkid
    answer = group.call(group.desk_tm, "POST", "/fhir", _conditional_create("batch", hkid))
    assert answer.status_code == 200, answer.text
    [entry] = answer.json()["entry"]
    assert entry["response"]["status"].startswith("200"), entry
    assert _patients_with(group, hkid) == 1


def test_if_none_exist_with_summary_count_still_finds_the_existing_record(
    group: Group,
) -> None:
    """``FhirInteractions.matching`` parses If-None-Exist as a search, result
    parameters and all: with ``_summary=count`` the search returns no items, the visible
    match is taken for none, and a second record of the patient is created (201)."""
    hkid = group.tm_patient.hkid
    answer = group.web.post(
        "/fhir/Patient",
        content=(
            '{"resourceType":"Patient","name":[{"family":"Chan"}],'
            '"managingOrganization":{"reference":"Organization/clinic-tm"}}'
        ),
        headers={
            **group.desk_tm.headers,
            "content-type": "application/fhir+json",
            "if-none-exist": f"identifier={HKID_SYSTEM}|{hkid}&_summary=count",
        },
    )
    assert answer.status_code in (200, 400), answer.text
    assert _patients_with(group, hkid) == 1
