"""HKID numbers: every spelling of a valid number folds to one form and validates; a wrong
check digit never does; no text makes the normaliser fail (property tests)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from carevault.domain import hkid
from carevault.fhir import normalise

LETTERS = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=2)
DIGITS = st.text(alphabet="0123456789", min_size=6, max_size=6)
FULL_WIDTH = {chr(code): chr(code + 0xFEE0) for code in range(0x21, 0x7F)}


@st.composite
def spellings(draw: st.DrawFn, number: tuple[str, str, str]) -> str:
    """One way a person or a system might write ``number``."""
    prefix, digits, check = number
    text = f"{prefix}{digits}" + draw(st.sampled_from([f"({check})", check, f" ({check})"]))
    if draw(st.booleans()):
        text = text.lower()
    if draw(st.booleans()):
        text = " ".join(text) if draw(st.booleans()) else f"  {text}\t"
    if draw(st.booleans()):  # a Chinese input method: full-width letters, digits, brackets
        text = "".join(FULL_WIDTH.get(ch, "\u3000" if ch == " " else ch) for ch in text)
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
