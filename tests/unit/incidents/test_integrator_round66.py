"""Integrator round 66: the SOC loads `incident scope --format csv` into pandas beside the
JSON. The ledger entries behind a line name its patient by pseudonym, and people are
counted by `person` (one HKID, several records): the CSV carried neither, so its lines
could not be tied to their evidence nor counted as the JSON's `counts` count them. The
columns are added at the end; the first nine are as they were."""

from __future__ import annotations

import csv
import io
from datetime import UTC
from typing import Any

from carevault.incidents.report import to_csv
from carevault.incidents.scope import TIERS, counts

FIRST_NINE = "tier,patient,categories,clinics,first,last,ledger,evidence,checkpoint"


def _line(patient: str, pseudonym: str, person: str, *, missing: bool = False) -> dict[str, Any]:
    return {"patient": patient, "pseudonym": pseudonym, "patient_record_missing": missing,
            "categories": ["identity"], "clinics": ["clinic-tm"],
            "first": "2026-12-06T05:55:42.449Z", "last": "2026-12-06T05:55:42.497Z",
            "evidence": [332, 367], "ledger": "audit", "checkpoint": 476,
            "person": person}  # fmt: skip


def test_the_csv_names_each_lines_pseudonym_and_person_as_the_json_does() -> None:
    tiers: dict[str, list[dict[str, Any]]] = {tier: [] for tier in TIERS}
    tiers["confirmed"] = [
        _line("p1", "f7c244f594bf2c144311254f6f4ce62f", "p1"),
        _line("p2", "901181815152f9107c096fa715d5198c", "p1"),  # the same HKID as p1
        _line("9964bbd5ba0671c6", "9964bbd5ba0671c6", "9964bbd5ba0671c6", missing=True),
    ]
    document = {"incident": {"id": 1}, "tiers": tiers, "changed": [],
                "counts": counts(tiers, UTC)}  # fmt: skip

    text = to_csv(document)
    assert text.splitlines()[0].startswith(FIRST_NINE + ",")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(row["patient"], row["pseudonym"], row["person"]) for row in rows] == [
        (line["patient"], line["pseudonym"], line["person"]) for line in tiers["confirmed"]
    ]
    assert [row["patient_record_missing"] for row in rows] == ["false", "false", "true"]
    people = {row["person"] for row in rows if row["tier"] == "confirmed"}
    assert len(people) == document["counts"]["people"]["confirmed"] == 2
