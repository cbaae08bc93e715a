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


def test_unknown_parameters_are_refused_in_every_mode_naming_them() -> None:
    for strict in (False, True):
        with pytest.raises(SearchError, match="hair"):
            parse("Patient", ("hair", "x"), strict=strict)
        with pytest.raises(SearchError, match=r"\?b\?"):
            parse("Patient", ("<b>", "x"), strict=strict)
        with pytest.raises(SearchError, match="chained search 'subject.name'|subject.name"):
            parse("Observation", ("subject.name", "x"), strict=strict)
        with pytest.raises(SearchError, match="_has"):
            parse("Patient", ("_has:Observation:patient:code", "x"), strict=strict)


def test_only_presentation_parameters_are_ignored_and_reported() -> None:
    asked = parse("Patient", ("_totalMethod", "count"), ("_pretty", "true"))
    assert asked.ignored == ["_totalMethod"]
    with pytest.raises(SearchError, match="_totalMethod"):
        parse("Patient", ("_totalMethod", "count"), strict=True)
    assert not parse("Patient", ("_summary", "false")).summary_count


def test_include_and_revinclude_name_a_reference_parameter_and_one_target() -> None:
    [include] = parse("Observation", ("_include", "Observation:subject")).includes
    assert (include.source.name, include.param.name, include.target) == (
        "Observation",
        "subject",
        "Patient",
    )
    assert not include.reverse
    [reverse] = parse("Patient", ("_revinclude", "Encounter:patient")).includes
    assert (reverse.source.name, reverse.target, reverse.reverse) == ("Encounter", "Patient", True)
    [actor] = parse("Slot", ("_include", "Slot:schedule:Schedule")).includes
    assert actor.target == "Schedule"
    for name, value in (
        ("_include", "*"),
        ("_include", "Encounter:subject"),  # not the searched type
        ("_include", "Observation:code"),  # not a reference
        ("_include", "Schedule:actor"),  # several targets, none named
        ("_revinclude", "Observation:subject:Group"),
        ("_include:iterate", "Observation:subject"),
    ):
        with pytest.raises(SearchError):
            parse("Observation" if "Observation" in value else "Schedule", (name, value))


def test_token_forms_on_code_elements_use_their_implicit_system() -> None:
    gender = "http://hl7.org/fhir/administrative-gender"

    def terms(value: str) -> tuple[tuple[str, ...], ...]:
        return parse("Patient", ("gender", value)).terms[0].alternatives

    assert terms(f"{gender}|female") == terms("female") == terms("|female") == (("any|female",),)
    assert terms(f"{gender}|") == ((f"sysany|{gender}",),)
    assert terms("http://example.org/x|female") == ()
    with pytest.raises(SearchError):
        parse("Patient", ("gender", "|"))


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


def test_system_only_token_search_finds_any_code_of_the_system() -> None:
    query = parse("Observation", ("code", "http://loinc.org|"))
    assert query.terms[0].alternatives == (("sysany|http://loinc.org",),)


def test_summary_and_elements_shape_the_view_and_stay_in_the_self_link() -> None:
    summary = parse("Patient", ("_summary", "true"), ("name", "chan"))
    assert summary.view.summary == "true" and not summary.summary_count
    assert ("_summary", "true") in summary.applied
    elements = parse("Patient", ("_elements", "name, birthDate,shoeSize"))
    assert elements.view.elements == {"name", "birthDate"}
    assert ("_elements", "name,birthDate") in elements.applied
    assert elements.ignored_elements == ["shoeSize"]
    with pytest.raises(SearchError, match="shoeSize"):
        parse("Patient", ("_elements", "name,shoeSize"), strict=True)


def test_summary_text_with_includes_and_bad_views_are_refused() -> None:
    with pytest.raises(SearchError, match="_summary=text cannot be used with _include"):
        parse("Observation", ("_include", "Observation:patient"), ("_summary", "text"))
    for bad in (("_summary", "bogus"), ("_elements", "a.b"), ("_summary:x", "true")):
        for strict in (False, True):
            with pytest.raises(SearchError):
                parse("Patient", bad, strict=strict)


@pytest.mark.parametrize(
    ("type_name", "sent", "value"),
    [
        ("MedicationRequest", "authoredon", "yesterday"),
        ("Encounter", "type", ""),
        ("Immunization", "vaccine-code", "|"),
    ],
)
def test_a_refused_value_is_named_as_the_client_sent_its_parameter(
    type_name: str, sent: str, value: str
) -> None:
    """An R4 name read as one of ours (stop 35's integrator: the 400 named ``date`` to
    a client that sent ``authoredon``)."""
    with pytest.raises(SearchError) as refused:
        parse(type_name, (sent, value))
    assert str(refused.value).startswith(f"{sent}"), str(refused.value)
    canonical = RESOURCE_TYPES[type_name].aliases[sent]
    with pytest.raises(SearchError) as same:
        parse(type_name, (canonical, value))
    assert str(same.value).removeprefix(canonical) == str(refused.value).removeprefix(sent)
