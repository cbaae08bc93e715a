"""Date tokens that settle a match without decrypting.

A date token names a bucket (a local year, month or day, or the open years before
``MIN_YEAR`` and after ``MAX_YEAR``) in which a value starts, ends, or lies whole
(a "point"). :func:`dates.candidate_covers` lists the tokens a match *may* carry;
this module lists those a value can carry *only if* it matches: a bucket that lies
wholly on the matching side of the searched range. A resource with such a token
matches (a date parameter matches when any of its values does), so only resources
that carry a possible token and no certain one — values in the buckets at the edges
of the range — are decrypted and compared exactly.

For a value ``[tl, th)``: a point token of bucket ``[b0, b1)`` means
``b0 <= tl < th <= b1``; a start token means ``b0 <= tl < b1``; an end token means
``b0 < th <= b1``; ``s:open`` / ``e:open`` mean an open start or end.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo

from carevault.fhir import dates
from carevault.fhir.dates import END, MAX_YEAR, MIN_YEAR, POINT, START, DateRange, Prefix

_P, _S, _E = (POINT,), (START,), (END,)
_ALL = (POINT, START, END)


def _midnights(day: date, zone: tzinfo) -> list[datetime]:
    """The instants at which local ``day`` begins: two where the clocks go back across
    midnight (fold 0 and 1), one otherwise; in UTC, so that they compare as instants."""
    return [
        datetime(day.year, day.month, day.day, fold=fold, tzinfo=zone).astimezone(UTC)
        for fold in (0, 1)
    ]


def _day_begins(day: date, zone: tzinfo) -> datetime:
    """The earliest instant whose local date is ``day``."""
    return min(_midnights(day, zone))


def _day_ends(day: date, zone: tzinfo) -> datetime:
    """The instant after the last one whose local date is ``day``."""
    return max(_midnights(day + timedelta(days=1), zone))


def _buckets_from(side: str, first: date) -> list[str]:
    """Buckets of ``side`` that begin on or after local day ``first``."""
    if first.year > MAX_YEAR:  # the open bucket after MAX_YEAR begins on its first day
        return [f"{side}:Yafter"] if first == date(MAX_YEAR + 1, 1, 1) else []
    first = max(first, date(MIN_YEAR, 1, 1))
    return list(dates.side_cover_from(side, first))


def _buckets_until(side: str, last: date) -> list[str]:
    """Buckets of ``side`` that end on or before the end of local day ``last``."""
    if last.year < MIN_YEAR:  # the open bucket before MIN_YEAR ends with its last day
        return [f"{side}:Ybefore"] if last == date(MIN_YEAR - 1, 12, 31) else []
    last = min(last, date(MAX_YEAR, 12, 31))
    return list(dates.side_cover_until(side, last))


def starting_at_or_after(moment: datetime, zone: tzinfo, sides: tuple[str, ...]) -> set[str]:
    """Tokens of buckets whose every instant is at or after ``moment``."""
    first = moment.astimezone(zone).date() - timedelta(days=1)
    while _day_begins(first, zone) < moment:
        first += timedelta(days=1)
    return {token for side in sides for token in _buckets_from(side, first)}


def ending_at_or_before(moment: datetime, zone: tzinfo, sides: tuple[str, ...]) -> set[str]:
    """Tokens of buckets whose every instant is before ``moment``."""
    last = moment.astimezone(zone).date()
    while _day_ends(last, zone) > moment:
        last -= timedelta(days=1)
    return {token for side in sides for token in _buckets_until(side, last)}


def certain_tokens(prefix: Prefix, search: DateRange, zone: tzinfo) -> frozenset[str]:
    """Tokens that only a matching value carries (see the module docstring)."""
    assert search.low is not None and search.high is not None  # noqa: S101 - parse() bounds both
    low, high = search.low, search.high
    found: set[str]
    if prefix is Prefix.EQ:
        found = starting_at_or_after(low, zone, _P) & ending_at_or_before(high, zone, _P)
    elif prefix is Prefix.NE:
        found = ending_at_or_before(low, zone, _ALL) | starting_at_or_after(high, zone, _ALL)
        found |= {f"{START}:open", f"{END}:open"}
    elif prefix is Prefix.GT:
        found = starting_at_or_after(high, zone, _ALL) | {f"{END}:open"}
    elif prefix is Prefix.LT:
        found = ending_at_or_before(low, zone, _ALL) | {f"{START}:open"}
    elif prefix is Prefix.GE:
        found = starting_at_or_after(low, zone, _P) | starting_at_or_after(high, zone, (START, END))
        found |= {f"{END}:open"}
    elif prefix is Prefix.LE:
        found = ending_at_or_before(high, zone, _P) | ending_at_or_before(low, zone, (START, END))
        found |= {f"{START}:open"}
    elif prefix is Prefix.SA:
        found = starting_at_or_after(high, zone, (POINT, START))
    elif prefix is Prefix.AP:
        # A value that starts, ends or lies whole in a bucket inside the range overlaps it.
        found = starting_at_or_after(low, zone, _ALL) & ending_at_or_before(high, zone, _ALL)
    else:  # EB
        found = ending_at_or_before(low, zone, (POINT, END))
    return frozenset(found)
