"""The scope's counts and its other forms: people counted once per tier, the FHIR form
valid R4 (fhirclient's strict models), the HTML self-contained, every text escaped."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC
from typing import Any

from fhirclient.models.documentreference import DocumentReference
from fhirclient.models.group import Group

from carevault.incidents.report import render, to_csv
from carevault.incidents.scope import TIERS, counts
from carevault.incidents.segments import merkle_root
from carevault.ledger.verifier import leaf_hash, node_hash


def _line(patient: str, categories: list[str], clinics: list[str], day: str) -> dict[str, Any]:
    return {"patient": patient, "categories": categories, "clinics": clinics,
            "first": f"{day}T10:00:00.000Z", "last": f"{day}T11:00:00.000Z",
            "evidence": [3, 9], "ledger": "audit", "checkpoint": 12}  # fmt: skip


def _document() -> dict[str, Any]:
    tiers: dict[str, list[dict[str, Any]]] = {tier: [] for tier in TIERS}
    tiers["confirmed"] = [
        _line("p1", ["clinical", "identity"], ["clinic-tm"], "2026-01-01"),
        _line("p2", ["identity"], ["clinic-tm", "clinic-tw"], "2026-01-02"),
    ]
    tiers["at_rest_only"] = [{**_line("p3", ["identity"], ["clinic-tw"], "2026-01-02"),
                              "first": None, "last": None, "evidence": [], "ledger": None,
                              "checkpoint": None}]  # fmt: skip
    incident = {"id": 4, "title": "<script>alert(1)</script>", "status": "open",
                "declared_at": "2026-01-03T00:00:00.000Z", "since": "2026-01-01T00:00:00.000Z",
                "until": None, "generated_at": "2026-01-03T00:00:00.000Z", "engine": "duckdb",
                "compromised": {"accounts": ["a"], "database": True},
                "checkpoints": {"audit": {"size": 12, "root": "00", "note": "origin\n12\n"}},
                "changes": {"first_run": False, "confirmed": {
                    "added": ["p2"], "removed": [], "categories_changed": {}}}}  # fmt: skip
    changed = [_line("p4", ["contact"], ["clinic-tw"], "2026-01-02")]
    return {"incident": incident, "tiers": tiers, "changed": changed, "counts": counts(tiers, UTC)}


def test_counts_by_tier_category_clinic_and_day() -> None:
    found = _document()["counts"]
    assert found["people"] == {"confirmed": 2, "decrypted": 0, "at_rest_only": 1,
                               "potentially": 0, "total": 3}  # fmt: skip
    assert found["notifiable"] == 2
    assert found["by_category"]["confirmed"] == {"clinical": 1, "identity": 2}
    assert found["by_clinic"]["confirmed"] == {"clinic-tm": 2, "clinic-tw": 1}
    assert found["by_day"]["confirmed"] == {"2026-01-01": 1, "2026-01-02": 1}
    assert found["by_day"]["at_rest_only"] == {}


def test_the_fhir_form_is_a_group_and_a_document_reference_of_the_report() -> None:
    document = _document()
    bundle = json.loads(render(document, "fhir"))
    group, reference = (entry["resource"] for entry in bundle["entry"])
    Group(group, strict=True)
    DocumentReference(reference, strict=True)
    assert [m["entity"]["reference"] for m in group["member"]] == ["Patient/p1", "Patient/p2"]
    attachment = reference["content"][0]["attachment"]
    report = base64.b64decode(attachment["data"])
    assert json.loads(report) == document
    assert base64.b64decode(attachment["hash"]) == hashlib.sha1(report).digest()  # noqa: S324


def test_the_html_is_self_contained_and_escapes_every_text() -> None:
    html = render(_document(), "html")
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert html.count("<svg") == 3
    assert "1 added" in html
    assert "<h2>Records changed</h2>" in html and "<td>changed</td><td>p4</td>" in html


def test_csv_has_a_line_per_patient_and_tier() -> None:
    lines = to_csv(_document()).splitlines()
    assert lines[0] == (
        "tier,patient,categories,clinics,first,last,ledger,evidence,checkpoint,"
        "pseudonym,person,patient_record_missing,registered_at,ended_at"
    )
    assert lines[1].startswith("confirmed,p1,clinical;identity,clinic-tm,")
    assert lines[3].startswith("at_rest_only,p3,identity,clinic-tw,,,,,")
    assert lines[4] == ",".join(
        ["changed", "p4", "contact", "clinic-tw", "2026-01-02T10:00:00.000Z",
         "2026-01-02T11:00:00.000Z", "audit", "3 9", "12", "", "", "", "", ""]
    )  # fmt: skip


def test_segment_root_is_the_rfc_6962_root() -> None:
    leaves = [leaf_hash(bytes([n])) for n in range(4)]
    expected = node_hash(node_hash(leaves[0], leaves[1]), node_hash(leaves[2], leaves[3]))
    assert merkle_root(leaves) == expected
