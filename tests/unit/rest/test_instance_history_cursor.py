"""Cursors of instance history (``rest/cursor.py``): sealed, bound to the caller, the
record and ``_since``, and never taken for a type- or system-level cursor. Pure, no
database."""

from __future__ import annotations

import secrets

import pytest

from carevault.fhir.outcome import FhirError
from carevault.rest import cursor
from carevault.vault.records import VersionKey

KEY = secrets.token_bytes(32)
DESK = "staff:desk-tm"
AS_OF = 1_780_000_000_000_000


def _sealed(start: int = 15) -> str:
    return cursor.seal_instance(KEY, DESK, "Patient", "p-1", None, start, AS_OF)


def test_an_instance_cursor_opens_to_its_start_and_instant() -> None:
    assert cursor.opened_instance(KEY, DESK, "Patient", "p-1", None, _sealed()) == (
        cursor.VersionPosition(15, AS_OF)
    )


def test_every_history_cursor_is_the_same_length_whatever_it_holds() -> None:
    type_level = cursor.seal(KEY, DESK, "Patient", None, VersionKey(AS_OF, "Patient", "p", 2), 1)
    lengths = {len(_sealed(start)) for start in (1, 10**9)} | {len(type_level)}
    assert lengths == {cursor.LENGTH}


@pytest.mark.parametrize(
    ("principal", "type_name", "resource_id", "since_us"),
    [
        ("staff:doctor-tm", "Patient", "p-1", None),
        (DESK, "Patient", "p-2", None),
        (DESK, "Observation", "p-1", None),
        (DESK, "Patient", "p-1", AS_OF - 1),
    ],
    ids=["another-caller", "another-record", "another-type", "another-since"],
)
def test_an_instance_cursor_moved_to_another_request_is_refused(
    principal: str, type_name: str, resource_id: str, since_us: int | None
) -> None:
    with pytest.raises(FhirError) as refused:
        cursor.opened_instance(KEY, principal, type_name, resource_id, since_us, _sealed())
    assert refused.value.status == 400


def test_a_cursor_of_one_level_is_refused_at_the_other() -> None:
    type_level = cursor.seal(KEY, DESK, "Patient", None, VersionKey(AS_OF, "Patient", "p-1", 2), 1)
    with pytest.raises(FhirError):
        cursor.opened_instance(KEY, DESK, "Patient", "p-1", None, type_level)
    with pytest.raises(FhirError):
        cursor.opened(KEY, DESK, "Patient", None, _sealed())


def test_an_altered_instance_cursor_is_refused() -> None:
    sealed = _sealed()
    for at in (0, 1, len(sealed) // 2, len(sealed) - 2):
        altered = sealed[:at] + ("A" if sealed[at] != "A" else "B") + sealed[at + 1 :]
        with pytest.raises(FhirError):
            cursor.opened_instance(KEY, DESK, "Patient", "p-1", None, altered)
    with pytest.raises(FhirError):
        cursor.opened_instance(secrets.token_bytes(32), DESK, "Patient", "p-1", None, sealed)
