"""HKID numbers: every spelling of a valid number folds to one form and validates; a wrong
check digit never does; no text makes the normaliser fail (property tests)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carevault.domain import hkid
from carevault.fhir import normalise

LETTERS = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=2)
DIGITS = st.text(alphabet="0123456789", min_size=6, max_size=6)
FULL_WIDTH = {chr(code): chr(code + 0xFEE0) for code in range(0x21, 0x7F)}
LABELS = ["HKID ", "hkid: ", "HKIC No. ", "ID ", "HK ID card no.: ", "身份證 ", "香港身份證號碼："]
#: Unicode category Cf, which NFKC keeps: zero-width space, non-joiner and joiner, word
#: joiner, byte order mark, soft hyphen, left-to-right mark.
FORMAT_CHARACTERS = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u200e"]


@st.composite
def spellings(draw: st.DrawFn, number: tuple[str, str, str]) -> str:
    """One way a person or a system might write ``number``."""
    prefix, digits, check = number
    ending = [f"({check})", check, f" ({check})", f"-{check}", f" - {check}", f"\u2013{check}"]
    text = f"{prefix}{digits}" + draw(st.sampled_from(ending))
    if draw(st.booleans()):
        text = text.lower()
    if draw(st.booleans()):
        text = " ".join(text) if draw(st.booleans()) else f"  {text}\t"
    if draw(st.booleans()):  # a Chinese input method: full-width letters, digits, brackets
        text = "".join(FULL_WIDTH.get(ch, "\u3000" if ch == " " else ch) for ch in text)
    if draw(st.booleans()):  # the card's name before the number (stop 66)
        text = draw(st.sampled_from(LABELS)) + text
    if draw(st.booleans()):  # pasted from a web page: an invisible format character
        at = draw(st.integers(min_value=0, max_value=len(text)))
        text = text[:at] + draw(st.sampled_from(FORMAT_CHARACTERS)) + text[at:]
    return text


@st.composite
def valid_numbers(draw: st.DrawFn) -> tuple[str, str, str]:
    prefix, digits = draw(LETTERS), draw(DIGITS)
    return prefix, digits, hkid.check_digit(prefix, digits)


@given(st.data(), valid_numbers())
def test_every_spelling_of_a_valid_number_folds_to_one_form(
    data: st.DataObject, number: tuple[str, str, str]
) -> None:
    written = data.draw(spellings(number))
    folded = "".join(number)
    assert hkid.is_valid(written)
    assert hkid.normalise(written) == folded
    assert hkid.normalise(folded) == folded  # idempotent
    # The blind index sees the same term with and without the system.
    assert normalise.identifier_value(normalise.HKID_SYSTEM, written) == folded
    assert normalise.identifier_any(written) == folded


@given(st.data(), valid_numbers(), st.sampled_from("0123456789A"))
def test_any_other_check_digit_is_refused(
    data: st.DataObject, number: tuple[str, str, str], other: str
) -> None:
    prefix, digits, check = number
    if other == check:
        return
    written = data.draw(spellings((prefix, digits, other)))
    assert not hkid.is_valid(written)
    # It still folds the same way, so a search for a mistyped number matches its record.
    assert hkid.normalise(written) == f"{prefix}{digits}{other}"


@given(st.text(max_size=40))
def test_no_text_makes_the_normaliser_fail(text: str) -> None:
    folded = hkid.normalise(text)
    assert folded is None or (hkid.normalise(folded) == folded and folded.isascii())
    assert isinstance(hkid.is_valid(text), bool)
    assert isinstance(normalise.identifier_any(text), str)


@given(LETTERS, DIGITS, st.sampled_from("٠١٢٣٤٥٦٧٨٩"))
def test_digits_of_other_scripts_are_not_an_hkid(prefix: str, digits: str, eastern: str) -> None:
    """NFKC keeps Arabic-Indic digits as they are: they are no HKID's digits."""
    assert hkid.normalise(f"{prefix}{digits[:5]}{eastern}(3)") is None


#: Stop 66: spellings a person or a legacy feed writes that the normaliser missed.
SPELT_OTHERWISE = {
    "a dash before the check digit": "K987654-5",
    "the card's name before it": "HKID K987654(5)",
    "a zero-width space inside": "K987\u200b654(5)",
    "a soft hyphen and a word joiner": "K98\u00ad7654\u2060(5)",
    "an en dash": "K987654\u20135",
    "the name in Chinese, a full-width colon": "香港身份證號碼：K987654(5)",
    "the name, a number and a colon": "HKID No.: K987654 (5)",
}


@pytest.mark.parametrize("spelling", sorted(SPELT_OTHERWISE))
def test_spellings_a_feed_writes_fold_to_the_number(spelling: str) -> None:
    written = SPELT_OTHERWISE[spelling]
    assert hkid.normalise(written) == "K9876545"
    assert hkid.is_valid(written)
    assert normalise.identifier_any(written) == "K9876545"
    assert normalise.identifier_value(normalise.HKID_SYSTEM, written) == "K9876545"


@pytest.mark.parametrize("spelling", sorted(SPELT_OTHERWISE))
def test_those_spellings_with_a_wrong_check_digit_fold_and_are_invalid(spelling: str) -> None:
    written = SPELT_OTHERWISE[spelling].replace("5)", "4)").replace("-5", "-4")
    written = written.replace("\u20135", "\u20134")
    assert hkid.normalise(written) == "K9876544"
    assert not hkid.is_valid(written)


@pytest.mark.parametrize(
    "text",
    [
        "K987654",  # no check digit: a local record number as often as an HKID
        "HKID K987654",
        "K987654--5",
        "K987654(5",
        "HKID 123456(7)",  # the label leaves no prefix
        "HKA123456(3)",  # "HK" alone is no label
        "MRN-0001",
        "TM-0000042",  # the group's record numbers: a clinic's letters, a dash, 7 digits
        "K-987654(5)",  # a dash only before the check digit
    ],
)
def test_what_is_no_hkid_shape_stays_none(text: str) -> None:
    assert hkid.normalise(text) is None
    assert not hkid.is_valid(text)


def test_a_two_letter_prefix_that_reads_as_a_label_stays_a_prefix() -> None:
    assert hkid.normalise("ID123456(7)") == "ID1234567"
    assert hkid.normalise("HKID AB123456(9)") == "AB1234569"
