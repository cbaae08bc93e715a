"""Normalisation shared by stored values and search values."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from carevault.fhir import normalise


def test_hkid_spellings_meet() -> None:
    forms = ["A123456(3)", "a1234563", " A 123456 (3) ", "A123456 3"]
    assert {normalise.identifier_any(form) for form in forms} == {"A1234563"}
    assert normalise.identifier_value(normalise.HKID_SYSTEM, "a123456(3)") == "A1234563"
    assert normalise.identifier_value("http://other", " HHG-0001 ") == "HHG-0001"
    assert normalise.identifier_any("HHG-0001") == "HHG-0001"


def test_phone_keeps_hong_kong_numbers_as_eight_digits() -> None:
    assert normalise.phone("+852 9123 4567") == "91234567"
    assert normalise.phone("(852) 9123-4567") == "91234567"
    assert normalise.phone("9123 4567") == "91234567"
    assert normalise.phone("+44 20 7946 0958") == "442079460958"


def test_names_fold_case_and_accents_and_split_chinese() -> None:
    assert normalise.name_words("CHAN Tai-man") == ["chan", "tai", "man"]
    assert normalise.name_words("José Núñez") == ["jose", "nunez"]
    assert normalise.name_words("陳大文") == ["陳大文", "陳", "大", "文"]
    assert normalise.prefixes("chan") == ["c", "ch", "cha", "chan"]
    assert normalise.email(" Tai.Man@Example.HK ") == "tai.man@example.hk"


@given(st.text(min_size=1, max_size=40))
def test_every_word_of_a_name_is_found_by_its_own_search(text: str) -> None:
    stored = {prefix for word in normalise.name_words(text) for prefix in normalise.prefixes(word)}
    for word in normalise.search_prefix(text):
        assert word in stored
