"""Recovery codes: their shape, told apart from TOTP codes."""

from __future__ import annotations

from carevault.access.recovery import ALPHABET, LENGTH, new_code, normalise


def test_a_new_code_is_sixteen_unambiguous_characters_in_four_groups() -> None:
    codes = {new_code() for _ in range(200)}

    assert len(codes) == 200
    for code in codes:
        groups = code.split("-")
        assert [len(group) for group in groups] == [4, 4, 4, 4]
        assert set("".join(groups)) <= set(ALPHABET)
    assert not set("01OI") & set(ALPHABET)
    assert len(ALPHABET) ** LENGTH == 2**80


def test_a_code_is_read_in_any_case_and_spacing_but_a_totp_code_is_not_one() -> None:
    code = new_code()

    assert normalise(code) == code.replace("-", "")
    assert normalise(code.lower().replace("-", " ")) == code.replace("-", "")
    assert normalise("123456") is None
    assert normalise("ABCD-EFGH-JKLM-NPQ0") is None  # a 0 is never in a code
    assert normalise("ABCD-EFGH-JKLM") is None
