"""A row's search tokens packed as one value and read back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carevault.vault.tokenlist import pack, unpack


@given(st.lists(st.binary(max_size=400), max_size=40))
def test_what_is_packed_is_read_back_in_order(tokens: list[bytes]) -> None:
    assert unpack(pack(tokens)) == tokens


def test_lengths_are_varints_one_byte_below_128() -> None:
    blind = bytes(range(16))
    assert pack([blind]) == b"\x10" + blind
    clear = b"x" * 300  # 300 = 0b10_0101100: 0xAC then 0x02
    assert pack([clear]) == b"\xac\x02" + clear
    assert pack([]) == b""
    assert unpack(b"") == []


@pytest.mark.parametrize(
    ("packed", "reason"),
    [
        (b"\x10" + b"a" * 15, "inside a token"),
        (b"\x02ab\x80", "inside a length"),
        (b"\xac", "inside a length"),
    ],
)
def test_a_list_cut_short_is_refused(packed: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        unpack(packed)
