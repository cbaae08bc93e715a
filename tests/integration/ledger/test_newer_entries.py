"""A ledger shared with a newer build (a rolling upgrade, or a restored backup read by an
older binary) holds entries with fields, tags and a format version this build does not
know: verification, the patient's access report with its proofs, and every export form
still work over it, on SQLite and on PostgreSQL."""

from __future__ import annotations

import base64
import csv
import io
import json
from typing import Any

from carevault.bootstrap import Services
from carevault.db import write_transaction
from carevault.ledger.audit import access_report
from carevault.ledger.events import AuditEvent, Unrecognised
from carevault.ledger.export import CSV_COLUMNS, export_lines
from carevault.ledger.store import LedgerEntry
from carevault.ledger.verifier import leaf_hash, verify_inclusion
from carevault.web.audit_routes import describe_principal
from tests.support.client import FhirTestClient
from tests.support.conformance import check_body


def canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def append_as_a_newer_build(services: Services, entries: list[dict[str, Any]]) -> list[int]:
    """Append entries through the store's append path, bytes as a newer build makes them;
    their positions."""
    rows = [
        LedgerEntry(
            entry["at_us"], canonical(entry), entry.get("patient_pseudonym"), entry["principal"]
        )
        for entry in entries
    ]
    with write_transaction(services.engine) as connection:
        first, _ = services.audit_ledger.store.append(connection, rows)
    return list(range(first, first + len(rows)))


def test_a_ledger_holding_a_newer_builds_entries_verifies_reports_and_exports(
    api: FhirTestClient, services: Services
) -> None:
    created = api.post_json(
        "/fhir/Patient", {"resourceType": "Patient", "name": [{"family": "Newer"}]}
    ).json()
    api.get(f"/fhir/Patient/{created['id']}")
    pseudonym = services.vault.patient_pseudonyms([created["id"]])[created["id"]]
    at_us = services.now_us()
    who = {"principal": "staff:dr.lam", "role": "physician", "patient_pseudonym": pseudonym}
    written = [
        # A read with fields added after this build.
        {
            "tag": "fhir:resource:read",
            "outcome": "success",
            "at_us": at_us,
            **who,
            "resource_type": "Patient",
            "resource_id": created["id"],
            "v": 1,
            "ward": "4B",
            "consent": {"ref": "Consent/7"},
        },
        # A word and a format version this build does not know.
        {
            "tag": "fhir:resource:patch",
            "outcome": "partial",
            "at_us": at_us + 1,
            **who,
            "resource_type": "Patient",
            "resource_id": created["id"],
            "v": 2,
        },
    ]
    positions = append_as_a_newer_build(services, written)
    api.get(f"/fhir/Patient/{created['id']}")  # and this build writes on after them

    checkpoint = services.audit_ledger.checkpoints.make("test")
    report = services.audit_ledger.verify()
    assert report.ok, report.problems
    assert report.entries == checkpoint.size > positions[-1]

    found = access_report(
        services.audit_ledger, pseudonym, checkpoint, describe_principal(services)
    )
    lines = {line["seq"]: line for line in found["accesses"]}
    assert set(positions) < set(lines)  # the unknown action is shown, as written
    assert [lines[seq]["action"] for seq in positions] == [
        "fhir:resource:read",
        "fhir:resource:patch",
    ]
    assert lines[positions[1]]["outcome"] == "partial"
    for seq, document in zip(positions, written, strict=True):
        data = base64.b64decode(lines[seq]["entry"])
        assert data == canonical(document)  # the stored bytes, not a re-encoding
        proof = [base64.b64decode(item) for item in lines[seq]["proof"]]
        verify_inclusion(leaf_hash(data), seq, checkpoint.size, proof, checkpoint.root)

    entries = list(services.audit_ledger.store.entries())
    events = [AuditEvent.from_canonical(data) for _, data in entries]
    assert events[positions[0]].unknown == {"ward": "4B", "consent": {"ref": "Consent/7"}}
    assert isinstance(events[positions[1]].tag, Unrecognised)
    ndjson = list(export_lines(entries, "fhir-ndjson"))
    for seq in positions:
        check_body("application/fhir+json", ndjson[seq].encode())
    details = json.loads(ndjson[positions[1]])["entity"][-1]["detail"]
    assert {"type": "format-version", "valueString": "2"} in details
    assert len(list(export_lines(entries, "syslog"))) == len(entries)
    rows = list(csv.reader(io.StringIO("\n".join(export_lines(entries, "csv")))))[1:]
    assert len(rows) == len(entries)
    newer = dict(zip(CSV_COLUMNS, rows[positions[0]], strict=True))
    assert (newer["unknown_fields"], newer["leaf_hash"]) == (
        "consent,ward",
        leaf_hash(canonical(written[0])).hex(),
    )
