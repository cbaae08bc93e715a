"""The scope document in other forms: CSV (one line per patient and tier), FHIR (a Group
of the affected patients and a DocumentReference carrying the report) and HTML."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
from collections.abc import Iterator
from typing import Any

from carevault.incidents.model import TIERS

#: Tiers whose patients are "affected" in the FHIR Group (the notifiable ones).
AFFECTED = ("confirmed", "decrypted")
#: The last three were added in integrator round 66 (scripts read the first nine by
#: position): the pseudonym ties a line to its ledger entries, which name the patient so,
#: and ``person`` is what ``counts`` counts.
CSV_COLUMNS = (
    "tier", "patient", "categories", "clinics", "first", "last", "ledger", "evidence",
    "checkpoint", "pseudonym", "person", "patient_record_missing", "registered_at",
    "ended_at",
)  # fmt: skip


def render(document: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(document, indent=2, ensure_ascii=False)
    if fmt == "csv":
        return to_csv(document)
    if fmt == "fhir":
        return json.dumps(to_fhir(document), indent=2, ensure_ascii=False)
    if fmt == "html":
        from carevault.incidents.html import to_html

        return to_html(document)
    raise ValueError(f"unknown format {fmt!r}")


def lines_of(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every line of the document with what it is: its tier, strongest first, then
    ``changed`` (patients whose records a compromised principal wrote), then
    ``registered`` (patients it registered at a clinic or moved to another home)."""
    for tier in TIERS:
        for line in document["tiers"][tier]:
            yield tier, line
    for group in ("changed", "registered"):
        for line in document.get(group) or []:
            yield group, line


def to_csv(document: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for tier, line in lines_of(document):
        writer.writerow(
            [
                tier,
                line["patient"],
                ";".join(line["categories"]),
                ";".join(line["clinics"]),
                line["first"] or "",
                line["last"] or "",
                line["ledger"] or "",
                " ".join(str(seq) for seq in line["evidence"]),
                "" if line["checkpoint"] is None else line["checkpoint"],
                # A ``changed`` line (and a run kept from an earlier build) may lack them.
                line.get("pseudonym") or "",
                line.get("person") or "",
                _flag(line.get("patient_record_missing")),
                # A ``registered`` line's: the clinics it gave the patient to, took them from.
                ";".join(line.get("registered_at") or ()),
                ";".join(line.get("ended_at") or ()),
            ]
        )
    return buffer.getvalue()


def moved(line: dict[str, Any]) -> str:
    """What a ``registered`` line's clinics were given or lost: "registered at X; ended at
    Y" (empty for any other line)."""
    said = [
        f"{what} {', '.join(line[key])}"
        for key, what in (("registered_at", "registered at"), ("ended_at", "ended at"))
        if line.get(key)
    ]
    return "; ".join(said)


def _flag(value: bool | None) -> str:
    return "" if value is None else str(value).lower()


def to_fhir(document: dict[str, Any]) -> dict[str, Any]:
    """A Bundle (collection) of a Group of the affected Patients and a DocumentReference
    of the report itself (the JSON document, with its SHA-1 as FHIR asks)."""
    incident = document["incident"]
    key = f"incident-{incident['id']}"
    members = [
        {"entity": {"reference": f"Patient/{line['patient']}"}}
        for tier in AFFECTED
        for line in document["tiers"][tier]
        if not line.get("patient_record_missing")
    ]
    group = {
        "resourceType": "Group",
        "id": f"{key}-affected",
        "identifier": [{"system": "urn:carevault:incident", "value": str(incident["id"])}],
        "type": "person",
        "actual": True,
        "name": f"Patients affected by incident {incident['id']} (confirmed and decrypted)",
        "quantity": len(members),
        "member": members,
    }
    report = json.dumps(document, ensure_ascii=False, sort_keys=True).encode()
    reference = {
        "resourceType": "DocumentReference",
        "id": f"{key}-scope",
        "status": "current",
        "docStatus": "final",
        "type": {"text": "Incident scope report"},
        "date": incident["generated_at"],
        "description": incident["title"],
        "context": {
            "period": {
                key: value
                for key, value in (("start", incident["since"]), ("end", incident["until"]))
                if value
            },
            "related": [{"reference": f"Group/{group['id']}"}],
        },
        "content": [
            {
                "attachment": {
                    "contentType": "application/json",
                    "data": base64.b64encode(report).decode(),
                    "size": len(report),
                    "hash": base64.b64encode(hashlib.sha1(report).digest()).decode(),  # noqa: S324 - FHIR's Attachment.hash is SHA-1
                    "title": f"Scope of incident {incident['id']}",
                    "creation": incident["generated_at"],
                }
            }
        ],
    }
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": incident["generated_at"],
        "entry": [
            {"fullUrl": f"urn:carevault:{group['id']}", "resource": group},
            {"fullUrl": f"urn:carevault:{reference['id']}", "resource": reference},
        ],
    }
