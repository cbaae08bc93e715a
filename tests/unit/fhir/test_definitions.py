"""R4's names for our parameters (registry aliases) and which parameters are R4's."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from carevault.fhir import definitions
from carevault.fhir.query import SearchError, SearchQuery, parse_query
from carevault.fhir.registry import RESOURCE_TYPES, ParamKind

HK = ZoneInfo("Asia/Hong_Kong")

#: A value of each kind, to parse under an alias and under the name it stands for.
VALUES = {
    ParamKind.TOKEN: ("http://example.org/cs|a,|b,http://example.org/cs|,c",),
    ParamKind.DATE: ("ge2026-11-19", "lt2026-11-20T10:00:00+08:00", "2026"),
    ParamKind.REFERENCE: ("Patient/p1,p2",),
}

ALIASES = sorted(
    (rt.name, alias, name) for rt in RESOURCE_TYPES.values() for alias, name in rt.aliases.items()
)


def parse(type_name: str, *params: tuple[str, str]) -> SearchQuery:
    return parse_query(
        RESOURCE_TYPES[type_name],
        list(params),
        strict=True,
        zone=HK,
        default_count=20,
        max_count=100,
    )


def test_the_standard_names_asked_for_are_aliases_of_what_already_matches_them() -> None:
    assert ("MedicationRequest", "authoredon", "date") in ALIASES
    assert ("Encounter", "type", "code") in ALIASES
    assert ("Immunization", "vaccine-code", "code") in ALIASES
    assert ("Coverage", "beneficiary", "patient") in ALIASES
    for type_name, alias, name in ALIASES:
        rt = RESOURCE_TYPES[type_name]
        assert rt.param(alias) is rt.param(name) is not None, (type_name, alias)
        # An alias never hides a parameter of its own name.
        assert all(param.name != alias for param in rt.params), (type_name, alias)


@pytest.mark.parametrize(("type_name", "alias", "name"), ALIASES)
def test_an_alias_parses_to_the_same_conditions_as_its_name_and_keeps_its_name_in_links(
    type_name: str, alias: str, name: str
) -> None:
    kind = RESOURCE_TYPES[type_name].param(name).kind  # type: ignore[union-attr]
    for value in VALUES[kind]:
        by_alias, by_name = parse(type_name, (alias, value)), parse(type_name, (name, value))
        assert by_alias.terms == by_name.terms
        assert by_alias.dates == by_name.dates
        assert by_alias.patients == by_name.patients
        # Tokens are keyed by the registry's name: the alias's conditions carry it.
        assert all(c.param.name == name for c in [*by_alias.terms, *by_alias.dates])
        assert by_alias.applied == [(alias, value)]
    with pytest.raises(SearchError, match="modifier"):
        parse(type_name, (f"{alias}:missing", "true"))


def test_sorting_by_an_alias_sorts_by_the_date_it_names() -> None:
    query = parse("MedicationRequest", ("_sort", "-authoredon"))
    assert [(key.name, key.descending) for key in query.sort] == [("date", True)]
    assert query.applied == [("_sort", "-authoredon")]
    with pytest.raises(SearchError, match="sortable: _lastUpdated, _id, date, authoredon"):
        parse("MedicationRequest", ("_sort", "intent"))


def test_every_date_parameter_sorts_either_way_and_another_is_refused_naming_them() -> None:
    """Condition ``recorded-date`` and ServiceRequest ``authored`` and ``occurrence`` (and
    Condition ``onset-date``) sort as ``date`` does, ``-`` for descending: a type's date
    parameters are its sort keys, so one added later is one too."""
    for type_name, name in (
        ("Condition", "recorded-date"),
        ("Condition", "onset-date"),
        ("ServiceRequest", "authored"),
        ("ServiceRequest", "occurrence"),
    ):
        query = parse(type_name, ("_sort", f"-{name},date"))
        assert [(key.name, key.descending) for key in query.sort] == [
            (name, True),
            ("date", False),
        ]
        assert query.sorts_on_encrypted
    for rt in RESOURCE_TYPES.values():
        dated = {param.name for param in rt.params if param.kind is ParamKind.DATE}
        assert dated <= set(rt.sort_names), rt.name
    with pytest.raises(
        SearchError,
        match="cannot sort Condition by 'category'; "
        "sortable: _lastUpdated, _id, date, onset-date, recorded-date",
    ):
        parse("Condition", ("_sort", "-category"))


def test_unknown_standard_names_needing_new_terms_are_still_refused() -> None:
    for type_name, name in (
        ("Observation", "value-quantity"),
        ("Encounter", "reason-code"),
        ("Procedure", "performer"),
    ):
        with pytest.raises(SearchError, match="unknown search parameter"):
            parse(type_name, (name, "x"))


#: R4 parameters served with terms of their own (new in this version: a record stored
#: before is found by them only after ``carevault reindex``), by their R4 definition.
OWN_TERMS = {
    ("Encounter", "class"): ("Encounter-class", ParamKind.TOKEN),
    ("Condition", "category"): ("Condition-category", ParamKind.TOKEN),
    ("Condition", "onset-date"): ("Condition-onset-date", ParamKind.DATE),
    ("MedicationRequest", "intent"): ("MedicationRequest-intent", ParamKind.TOKEN),
    ("Condition", "recorded-date"): ("Condition-recorded-date", ParamKind.DATE),
    ("ServiceRequest", "authored"): ("ServiceRequest-authored", ParamKind.DATE),
}


def test_service_request_occurrence_is_served_as_our_own_since_timing_is_not_indexed() -> None:
    """R4's ``occurrence`` also reads ``occurrenceTiming``, which is not indexed: ours
    reads the dateTime and the Period, and says so rather than claim R4's definition."""
    param = RESOURCE_TYPES["ServiceRequest"].param("occurrence")
    assert param is not None and param.kind is ParamKind.DATE
    assert param.paths == ("occurrenceDateTime", "occurrencePeriod")
    assert definitions.definition("ServiceRequest", "occurrence") is None
    assert "occurrenceTiming" in (definitions.documentation("ServiceRequest", "occurrence") or "")
    for value in VALUES[ParamKind.DATE]:
        assert parse("ServiceRequest", ("occurrence", value)).dates[0].param is param


def test_the_approximately_prefix_is_taken_on_every_date_parameter_and_last_updated() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 12, 4, tzinfo=UTC)
    for type_name, name in (
        ("Condition", "recorded-date"),
        ("Patient", "birthdate"),
        ("Slot", "start"),
    ):
        query = parse_query(
            RESOURCE_TYPES[type_name],
            [(name, "ap2016-12-04")],
            strict=True,
            zone=HK,
            default_count=20,
            max_count=100,
            now=now,
        )
        (condition,) = query.dates
        assert condition.search.low is not None and condition.search.high is not None
        # Ten years back: a margin of about a year either side of the day.
        assert condition.search.low.year == 2015 and condition.search.high.year == 2017
    updated = parse_query(
        RESOURCE_TYPES["Observation"],
        [("_lastUpdated", "ap2016-12-04")],
        strict=True,
        zone=HK,
        default_count=20,
        max_count=100,
        now=now,
    ).last_updated[0]
    assert updated.search.low is not None and updated.search.low.year == 2015


@pytest.mark.parametrize(("type_name", "name"), sorted(OWN_TERMS))
def test_the_r4_parameters_clients_asked_for_parse_with_their_types_usual_forms(
    type_name: str, name: str
) -> None:
    spec, kind = OWN_TERMS[(type_name, name)]
    param = RESOURCE_TYPES[type_name].param(name)
    assert param is not None and param.name == name and param.kind is kind
    assert definitions.definition(type_name, name) == (
        "http://hl7.org/fhir/SearchParameter/" + spec
    )
    for value in VALUES[kind]:
        query = parse(type_name, (name, value))
        assert query.applied == [(name, value)]
        assert all(c.param is param for c in [*query.terms, *query.dates])
    with pytest.raises(SearchError, match="modifier"):
        parse(type_name, (f"{name}:missing", "true"))


def test_every_served_parameter_is_either_r4s_or_documented_as_our_own() -> None:
    served = {
        (rt.name, name)
        for rt in RESOURCE_TYPES.values()
        for name in [*(param.name for param in rt.params), *rt.aliases]
    }
    assert set(definitions.STANDARD) | set(definitions.OWN) == served
    assert not set(definitions.STANDARD) & set(definitions.OWN)


def test_parameters_whose_r4_namesake_means_something_else_claim_no_definition() -> None:
    for type_name, name in (
        ("MedicationRequest", "date"),
        ("Encounter", "code"),
        ("Immunization", "code"),
        ("ImagingStudy", "code"),
        ("AllergyIntolerance", "code"),
    ):
        assert definitions.definition(type_name, name) is None
        assert definitions.documentation(type_name, name)
    spec = "http://hl7.org/fhir/SearchParameter/"
    assert definitions.definition("MedicationRequest", "authoredon") == (
        spec + "MedicationRequest-authoredon"
    )
    assert definitions.definition("Encounter", "type") == spec + "clinical-type"
    assert definitions.definition("Observation", "patient") == spec + "clinical-patient"
    assert definitions.definition("Patient", "birthdate") == spec + "individual-birthdate"
