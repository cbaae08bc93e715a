"""Small helpers: ids, permutations, names."""

from __future__ import annotations

import random
import uuid

import pytest

from carevault.sim.elements import new_id
from carevault.sim.names import LANGUAGE_EXTENSION, chinese_name, non_chinese_name, person_name
from carevault.sim.unique import Permutation


def test_new_id_equals_a_uuid4_built_from_the_same_bits() -> None:
    ours, reference = random.Random(3), random.Random(3)
    for _ in range(1_000):
        expected = uuid.UUID(int=reference.getrandbits(128), version=4)
        assert new_id(ours) == str(expected)


def test_permutation_is_a_bijection() -> None:
    permutation = Permutation(random.Random(5), 1_000)
    assert sorted(permutation(i) for i in range(1_000)) == list(range(1_000))
    with pytest.raises(ValueError, match="distinct"):
        permutation(1_000)
    with pytest.raises(ValueError, match="two slots"):
        Permutation(random.Random(5), 1)


def test_chinese_names_have_romanised_and_traditional_chinese_forms() -> None:
    rng = random.Random(8)
    for _ in range(200):
        name = chinese_name(rng, female=rng.random() < 0.5, birth_year=rng.randint(1930, 2024))
        assert name.chinese is not None and name.official.startswith(str(name.family))
        official, *rest = name.human_names()
        assert official["use"] == "official" and official["family"] == name.family
        chinese = rest[-1]
        assert chinese["extension"] == [{"url": LANGUAGE_EXTENSION, "valueCode": "zh-Hant"}]
        assert chinese["text"] == name.chinese
        assert name.texts()[-1] == name.chinese
        assert name.username_stem() == name.username_stem().lower()


def test_western_given_names_are_usual_names() -> None:
    rng = random.Random(9)
    names = [chinese_name(rng, female=True, birth_year=1985) for _ in range(200)]
    with_western = [n for n in names if n.western]
    assert with_western, "many Hong Kong people use a Western given name"
    name = with_western[0]
    usual = name.human_names()[1]
    assert usual == {"use": "usual", "text": name.display, "family": name.family,
                     "given": [name.western]}  # fmt: skip
    assert name.display in name.texts()


def test_non_chinese_residents_have_no_chinese_name() -> None:
    rng = random.Random(10)
    for origin in ("filipino", "indonesian", "nepali", "indian", "pakistani", "western"):
        for _ in range(20):
            name = person_name(rng, female=True, birth_year=1990, origin=origin)
            assert name.chinese is None
            assert all("extension" not in form for form in name.human_names())
            assert name.official == " ".join([*name.given, name.family or ""]).strip()


def test_indonesian_names_may_have_no_family_name() -> None:
    rng = random.Random(11)
    names = [non_chinese_name(rng, female=True, origin="indonesian") for _ in range(50)]
    assert all(n.family is None for n in names)
    assert all("family" not in n.human_names()[0] for n in names)
    assert {len(n.given) for n in names} == {1, 2}
    assert all(n.username_stem() == "".join(n.given).lower() for n in names)
