"""The export forms of a ledger entry, entry by entry: FHIR R4 AuditEvent (checked by
fhirclient's strict models), RFC 5424 syslog (parsed back, escapes included) and CSV
(read back by the csv module). Each carries the entry's number and leaf hash."""

from __future__ import annotations

import base64
import csv
import io
import json
import re

import pytest

from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.ledger.export import (
    CSV_COLUMNS,
    LEDGER_SYSTEM,
    PSEUDONYM_SYSTEM,
    csv_row,
    export_lines,
    fhir_audit_event,
    syslog_line,
)
from carevault.ledger.verifier import leaf_hash
from tests.support.conformance import check_resource

AT_US = 1_767_225_600_123_456  # 2026-01-01T00:00:00.123456Z

GLASS_READ = AuditEvent(
    tag=Tag.FHIR_READ,
    outcome=Outcome.SUCCESS,
    at_us=AT_US,
    principal="staff:dr.chan",
    role="physician",
    clinic_ids=("clinic-central", "clinic-tsuen-wan"),
    client_id="clinic-app",
    session_id="s-1",
    source_address="203.0.113.7",
    user_agent="EHR/1.0",
    resource_type="Observation",
    resource_id="obs-1",
    patient_pseudonym="p" * 32,
    categories=("clinical", "identity"),
    purpose="ETREAT",
    break_glass_reason="break-the-glass grant",
    reason='unconscious patient; "ER" [bay 3] \\ 急症',
    request_id="5f0c2a9e81d4b7c3",
)
FAILED_SIGN_IN = AuditEvent(
    tag=Tag.AUTH_SIGN_IN_FAILED,
    outcome=Outcome.DENIED,
    at_us=AT_US + 1,
    source_address="198.51.100.9",
    reason="wrong password or code",
)
FAILED_WRITE = AuditEvent(
    tag=Tag.FHIR_CREATE,
    outcome=Outcome.FAILED,
    at_us=AT_US + 2,
    principal="system:loader",
    resource_type="Patient",
    reason="ValidationError",
)
EVENTS = [GLASS_READ, FAILED_SIGN_IN, FAILED_WRITE]


def entries() -> list[tuple[int, bytes]]:
    return [(40 + n, event.canonical()) for n, event in enumerate(EVENTS)]


@pytest.mark.parametrize(("seq", "data"), entries())
def test_every_entry_is_an_r4_audit_event_that_names_its_ledger_leaf(seq: int, data: bytes) -> None:
    resource = fhir_audit_event(seq, data)

    check_resource(resource)
    assert resource["id"] == f"audit-{seq}"
    assert resource["recorded"] == f"2026-01-01T00:00:00.{123_456 + seq - 40}Z"
    ledger = resource["entity"][-1]
    assert ledger["what"]["identifier"] == {"system": LEDGER_SYSTEM, "value": str(seq)}
    leaf, canonical = ledger["detail"]
    assert leaf == {"type": "leaf-hash", "valueString": leaf_hash(data).hex()}
    assert base64.b64decode(canonical["valueBase64Binary"]) == data


def test_a_break_the_glass_read_says_who_why_and_what() -> None:
    resource = fhir_audit_event(40, GLASS_READ.canonical())

    assert resource["type"]["code"] == "rest" and resource["action"] == "R"
    assert resource["outcome"] == "0"
    (agent,) = resource["agent"]
    assert agent["who"]["identifier"]["value"] == "staff:dr.chan"
    assert agent["altId"] == "clinic-app"
    assert agent["network"] == {"address": "203.0.113.7", "type": "2"}
    assert agent["location"] == {"display": "clinic-central, clinic-tsuen-wan"}
    assert agent["purposeOfUse"][0]["coding"][0]["code"] == "ETREAT"
    record, patient, transaction, _ = resource["entity"]
    assert transaction["what"]["identifier"] == {"value": "5f0c2a9e81d4b7c3"}
    assert record["what"] == {"reference": "Observation/obs-1"}
    assert record["detail"] == [{"type": "categories", "valueString": "clinical,identity"}]
    assert patient["what"]["identifier"] == {"system": PSEUDONYM_SYSTEM, "value": "p" * 32}
    assert resource["outcomeDesc"] == GLASS_READ.reason


def test_security_events_are_typed_by_their_source_not_as_rest() -> None:
    denied = fhir_audit_event(41, FAILED_SIGN_IN.canonical())
    failed = fhir_audit_event(42, FAILED_WRITE.canonical())

    assert denied["type"] == {
        "system": LEDGER_SYSTEM,
        "code": "auth:session",
        "display": "auth:session",
    }
    assert "action" not in denied and denied["outcome"] == "4"
    assert [entity["what"]["identifier"]["system"] for entity in denied["entity"]] == [
        LEDGER_SYSTEM
    ]
    assert (failed["action"], failed["outcome"]) == ("C", "8")


SYSLOG = re.compile(
    r"^<(?P<pri>\d+)>1 (?P<time>\S+) (?P<host>\S+) (?P<app>\S+) - (?P<msgid>\S+) "
    r"\[carevault@32473(?P<params>(?: [a-z]+=\"(?:[^\"\\\]]|\\.)*\")+)\] \ufeff(?P<msg>.*)$"
)
PARAM = re.compile(r' ([a-z]+)="((?:[^"\\\]]|\\.)*)"')


def _parse_syslog(line: str) -> tuple[dict[str, str], dict[str, str]]:
    match = SYSLOG.match(line)
    assert match, line
    params = {
        name: re.sub(r"\\(.)", r"\1", value) for name, value in PARAM.findall(match["params"])
    }
    return match.groupdict(), params


@pytest.mark.parametrize(
    ("event", "severity"),
    [(GLASS_READ, 6), (FAILED_SIGN_IN, 4), (FAILED_WRITE, 3)],
    ids=["success-info", "denied-warning", "failed-error"],
)
def test_syslog_lines_are_rfc5424_with_every_value_escaped(
    event: AuditEvent, severity: int
) -> None:
    data = event.canonical()
    header, params = _parse_syslog(syslog_line(7, data, hostname="cv-1"))

    assert int(header["pri"]) == 10 * 8 + severity  # authpriv
    assert header["time"] == f"2026-01-01T00:00:00.{123_456 + event.at_us - AT_US}Z"
    assert (header["host"], header["app"]) == ("cv-1", "carevault")
    assert header["msgid"] == event.tag.value.split(":")[-1]
    assert header["msg"] == event.reason
    assert params["seq"] == "7" and params["leaf"] == leaf_hash(data).hex()
    assert params["tag"] == event.tag.value and params["outcome"] == event.outcome.value
    assert "user_agent" not in params  # what a SIEM does not need stays in the ledger


def test_syslog_structured_data_round_trips_quotes_brackets_and_backslashes() -> None:
    tricky = AuditEvent(
        tag=Tag.ADMIN_STAFF_ADDED,
        outcome=Outcome.SUCCESS,
        at_us=AT_US,
        principal='os:ad"min]\\x',
        role="privacy_officer",
    )
    _, params = _parse_syslog(syslog_line(3, tricky.canonical()))

    assert params["principal"] == 'os:ad"min]\\x'
    assert params["role"] == "privacy_officer"


def test_csv_has_a_header_and_one_row_per_entry_that_reads_back() -> None:
    lines = list(export_lines(entries(), "csv"))

    rows = list(csv.reader(io.StringIO("\n".join(lines))))
    assert rows[0] == list(CSV_COLUMNS)
    assert rows[1:] == [csv_row(seq, data) for seq, data in entries()]
    glass = dict(zip(CSV_COLUMNS, rows[1], strict=True))
    assert glass["clinics"] == "clinic-central clinic-tsuen-wan"
    assert glass["reason"] == GLASS_READ.reason
    assert glass["break_glass_reason"] == "break-the-glass grant"
    assert glass["request_id"] == "5f0c2a9e81d4b7c3"
    assert dict(zip(CSV_COLUMNS, rows[2], strict=True))["request_id"] == ""


def test_the_request_id_is_in_every_form() -> None:
    data = GLASS_READ.canonical()
    _, params = _parse_syslog(syslog_line(1, data))
    assert params["request"] == "5f0c2a9e81d4b7c3"
    resource = fhir_audit_event(1, data)
    transaction = [
        entity
        for entity in resource["entity"]
        if entity.get("type", {}).get("code") == "XrequestId"
    ]
    assert [entity["what"]["identifier"]["value"] for entity in transaction] == ["5f0c2a9e81d4b7c3"]
    assert AuditEvent.from_canonical(data).request_id == "5f0c2a9e81d4b7c3"
    # An entry written before the field was kept reads back without one.
    assert AuditEvent.from_canonical(FAILED_SIGN_IN.canonical()).request_id is None


def test_ndjson_is_one_compact_audit_event_per_line_and_unknown_formats_are_refused() -> None:
    lines = list(export_lines(entries(), "fhir-ndjson"))

    assert len(lines) == len(EVENTS)
    assert all(
        "\n" not in line and line.startswith('{"resourceType":"AuditEvent"') for line in lines
    )
    assert "急症" in lines[0]  # UTF-8, not \\u escapes
    with pytest.raises(ValueError, match="unknown export format 'xml'"):
        list(export_lines(entries(), "xml"))


def _as_newer_build_writes(event: AuditEvent, **changes: object) -> bytes:
    """``event``'s entry with ``changes``, in the canonical form (as a newer build)."""
    document = {**json.loads(event.canonical()), **changes}
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def test_an_entry_a_newer_build_wrote_exports_in_every_form_saying_what_was_not_read() -> None:
    data = _as_newer_build_writes(GLASS_READ, v=2, ward="4B", consent={"ref": "Consent/7"})

    resource = fhir_audit_event(9, data)
    check_resource(resource)
    assert resource["outcome"] == "0" and resource["subtype"][0]["code"] == "fhir:resource:read"
    assert resource["entity"][-1]["detail"] == [
        {"type": "leaf-hash", "valueString": leaf_hash(data).hex()},
        {"type": "canonical-entry", "valueBase64Binary": base64.b64encode(data).decode()},
        {"type": "format-version", "valueString": "2"},
        {"type": "unknown-fields", "valueString": "consent,ward"},
    ]

    header, params = _parse_syslog(syslog_line(9, data))
    assert int(header["pri"]) == 10 * 8 + 6
    assert params["leaf"] == leaf_hash(data).hex()
    assert (params["format"], params["unknown"]) == ("2", "consent,ward")

    lines = list(export_lines([(8, GLASS_READ.canonical()), (9, data)], "csv"))
    current, newer = (
        dict(zip(CSV_COLUMNS, row, strict=True))
        for row in csv.reader(io.StringIO("\n".join(lines[1:])))
    )
    assert (newer["format_version"], newer["unknown_fields"]) == ("2", "consent,ward")
    assert (newer["tag"], newer["leaf_hash"]) == ("fhir:resource:read", leaf_hash(data).hex())
    assert (current["format_version"], current["unknown_fields"]) == ("", "")
    _, params = _parse_syslog(syslog_line(8, GLASS_READ.canonical()))
    assert "format" not in params and "unknown" not in params


def test_a_tag_and_outcome_this_build_does_not_know_are_exported_as_written_not_mapped() -> None:
    data = _as_newer_build_writes(FAILED_WRITE, tag="fhir:resource:patch", outcome="partial")

    resource = fhir_audit_event(5, data)
    check_resource(resource)
    assert "outcome" not in resource  # no code would state "partial" truly
    assert resource["subtype"] == [{"system": LEDGER_SYSTEM, "code": "fhir:resource:patch"}]
    assert resource["type"]["code"] == "fhir:resource" and "action" not in resource

    header, params = _parse_syslog(syslog_line(5, data))
    assert int(header["pri"]) == 10 * 8 + 4  # a warning: looked at, not filed as routine
    assert (params["tag"], params["outcome"]) == ("fhir:resource:patch", "partial")
    assert header["msgid"] == "patch"

    row = dict(zip(CSV_COLUMNS, csv_row(5, data), strict=True))
    assert (row["tag"], row["outcome"]) == ("fhir:resource:patch", "partial")
    assert (row["format_version"], row["unknown_fields"]) == ("", "")
