"""``carevault audit export``: FHIR AuditEvent NDJSON that strict R4 models accept,
RFC 5424 syslog lines a SIEM can parse, and CSV with a header."""

from __future__ import annotations

import csv
import io
import json
import re

from carevault.bootstrap import Services
from carevault.ledger.verifier import leaf_hash
from tests.support.client import FhirTestClient
from tests.support.conformance import check_body
from tests.support.server import environment, invoke_cli

SYSLOG = re.compile(
    r"^<(?P<pri>\d{1,3})>1 (?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) \S+ carevault - "
    r"(?P<msgid>\S{1,32}) \[carevault@32473( [a-z]+=\"(?:[^\"\\\]]|\\.)*\")+\] \ufeff.*$"
)


def test_every_export_format(api: FhirTestClient, services: Services) -> None:
    created = api.post_json(
        "/fhir/Patient", {"resourceType": "Patient", "name": [{"family": "Export"}]}
    ).json()
    api.get(f"/fhir/Patient/{created['id']}")
    api.get("/fhir/Patient/unknown-id")
    env = environment(services.settings.home, services.settings.database_url)
    entries = list(services.audit_ledger.store.entries())

    ndjson = invoke_cli(env, "audit", "export", "--format", "fhir-ndjson")
    assert ndjson.returncode == 0, ndjson.stderr
    lines = ndjson.stdout.splitlines()
    assert len(lines) == len(entries) >= 3
    for (seq, data), line in zip(entries, lines, strict=True):
        check_body("application/fhir+json", line.encode())
        event = json.loads(line)
        assert event["resourceType"] == "AuditEvent" and event["id"] == f"audit-{seq}"
        ledger_entity = event["entity"][-1]
        assert ledger_entity["detail"][0]["valueString"] == leaf_hash(data).hex()
    outcomes = [json.loads(line)["outcome"] for line in lines]
    assert "0" in outcomes and "8" in outcomes  # the unknown id failed

    syslog = invoke_cli(env, "audit", "export", "--format", "syslog")
    assert syslog.returncode == 0, syslog.stderr
    for line in syslog.stdout.splitlines():
        match = SYSLOG.match(line)
        assert match, line
        assert int(match["pri"]) // 8 == 10  # authpriv

    table = invoke_cli(env, "audit", "export", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(table.stdout)))
    assert len(rows) == len(entries)
    assert rows[-1]["tag"] == "fhir:resource:read" and rows[-1]["outcome"] == "failed"

    refused = invoke_cli(env, "audit", "export", "--format", "xml")
    assert refused.returncode == 2
