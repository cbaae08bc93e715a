"""A transaction's GET entries run while it holds the audit ledger and the record writes,
and every other request waits for them (adversary round 84: one desk's transaction of a
POST and 499 searches held every clinician's read 12-19 s on PostgreSQL, then 503; on
SQLite 3-5 s). They may run ``CAREVAULT_MAX_TRANSACTION_READ_SECONDS`` (2 s) at most:
past it the transaction is refused whole (400 ``too-costly``), nothing written."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.rest.test_interactions import create, patient
from tests.support.client import FhirTestClient


def _bundle(someone: str, reads: int) -> dict[str, Any]:
    new = {"resourceType": "Observation", "status": "final", "code": {"text": "pulse"},
           "subject": {"reference": f"Patient/{someone}"}}  # fmt: skip
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": "urn:uuid:0b0c6f0e-1a9e-4a52-9f35-6f4f3a1d2c11",
            "resource": new,
            "request": {"method": "POST", "url": "Observation"},
        },  # fmt: skip
    ]
    entries += [
        {"request": {"method": "GET", "url": f"Observation?subject=Patient/{someone}"}}
        for _ in range(reads)
    ]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _observations(api: FhirTestClient, someone: str) -> int:
    return int(
        api.get(f"/fhir/Observation?subject=Patient/{someone}&_summary=count").json()["total"]
    )


@pytest.mark.settings(max_transaction_read_seconds=0.000001)
def test_a_transaction_whose_reads_run_too_long_is_refused_whole(api: FhirTestClient) -> None:
    someone = create(api, patient())["id"]
    refused = api.post_json("/fhir", _bundle(someone, 3))
    assert refused.status_code == 400, refused.text
    [issue] = refused.json()["issue"]
    assert issue["code"] == "too-costly" and issue["expression"] == ["Bundle.entry[2]"]
    assert "send the reads in a batch" in issue["diagnostics"]
    assert _observations(api, someone) == 0  # the POST rolled back with it
    # One read is always allowed (the bound is between reads), and a batch is not held.
    assert api.post_json("/fhir", _bundle(someone, 1)).status_code == 200
    batch = {**_bundle(someone, 3), "type": "batch"}
    batch["entry"][0].pop("fullUrl")
    assert api.post_json("/fhir", batch).status_code == 200
    assert _observations(api, someone) == 2


def test_guard_a_transactions_few_reads_run_within_the_default_bound(api: FhirTestClient) -> None:
    someone = create(api, patient())["id"]
    answered = api.post_json("/fhir", _bundle(someone, 5))
    assert answered.status_code == 200, answered.text
    statuses = [entry["response"]["status"] for entry in answered.json()["entry"]]
    assert statuses[0].startswith("201") and statuses[1:] == ["200 OK"] * 5
