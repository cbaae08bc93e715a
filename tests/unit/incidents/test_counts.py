"""The scope's counts, however a tier's lines fall into people: the same as counting each
person's set of categories, clinics and first day the long way, line by line."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from carevault.incidents.scope import TIERS, counts

CATEGORIES = ["clinical", "contact", "identity", "visit"]
CLINICS = ["clinic-a", "clinic-b", "clinic-c"]
HONG_KONG = ZoneInfo("Asia/Hong_Kong")

_line = st.fixed_dictionaries(
    {
        "patient": st.sampled_from([f"p{n}" for n in range(8)]),
        "person": st.sampled_from([f"p{n}" for n in range(4)]),
        "categories": st.lists(st.sampled_from(CATEGORIES), unique=True).map(sorted),
        "clinics": st.lists(st.sampled_from(CLINICS), unique=True).map(sorted),
        "first": st.one_of(
            st.none(), st.sampled_from(["2026-01-01", "2026-01-02"]).map(lambda d: d + "T09:00Z")
        ),
    }
)


def _long_way(lines: list[dict[str, Any]], name: str) -> dict[str, int]:
    found: dict[str, set[str]] = {}
    for line in lines:
        for key in line[name]:
            found.setdefault(key, set()).add(line["person"])
    return {key: len(people) for key, people in sorted(found.items())}


@given(st.lists(_line, max_size=12), st.booleans())
def test_people_per_category_and_clinic_are_counted_once_each(
    lines: list[dict[str, Any]], one_per_person: bool
) -> None:
    if one_per_person:  # the usual tier: every line its own person
        lines = [{**line, "person": f"q{n}"} for n, line in enumerate(lines)]
    tiers: dict[str, list[dict[str, Any]]] = {tier: [] for tier in TIERS}
    tiers["potentially"] = lines
    found = counts(tiers, HONG_KONG)
    assert found["by_category"]["potentially"] == _long_way(lines, "categories")
    assert found["by_clinic"]["potentially"] == _long_way(lines, "clinics")
    first: dict[str, str] = {}
    for line in lines:
        if line["first"] and (line["person"] not in first or line["first"] < first[line["person"]]):
            first[line["person"]] = line["first"]
    days: dict[str, int] = {}
    for moment in first.values():
        days[moment[:10]] = days.get(moment[:10], 0) + 1
    assert found["by_day"]["potentially"] == dict(sorted(days.items()))
    assert found["people"]["potentially"] == len({line["person"] for line in lines})


def test_the_day_first_exposed_is_the_groups_day_not_utcs() -> None:
    """20:00 UTC on 1 January is 04:00 on 2 January in Hong Kong (CAREVAULT_TIMEZONE):
    the person was first exposed on the 2nd, as the clinic group counts days."""
    tiers: dict[str, list[dict[str, Any]]] = {tier: [] for tier in TIERS}
    tiers["confirmed"] = [
        {"patient": patient, "categories": ["identity"], "clinics": [], "first": first}
        for patient, first in (("a", "2026-01-01T20:00:00Z"), ("b", "2026-01-01T09:00:00Z"))
    ]
    assert counts(tiers, HONG_KONG)["by_day"]["confirmed"] == {"2026-01-01": 1, "2026-01-02": 1}
    assert counts(tiers, ZoneInfo("UTC"))["by_day"]["confirmed"] == {"2026-01-01": 2}


def test_a_person_in_two_tiers_is_in_one_tiers_breakdowns_as_in_its_people() -> None:
    """One person (two records, one HKID): record ``a`` read by the thief (confirmed),
    record ``b`` decrypted. ``people`` counts them once, as confirmed; the decrypted
    tier's categories, clinics and days counted them again, so a script adding up
    ``by_day.decrypted`` found a person that ``people.decrypted`` (0) did not have."""
    tiers: dict[str, list[dict[str, Any]]] = {tier: [] for tier in TIERS}
    tiers["confirmed"] = [
        {"patient": "a", "person": "a", "categories": ["identity"], "clinics": ["clinic-a"],
         "first": "2026-01-01T09:00:00Z"},
    ]  # fmt: skip
    tiers["decrypted"] = [
        {"patient": "b", "person": "a", "categories": ["clinical"], "clinics": ["clinic-b"],
         "first": "2026-01-02T09:00:00Z"},
        {"patient": "c", "person": "c", "categories": ["clinical"], "clinics": ["clinic-b"],
         "first": "2026-01-02T09:00:00Z"},
    ]  # fmt: skip
    found = counts(tiers, HONG_KONG)
    assert found["people"] == {"confirmed": 1, "decrypted": 1, "at_rest_only": 0,
                               "potentially": 0, "total": 2}  # fmt: skip
    for tier in TIERS:
        assert sum(found["by_day"][tier].values()) == found["people"][tier], tier
        for breakdown in ("by_category", "by_clinic"):
            assert all(n <= found["people"][tier] for n in found[breakdown][tier].values())
    assert found["by_category"]["decrypted"] == {"clinical": 1}
    assert found["by_clinic"]["decrypted"] == {"clinic-b": 1}
    assert found["by_day"]["decrypted"] == {"2026-01-02": 1}
