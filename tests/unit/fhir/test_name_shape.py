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


def test_a_criterion_that_narrows_nothing_does_not_pin_a_first_name() -> None:
    """Adversary round 59: beside ``given=Mei Ling``, a birth date bound that holds
    everyone, a family initial or the given name again in ``name`` found every Mei Ling,
    and the search was taken as pinned down."""
    for beside in (
        ("birthdate", "ge1900-01-01"),
        ("birthdate", "le2100-12-31"),
        ("birthdate", "1980"),
        ("family", "C"),
        ("name", "Mei"),
        ("name", "Lin"),
        ("name", "M"),
    ):
        assert name_shape([("given", "Mei Ling"), beside]) == "first-name", beside


def test_a_day_a_family_name_or_another_name_still_pins_a_first_name() -> None:
    assert name_shape([("given", "Mei Ling"), ("birthdate", "eq1980-01-02")]) is None
    assert name_shape([("given", "Ka Yan"), ("family", "Ho")]) is None
    assert name_shape([("given", "Mei Ling"), ("family", "陳")]) is None
    assert name_shape([("given", "Mei Ling"), ("name", "Chan")]) is None
    assert name_shape([("given", "C"), ("name", "Chan")]) is None
    assert name_shape([("given", "Mei Ling"), ("phone", "91234567")]) is None
