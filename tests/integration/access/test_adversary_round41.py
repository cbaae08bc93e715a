"""Adversary round 41: a refused write leaves an entry that names no record and no
patient (SQLite and PostgreSQL).

DESIGN.md: "One entry per access decision (allowed or denied) ... what (action, resource
type and id, patient pseudonym ...)". A refused read names its record and patient, in
a transaction too (``rest/test_transaction_refusals.py``). A refused write did not:
``Gate._write`` opened its attempt with the first operation's type alone and never set
the record or the patient on it, so the ``fhir:resource:update`` entry a physician of
one clinic left by ``PUT``ting into another clinic's patient's Observation, on its own
or inside a transaction Bundle, said only "Observation, denied", and the patient's
access report (``ledger/report.py``, by pseudonym) never showed the attempt. The
refusal now names the refused record and its patient.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from carevault.bootstrap import Services
from carevault.ledger.events import Outcome, Tag
from tests.integration.access.group import Group, build_group, observation
from tests.support.client import FhirTestClient


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _attempts(group: Group) -> list[dict[str, Any]]:
    theirs = group.tw_patient
    tampered = {**observation(theirs.id, "HbA1c 5.0 %"), "id": theirs.observation}
    put = {"request": {"method": "PUT", "url": f"Observation/{theirs.observation}"}}
    own = {"request": {"method": "POST", "url": "Observation"}}
    return [
        {"single": tampered},
        {"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": tampered, **put}]},
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {"resource": observation(group.tm_patient.id), **own},
                {"resource": tampered, **put},
            ],
        },
    ]


def test_a_refused_write_into_another_clinics_record_names_the_record_and_its_patient(
    group: Group,
) -> None:
    theirs = group.tw_patient
    pseudonym = group.services.vault.patient_pseudonyms([theirs.id])[theirs.id]
    for attempt in _attempts(group):
        before = len(group.events())
        if "single" in attempt:
            path = f"/fhir/Observation/{theirs.observation}"
            answer = group.call(group.doctor_tm, "PUT", path, attempt["single"])
        else:
            answer = group.call(group.doctor_tm, "POST", "/fhir", attempt)
        assert answer.status_code == 403, answer.text
        denied = [
            event
            for event in group.events()[before:]
            if event.outcome is Outcome.DENIED and event.tag is Tag.FHIR_UPDATE
        ]
        assert denied, "the refusal is in the ledger"
        assert [(e.resource_id, e.patient_pseudonym) for e in denied] == [
            (theirs.observation, pseudonym)
        ]
    # Nothing was written. (The record's code only: "5.0" in its whole text once matched
    # the time it was stamped, ``…T04:23:25.089Z``.)
    stored = group.call(group.doctor_tw, "GET", f"/fhir/Observation/{theirs.observation}")
    assert stored.json()["code"]["text"] == "HbA1c 7.2 %"
