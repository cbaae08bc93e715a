"""Reading ledger entries forward-compatibly: an entry a newer build wrote (a field, a
tag or an outcome this build does not know, a higher format version) reads and keeps
what this build does not know; an entry that is not an audit event fails, and says
where and why without quoting the entry."""

from __future__ import annotations

import json
from typing import Any

import pytest

from carevault.ledger.events import (
    FORMAT_VERSION,
    AuditEvent,
    MalformedEntry,
    Outcome,
    Tag,
    Unrecognised,
)

PSEUDONYM = "c0ffee" * 5 + "ab"
READ = AuditEvent(
    tag=Tag.FHIR_READ,
    outcome=Outcome.SUCCESS,
    at_us=1_767_225_600_000_000,
    principal="staff:dr.wong",
    role="physician",
    clinic_ids=("clinic-central",),
    source_address="203.0.113.7",
    resource_type="Observation",
    resource_id="obs-1",
    patient_pseudonym=PSEUDONYM,
    categories=("clinical",),
    reason="care relationship",
    detail={"elements": 3},
    request_id="5f0c2a9e81d4b7c3",
)


def newer(event: AuditEvent = READ, **changes: Any) -> bytes:
    """``event``'s entry as a newer build writes it: ``changes`` set (None removes a key),
    in the canonical form (sorted keys, compact, UTF-8)."""
    document = json.loads(event.canonical())
    for name, value in changes.items():
        if value is None:
            document.pop(name, None)
        else:
            document[name] = value
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def test_an_entry_with_fields_this_build_does_not_know_reads_and_keeps_them() -> None:
    data = newer(ward="4B", consent={"ref": "Consent/7", "scope": ["treatment"]})

    event = AuditEvent.from_canonical(data)

    assert event == READ  # what this build knows, as it knows it
    assert event.unknown == {"ward": "4B", "consent": {"ref": "Consent/7", "scope": ["treatment"]}}
    assert event.format_version == FORMAT_VERSION
    assert not event.fully_understood


def test_an_event_read_from_a_newer_entry_is_never_re_encoded() -> None:
    """Its canonical form could only differ from the stored bytes (which the ledger's
    hashes commit to) or vouch for fields this build does not know: it is refused."""
    for data in (
        newer(ward="4B"),
        newer(v=FORMAT_VERSION + 1),
        newer(tag="fhir:resource:patch"),
        newer(outcome="partial"),
    ):
        with pytest.raises(ValueError, match="use the entry's stored bytes"):
            AuditEvent.from_canonical(data).canonical()
    # An entry this build wrote still reads back to its exact bytes.
    data = READ.canonical()
    assert AuditEvent.from_canonical(data).canonical() == data


def test_an_entry_of_a_higher_format_version_reads_and_says_its_version() -> None:
    event = AuditEvent.from_canonical(newer(v=FORMAT_VERSION + 1))

    assert event.format_version == FORMAT_VERSION + 1
    assert event == READ
    assert not event.fully_understood
    assert AuditEvent.from_canonical(READ.canonical()).fully_understood


def test_a_tag_and_an_outcome_this_build_does_not_know_are_kept_as_written() -> None:
    event = AuditEvent.from_canonical(newer(tag="fhir:resource:patch", outcome="partial"))

    assert isinstance(event.tag, Unrecognised) and not isinstance(event.tag, Tag)
    assert isinstance(event.outcome, Unrecognised) and not isinstance(event.outcome, Outcome)
    assert (event.tag.value, event.outcome.value) == ("fhir:resource:patch", "partial")
    assert event.tag == "fhir:resource:patch"
    assert event.tag not in set(Tag) and event.outcome not in set(Outcome)
    assert repr(event.outcome) == "Unrecognised('partial')"
    assert (event.at_us, event.patient_pseudonym) == (READ.at_us, PSEUDONYM)
    # A word this build knows is still its member.
    assert AuditEvent.from_canonical(READ.canonical()).tag is Tag.FHIR_READ


MALFORMED = [
    pytest.param(b'{"tag":"fhir:resource:read",', "ledger entry 12 is not JSON", id="truncated"),
    pytest.param(
        b'{"patient_pseudonym":"\xff' + PSEUDONYM.encode() + b'"}',
        "ledger entry 12 is not JSON",
        id="not-utf8",
    ),
    pytest.param(
        json.dumps([PSEUDONYM]).encode(), "ledger entry 12 is not a JSON object", id="array"
    ),
    pytest.param(newer(tag=None), "ledger entry 12 has no 'tag'", id="no-tag"),
    pytest.param(
        newer(outcome=None, at_us=None), "ledger entry 12 has no 'outcome', 'at_us'", id="none"
    ),
    pytest.param(
        newer(at_us=str(READ.at_us)),
        "ledger entry 12: 'at_us' is a string, not an integer",
        id="at-us-text",
    ),
    pytest.param(newer(at_us=True), "'at_us' is a boolean, not an integer", id="at-us-bool"),
    pytest.param(newer(tag=7), "'tag' is a number, not a string", id="tag-number"),
    pytest.param(newer(outcome=["success"]), "'outcome' is an array, not a string", id="outcome"),
    pytest.param(
        newer(patient_pseudonym={"p": PSEUDONYM}),
        "'patient_pseudonym' is an object, not a string",
        id="pseudonym-object",
    ),
    pytest.param(
        newer(clinic_ids="clinic-central"),
        "'clinic_ids' is a string, not an array of strings",
        id="clinics-text",
    ),
    pytest.param(
        newer(categories=["clinical", 3]),
        "'categories' is an array, not an array of strings",
        id="categories-mixed",
    ),
    pytest.param(newer(detail=[PSEUDONYM]), "'detail' is an array, not an object", id="detail"),
    pytest.param(newer(reason=0), "'reason' is a number, not a string", id="reason"),
    pytest.param(newer(v="2"), "'v' is not a format version", id="version-text"),
    pytest.param(newer(v=0), "'v' is not a format version", id="version-zero"),
]


@pytest.mark.parametrize(("data", "message"), MALFORMED)
def test_an_entry_that_is_not_an_audit_event_fails_without_quoting_it(
    data: bytes, message: str
) -> None:
    with pytest.raises(MalformedEntry) as raised:
        AuditEvent.from_canonical(data, seq=12)

    assert message in str(raised.value)
    # Nor does an error it was raised from carry the entry (a JSONDecodeError holds the
    # whole document), for a logger or error reporter that walks the chain.
    chain: list[BaseException] = []
    error: BaseException | None = raised.value
    while error is not None:
        chain.append(error)
        error = error.__cause__ or error.__context__
    for error in chain:
        assert not hasattr(error, "doc") and not hasattr(error, "object")
        for value in (PSEUDONYM, "203.0.113.7", "staff:dr.wong", "care relationship", "clinic-"):
            assert value not in str(error)
