"""The shape of a name search, without its values: initials, first name only, or neither."""

from __future__ import annotations

from carevault.fhir.name_shape import name_shape


def test_initials_and_first_names_are_vague() -> None:
    assert name_shape([("name", "K")]) == "initials"
    assert name_shape([("given", "ML"), ("family", "W")]) == "initials"
    assert name_shape([("given", "Mei Ling")]) == "first-name"
    assert name_shape([("given:exact", "Mei Ling"), ("_count", "10")]) == "first-name"


def test_a_patient_pinned_down_is_not_vague() -> None:
    assert name_shape([("name", "Chan Tai Man")]) is None
    assert name_shape([("given", "Mei Ling"), ("birthdate", "1980-01-02")]) is None
    assert name_shape([("given", "Mei Ling"), ("family", "Wong")]) is None
    assert name_shape([("identifier", "A1234563")]) is None
    assert name_shape([]) is None
