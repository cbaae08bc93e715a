"""The scope formats every time of a report at once: the same text as one at a time."""

from __future__ import annotations

from carevault.incidents.model import instant
from carevault.incidents.scope import instants


def test_instants_are_model_instants() -> None:
    micros = [0, 999, 1_000, 1_767_225_600_123_456, 1_767_225_600_999_999, 4_102_444_799_999_999]
    assert instants(micros) == [instant(value) for value in micros]
    assert instants([1_767_225_600_123_456]) == ["2026-01-01T00:00:00.123Z"]
    assert instants([]) == []
