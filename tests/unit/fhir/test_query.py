"""Parsing search parameters."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from carevault.fhir.query import SearchError, SearchQuery, parse_query
from carevault.fhir.registry import RESOURCE_TYPES

HK = ZoneInfo("Asia/Hong_Kong")


def parse(type_name: str, *params: tuple[str, str], strict: bool = False) -> SearchQuery:
    return parse_query(
        RESOURCE_TYPES[type_name],
        list(params),
        strict=strict,
        zone=HK,
        default_count=20,
        max_count=100,
    )


def test_comma_means_or_and_repetition_means_and() -> None:
    query = parse("Patient", ("name", "chan,wong"), ("name", "tai"))
    assert len(query.terms) == 2
    assert query.terms[0].alternatives == (("chan",), ("wong",))


def test_escaped_comma_is_part_of_the_value() -> None:
    query = parse("Observation", ("code", r"a\,b"))
    assert query.terms[0].alternatives == (("any|a,b",),)


def test_references_take_an_id_or_a_typed_reference() -> None:
    assert parse("Observation", ("patient", "Patient/p1")).patients[0].patient_ids == ("p1",)
    assert parse("Observation", ("subject", "p1,p2")).patients[0].patient_ids == ("p1", "p2")
    with pytest.raises(SearchError):
        parse("Observation", ("patient", "Group/g1"))
    practitioner = parse("Encounter", ("practitioner", "pr1")).terms[0]
    assert practitioner.alternatives == (("ref|Practitioner/pr1",),)


def test_count_is_capped_and_paging_values_checked() -> None:
    assert parse("Patient", ("_count", "5000")).count == 100
    for bad in ("-1", "ten", "1e3", "9999999999"):
        with pytest.raises(SearchError):
            parse("Patient", ("_count", bad))


def test_strict_handling_rejects_unknown_parameters_lenient_reports_them() -> None:
    assert parse("Patient", ("hair", "x")).ignored == ["hair"]
    with pytest.raises(SearchError, match="hair"):
        parse("Patient", ("hair", "x"), strict=True)
    assert parse("Patient", ("<b>", "x")).ignored == ["?b?"]


def test_date_parameters_become_conditions_with_covers() -> None:
    query = parse("Observation", ("date", "ge2024-01-01"))
    assert query.needs_decryption
    assert query.dates[0].covers is not None
    with pytest.raises(SearchError):
        parse("Observation", ("date", "2024,2025"))


def test_sort_only_on_dates_and_clear_columns() -> None:
    assert [k.name for k in parse("Observation", ("_sort", "-date,_lastUpdated")).sort] == [
        "date",
        "_lastUpdated",
    ]
    with pytest.raises(SearchError):
        parse("Observation", ("_sort", "code"))


def test_modifiers_are_refused_rather_than_ignored() -> None:
    with pytest.raises(SearchError):
        parse("Patient", ("name:exact", "Chan"))


def test_system_only_token_search_is_refused() -> None:
    with pytest.raises(SearchError):
        parse("Observation", ("code", "http://loinc.org|"))
