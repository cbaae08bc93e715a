"""Kinship terms: one term for every spelling of the same surname, home and building."""

from __future__ import annotations

from carevault.fhir.kinship import address_terms, hkid_term, patient_terms, surname_term
from carevault.fhir.normalise import HKID_SYSTEM


def test_surnames_fold_case_accents_and_punctuation() -> None:
    assert surname_term("CHAN") == surname_term(" chan ") == "chan"
    assert surname_term("Au-Yeung") == surname_term("AU YEUNG") == "au yeung"
    assert surname_term("Müller") == "muller"
    assert surname_term("  -- ") is None


def test_an_address_gives_its_household_and_its_building() -> None:
    household, building = address_terms(["Flat A, 12/F, Block 3", "Yiu Tung Estate"])
    assert household == "flat a 12 f block 3 yiu tung estate"
    assert building == "block 3 yiu tung estate"


def test_spellings_of_one_home_give_one_term() -> None:
    one = address_terms(["Flat 3A, 12/F", "210 Nathan Road"])
    assert address_terms(["RM 3a 12 / F", "210 NATHAN RD"]) == one
    assert address_terms(["Room 3A, 12 Floor, 210 Nathan Rd."]) == one
    assert address_terms(["Flat 7, 2/F", "210 Nathan Road"])[1] == one[1]
    assert address_terms(["Flat 7, 2/F", "210 Nathan Road"])[0] != one[0]
    assert address_terms([]) == (None, None)


def test_hkid_numbers_take_one_form() -> None:
    assert hkid_term("a123456(3)") == hkid_term("A1234563") == "A1234563"
    assert hkid_term("not a number") is None


def test_a_patient_gives_surname_home_building_and_hkid_but_not_work_addresses() -> None:
    terms = patient_terms(
        {
            "resourceType": "Patient",
            "name": [{"family": "Chan", "given": ["Tai Man"]}, {"text": "陳大文"}],
            "address": [
                {"use": "home", "line": ["Flat B, 3/F", "12 Hill Road"]},
                {"use": "work", "line": ["Unit 1, 20/F", "1 Queen's Road Central"]},
            ],
            "identifier": [
                {"system": HKID_SYSTEM, "value": "A123456(3)"},
                {"system": "urn:other", "value": "12345"},
            ],
        }
    )
    assert terms == {
        ("surname", "chan"),
        ("household", "flat b 3 f 12 hill road"),
        ("building", "12 hill road"),
        ("hkid", "A1234563"),
    }
