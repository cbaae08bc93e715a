"""What a search's criteria and its count tell, and of whom.

Whom a count counts is what it tells of people when its criteria pick them out:
``Patient?phone=<a number>&_summary=count`` tells a front desk whether a number is a
patient's, and how many of a household are (adversary round 58);
``Patient?family=Chan&birthdate=1980-05-02&_summary=count`` whether a person of that
name born that day is one (left open by round 58). The gate names the patient of every
record such a count counts past its page, in the ledger and against the release budget,
as the page's patients are (``_PastPage.patients``). A count by name alone, or by name and a
birth year, is a broad net, and names no one.

What criteria tell of the records they match is the categories of the elements they
search (``searched_categories``), and whether they single out sensitive records: a
sensitive code asked (``sensitive_code_param``) or a criterion other than the patient, a
status or a date (``picks_records``). The gate refuses a search by what the caller may
not read, and names in the ledger what a total told (``Gate._told_by_total``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

from carevault.domain.categories import DataCategory
from carevault.domain.sensitive import is_sensitive_code
from carevault.fhir.dates import Prefix
from carevault.fhir.query import SearchQuery, split_values
from carevault.fhir.registry import ParamKind, ResourceType, SearchParam

#: The parameters of a person's name (a Patient's ``name``, ``family`` and ``given``).
NAME_PARAMS = frozenset({"name", "family", "given"})
#: The widest birth date range that, with a name, still picks out people: a month (a
#: birth month and a surname in a clinic group of 20,000 are a handful of people).
NARROW_BIRTH_DATES = timedelta(days=31)

#: Where each prefix bounds the range of birth dates a search asks for.
_FROM = frozenset({Prefix.EQ, Prefix.GE, Prefix.GT, Prefix.SA, Prefix.AP})
_UNTIL = frozenset({Prefix.EQ, Prefix.LE, Prefix.LT, Prefix.EB, Prefix.AP})


def picks_out_people(query: SearchQuery) -> bool:
    """Whether ``query``'s count picks out people: it names a telephone number or an
    email address (``phone``, ``email``: one household's), or it is a Patient search by
    name and a birth date within a month."""
    if any(term.param.telecom_system is not None for term in query.terms):
        return True
    return query.resource_type.is_patient and _by_name_and_birth_date(query)


def _by_name_and_birth_date(query: SearchQuery) -> bool:
    if not any(term.param.name in NAME_PARAMS for term in query.terms):
        return False
    # The range every ``birthdate`` condition together allows (``ge`` and ``le`` of one
    # day are that day, as ``eq`` is).
    low: datetime | None = None
    high: datetime | None = None
    for condition in query.dates:
        if condition.param.name != "birthdate":
            continue
        asked = condition.search
        if condition.prefix in _FROM and asked.low is not None:
            low = asked.low if low is None else max(low, asked.low)
        if condition.prefix in _UNTIL and asked.high is not None:
            high = asked.high if high is None else min(high, asked.high)
    return low is not None and high is not None and high - low <= NARROW_BIRTH_DATES


def searched_categories(
    rt: ResourceType, params: Iterable[SearchParam]
) -> Iterator[tuple[SearchParam, DataCategory]]:
    """The category of every element each of ``params`` searches on ``rt`` (patient
    parameters aside: they search whose records, not what the records hold), with the
    parameter: which records match tells that element's values."""
    for param in params:
        if param.patient:
            continue
        for path in param.paths:
            yield param, rt.element_categories.get(path.split(".")[0], rt.category)


def query_params(query: SearchQuery) -> list[SearchParam]:
    """The parameters ``query`` matches on (tokens, strings, references, dates)."""
    return [term.param for term in query.terms] + [date.param for date in query.dates]


def picks_records(query: SearchQuery) -> bool:
    """Whether a search picks records by something other than their patient, status or
    dates: a code, a category, a text, an id, which may single out sensitive ones."""
    return any(
        not term.param.patient
        and term.param.kind in (ParamKind.TOKEN, ParamKind.STRING)
        and not term.param.name.endswith("status")
        for term in query.terms
    ) or bool(query.ids)


def sensitive_code_param(rt: ResourceType, query: SearchQuery) -> str | None:
    """The first token parameter (an identifier aside) whose value names a sensitive
    code, if any: which records match it tells who has that code, whether the answer
    shows them or only counts them."""
    for name, value in query.applied:
        param = rt.param(name.partition(":")[0])
        if param is None or param.kind is not ParamKind.TOKEN or param.name == "identifier":
            continue
        if any(names_sensitive_code(alternative) for alternative in split_values(value)):
            return param.name
    return None


def names_sensitive_code(value: str) -> bool:
    """Whether some reading of one token value (as the parser has it: escapes dropped)
    names a sensitive code: with no system, or split at any of its bars. The index cannot
    tell a system holding a bar from a code that does (both are ``sys|a|b|c``), so every
    reading is judged (fail closed)."""
    pieces = value.split("|")
    return any(
        is_sensitive_code("|".join(pieces[:at]) or None, "|".join(pieces[at:]))
        for at in range(len(pieces))
    )
