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
def spellings(draw: st.DrawFn, number: tuple[str, str, str], plain: bool = False) -> str:
    """One way a person or a system might write ``number``; ``plain``: neither with a
    dash before the check digit nor with the card's name before it (the two spellings a
    record number has too, which count only with a check digit that matches)."""
    prefix, digits, check = number
    ending = [f"({check})", check, f" ({check})"]
    if not plain:
        ending += [f"-{check}", f" - {check}", f"\u2013{check}"]
    text = f"{prefix}{digits}" + draw(st.sampled_from(ending))
    if draw(st.booleans()):
        text = text.lower()
    if draw(st.booleans()):
        text = " ".join(text) if draw(st.booleans()) else f"  {text}\t"
    if draw(st.booleans()):  # a Chinese input method: full-width letters, digits, brackets
        text = "".join(FULL_WIDTH.get(ch, "\u3000" if ch == " " else ch) for ch in text)
    if not plain and draw(st.booleans()):  # the card's name before the number (stop 66)
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
    # A dash or a label with a wrong check digit is some record's number (review of stop
    # 66: ``M123456-2``, ``ICU2024003``): no HKID, stored or searched.
    assert hkid.normalise(written) in (None, f"{prefix}{digits}{other}")
    # Written plainly it still folds the same way, so a search for a mistyped number
    # matches its record.
    plainly = data.draw(spellings((prefix, digits, other), plain=True))
    assert hkid.normalise(plainly) == f"{prefix}{digits}{other}"


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


#: Those of the spellings above that a record number has too (review of stop 66).
LIKE_RECORD_NUMBERS = {
    "a dash before the check digit",
    "an en dash",
    "the card's name before it",
    "the name in Chinese, a full-width colon",
    "the name, a number and a colon",
}


@pytest.mark.parametrize("spelling", sorted(SPELT_OTHERWISE))
def test_those_spellings_with_a_wrong_check_digit_are_invalid(spelling: str) -> None:
    """With a wrong check digit, a dash or a word before the number says it is some
    record's number (no HKID: not folded, stored or searched as one); a number written
    plainly folds still, so a search for a mistyped HKID finds its record."""
    written = SPELT_OTHERWISE[spelling].replace("5)", "4)").replace("-5", "-4")
    written = written.replace("\u20135", "\u20134")
    expected = None if spelling in LIKE_RECORD_NUMBERS else "K9876544"
    assert hkid.normalise(written) == expected
    assert not hkid.is_valid(written)


@pytest.mark.parametrize(
    "value",
    ["ICU2024003", "IDX1234567", "ICN2024117", "M123456-2", "CL123456-1", "AB123456-7"],
)
def test_record_numbers_shaped_like_the_new_spellings_are_no_hkid(value: str) -> None:
    """Review of stop 66: an ICU admission number, a system's account number, an
    insurer's claim number (``ID``/``IC`` then a letter: read as a label once spaces were
    folded away), an accession with its container suffix, a claim's resubmission suffix,
    a member's dependant suffix (a dash before the last digit), each with a check digit
    that does not match: none is an HKID."""
    assert hkid.normalise(value) is None


@pytest.mark.parametrize(
    "value",
    [
        "身份證號 K987654(5)",
        "身份证号：K987654(5)",
        "Identity Card No. K987654(5)",
        "Hong Kong ID: K987654(5)",
        "K987\u034f654(5)",  # a combining grapheme joiner
        "K987654\ufe0f(5)",  # a variation selector
        "K\u3164987654(5)",  # a Hangul filler
    ],
)
def test_more_spellings_fold_to_the_number(value: str) -> None:
    """Review of stop 66: the card's name in more words, and characters that show as
    nothing but are not format characters (Unicode's default-ignorable ones)."""
    assert hkid.normalise(value) == "K9876545"


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


@pytest.mark.parametrize(
    "text",
    [
        "K987654(5).",
        "K987654(5)-01",
        "Member K987654(5)",
        "HKID=K987654(5)",
        "K987654[5]",
        "K987654/5",
        "K-987654(5)",
        "\u041a987654(5)",
        "\u03ba987654(5)",
        "A123456(3)",
        "HKID A123456(3)",
        # Review of stop 67: spaces inside the six digits (read plainly before).
        "K 987 654 5",
        "K987 654-5",
        "HKID: K 987 654 5",
        "A 1 2 3 4 5 6 3",
        "Member K 987 654 (5)",
        # Bracketed, whatever is glued around it; Chinese input's brackets.
        "K987654(5)01",
        "HKIDK987654(5)",
        "XK987654(5)",
        "K987654\u30105\u3011",
        "K987654\u300c5\u300d",
        "K987654\u30145\u3015",
    ],
)
def test_an_hkid_written_anywhere_in_a_text_is_held(text: str) -> None:
    """Adversary round 85: an HKID with its check digit, wherever in the text and
    whatever surrounds it, Cyrillic and Greek letters drawn as Latin ones too."""
    assert hkid.holds(text)


@pytest.mark.parametrize(
    "text",
    [
        "VN1234567",
        "HN1234567",
        "A123456(4)",
        "M123456(2)",
        "TM-0000042",
        "ICU2024003",
        "XK9876545",
        "K9876545X",
        "K-987654-5",
        "",
    ],
)
def test_what_holds_no_hkid_with_its_check_digit_holds_none(text: str) -> None:
    """A check digit that does not match, a number inside a longer word, a record
    number's dash after the letters without a bracketed check digit: none."""
    assert not hkid.holds(text)


@pytest.mark.parametrize(
    ("text", "printed"),
    [("A123456(4)", True), ("ab 123456 (8)", True), ("A1234564", False), ("Mr A123456(4)", False)],
)
def test_a_number_printed_as_an_hkid_is_one_whatever_its_check_digit(
    text: str, printed: bool
) -> None:
    """As an Identifier's value a mistyped HKID, printed as one, still tells the real."""
    assert hkid.printed_as_one(text) is printed
