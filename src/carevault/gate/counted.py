"""Searches whose count picks out people: whom such a count counts is what it tells.

``Patient?phone=<a number>&_summary=count`` tells a front desk whether a number is a
patient's, and how many of a household are (adversary round 58);
``Patient?family=Chan&birthdate=1980-05-02&_summary=count`` whether a person of that
name born that day is one (left open by round 58). The gate names the patient of every
record such a count counts past its page, in the ledger and against the release budget,
as the page's patients are (``Gate._counted``). A count by name alone, or by name and a
birth year, is a broad net, and names no one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from carevault.fhir.dates import Prefix
from carevault.fhir.query import SearchQuery

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
