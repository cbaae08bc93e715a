"""DuckDB's questions match each kind of compromised thing on its own column, alone or
together, and nothing else (the filter is built from the kinds given)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from carevault.incidents.columns import to_table
from carevault.incidents.query import CHANGE_TAGS, DuckScope, Who, Window, empty
from carevault.ledger.events import AuditEvent, Outcome, Tag

START_US = 1_767_225_600_000_000


def _read(n: int, tag: Tag = Tag.FHIR_READ, **fields: object) -> tuple[int, bytes]:
    event = AuditEvent(
        tag=tag,
        outcome=Outcome.SUCCESS,
        at_us=START_US + n,
        principal=str(fields.get("principal", "staff:nurse")),
        client_id=fields.get("client_id"),  # type: ignore[arg-type]
        session_id=fields.get("session_id"),  # type: ignore[arg-type]
        source_address=fields.get("source_address"),  # type: ignore[arg-type]
        clinic_ids=tuple(fields.get("clinic_ids", ())),  # type: ignore[arg-type]
        resource_type="Patient",
        resource_id=f"p{n}",
        patient_pseudonym=f"ps{n}",
        categories=("identity",),
    )
    return n, event.canonical()


@pytest.fixture(scope="module")
def query() -> Iterator[DuckScope]:
    rows = [
        _read(0, principal="staff:thief"),
        _read(1, principal="staff:other"),
        _read(2, client_id="app-1"),
        _read(3, session_id="s-9"),
        _read(4, source_address="203.0.113.9"),
        _read(5, clinic_ids=("clinic-b",)),
        _read(6),
        _read(7, Tag.FHIR_UPDATE, principal="staff:thief"),
        _read(8, Tag.FHIR_DELETE, principal="staff:thief"),
        _read(9, Tag.FHIR_CREATE, principal="staff:thief"),
        _read(10, Tag.FHIR_UPDATE, principal="staff:other"),
    ]
    scope = DuckScope(
        Window(START_US, None),
        {"audit": ([], to_table("audit", rows)), "unwrap": ([], empty("unwrap"))},
    )
    yield scope
    scope.close()


@pytest.mark.parametrize(
    ("who", "found"),
    [
        (Who(principals=("staff:thief",)), {"ps0"}),
        (Who(principals=("staff:thief", "staff:other")), {"ps0", "ps1"}),
        (Who(clients=("app-1",)), {"ps2"}),
        (Who(sessions=("s-9",)), {"ps3"}),
        (Who(addresses=("203.0.113.9",)), {"ps4"}),
        (Who(clinics=("clinic-b",)), {"ps5"}),
        (
            Who(principals=("staff:thief",), clinics=("clinic-b",), clients=("app-1",)),
            {"ps0", "ps2", "ps5"},
        ),  # fmt: skip
        (Who(principals=("staff:nobody",)), set()),
        (Who(principals=("x') OR true OR ('",)), set()),  # a value is a parameter, not SQL
    ],
)
def test_each_kind_matches_its_own_rows(query: DuckScope, who: Who, found: set[str]) -> None:
    assert {hit.patient for hit in query.released(who)} == found


def test_writes_are_asked_apart_from_releases(query: DuckScope) -> None:
    """The same question over writes: what the thief made, changed or deleted (a record
    written again after its deletion is a create in the ledger), apart from what was
    released to them, and nothing another principal wrote."""
    thief = Who(principals=("staff:thief",))
    changed = {hit.patient: hit.positions for hit in query.released(thief, CHANGE_TAGS)}

    assert changed == {"ps7": [7], "ps8": [8], "ps9": [9]}
    assert {hit.patient for hit in query.released(thief)} == {"ps0"}
