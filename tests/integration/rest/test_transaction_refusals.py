"""A refused read inside a transaction Bundle names whom it was about in the ledger (an
adversary's finding: its entry rolled back with the transaction).

A plain ``GET Patient/X`` refused to a front desk of another clinic is in the ledger as a
denied read naming the record and the patient's pseudonym: what the detectors
(``detect/snoop.observe_picks``, the kin detector: ``Access.attempted``) and the patient's
access report are built on. Wrapped as a GET entry of a transaction, the read runs inside
the write transaction (``rest/transaction._transaction`` -> ``Gate.write(within=...)``),
its own denied entry is rolled back with it, and all that stays is a
``fhir:resource:create`` refusal with no resource, no id and no patient. An insider looks
up a relative at another clinic, a VIP or a decoy, and nothing ties the attempt to them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from carevault.bootstrap import Services
from carevault.ledger.events import Outcome
from tests.integration.access.group import Group, build_group
from tests.support.client import FhirTestClient


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _denied_about(group: Group, before: int, patient_id: str) -> list[str]:
    return [
        str(event.tag)
        for event in group.events()[before:]
        if event.outcome is Outcome.DENIED
        and event.resource_type == "Patient"
        and event.resource_id == patient_id
        and event.patient_pseudonym is not None
    ]


def test_a_plain_refused_read_names_its_patient_in_the_ledger(group: Group) -> None:
    before = len(group.events())
    refused = group.call(group.desk_tm, "GET", f"/fhir/Patient/{group.tw_patient.id}")
    assert refused.status_code == 403
    assert _denied_about(group, before, group.tw_patient.id)


@pytest.mark.parametrize("with_a_readable_entry", [False, True])
def test_a_refused_read_in_a_transaction_still_names_its_patient_in_the_ledger(
    group: Group, with_a_readable_entry: bool
) -> None:
    entries = [{"request": {"method": "GET", "url": f"Patient/{group.tw_patient.id}"}}]
    if with_a_readable_entry:
        entries.insert(0, {"request": {"method": "GET", "url": f"Patient/{group.tm_patient.id}"}})
    before = len(group.events())

    refused = group.call(
        group.desk_tm,
        "POST",
        "/fhir",
        {"resourceType": "Bundle", "type": "transaction", "entry": entries},
    )

    assert refused.status_code == 403, refused.text
    assert _denied_about(group, before, group.tw_patient.id), (
        "the transaction's refused read is in the ledger with no record and no patient"
    )
