"""HKID numbers: check digit, spellings, generation."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carevault.sim import hkid

# Published worked examples of the check digit (one- and two-letter prefixes, check "A").
VALID = ["A123456(3)", "G123456(A)", "AB123456(9)", "CA182361(1)"]
INVALID = [
    "A123456(4)",  # wrong check digit
    "G123456(1)",
    "AB123456(8)",
    "A12345(3)",  # five digits
    "123456(3)",  # no prefix
    "ABC123456(1)",  # three letters
    "A123456(B)",  # check is 0-9 or A
    "A123456(3",  # unbalanced bracket
    "",
]


@pytest.mark.parametrize("number", VALID)
def test_published_examples_are_valid(number: str) -> None:
    assert hkid.is_valid(number)


@pytest.mark.parametrize("number", INVALID)
def test_malformed_or_wrong_numbers_are_invalid(number: str) -> None:
    assert not hkid.is_valid(number)


@pytest.mark.parametrize(
    "spelling", ["A1234563", "a123456(3)", " A 123456 (3) ", "a 1234563", "A123456 (3)"]
)
def test_common_spellings_are_accepted_and_normalised(spelling: str) -> None:
    assert hkid.is_valid(spelling)
    assert hkid.normalise(spelling) == "A1234563"
    assert hkid.canonical(spelling) == "A123456(3)"


def test_check_digit_of_worked_examples() -> None:
    assert hkid.check_digit("A", "123456") == "3"
    assert hkid.check_digit("G", "123456") == "A"
    assert hkid.check_digit("AB", "123456") == "9"
    assert hkid.check_digit("CA", "182361") == "1"


@pytest.mark.parametrize(("prefix", "digits"), [("a", "123456"), ("ABC", "123456"), ("A", "12345")])
def test_check_digit_refuses_bad_parts(prefix: str, digits: str) -> None:
    with pytest.raises(hkid.InvalidHKID):
        hkid.check_digit(prefix, digits)


def test_normalise_refuses_text_that_is_not_shaped_like_an_hkid() -> None:
    with pytest.raises(hkid.InvalidHKID):
        hkid.normalise("not an id")
    # The shape is enough: a mistyped check digit still normalises for searching.
    assert hkid.normalise("A123456(4)") == "A1234564"


@given(st.integers(min_value=0, max_value=2**32))
def test_generated_numbers_are_valid_and_canonical(seed: int) -> None:
    number = hkid.generate(random.Random(seed))
    assert hkid.is_valid(number)
    assert hkid.canonical(number) == number


@given(st.integers(min_value=0, max_value=2**32), st.data())
def test_any_single_changed_digit_is_detected(seed: int, data: st.DataObject) -> None:
    normalised = hkid.normalise(hkid.generate(random.Random(seed)))
    # Six serial digits and the check digit: the last seven characters.
    position = data.draw(st.integers(min_value=len(normalised) - 7, max_value=len(normalised) - 1))
    alphabet = "0123456789A" if position == len(normalised) - 1 else "0123456789"
    replacement = data.draw(st.sampled_from([c for c in alphabet if c != normalised[position]]))
    changed = normalised[:position] + replacement + normalised[position + 1 :]
    assert not hkid.is_valid(changed)


@given(st.integers(min_value=0, max_value=2**32))
def test_normalise_and_canonical_round_trip(seed: int) -> None:
    number = hkid.generate(random.Random(seed))
    normalised = hkid.normalise(number)
    assert hkid.canonical(normalised) == number
    assert hkid.normalise(hkid.canonical(normalised)) == normalised
    assert hkid.normalise(number.lower().replace("(", " (")) == normalised


def test_unique_numbers_are_distinct_valid_and_keyed() -> None:
    numbers = hkid.UniqueNumbers(random.Random(1))
    issued = [numbers.number(index) for index in range(50_000)]
    assert len(set(issued)) == len(issued)
    assert all(hkid.is_valid(number) for number in issued[:2_000])
    other = hkid.UniqueNumbers(random.Random(2))
    assert [other.number(i) for i in range(100)] != issued[:100]


def test_unique_numbers_refuse_an_index_beyond_their_capacity() -> None:
    numbers = hkid.UniqueNumbers(random.Random(1))
    with pytest.raises(ValueError, match="distinct"):
        numbers.number(numbers.capacity)
