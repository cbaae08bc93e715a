"""FHIR date search: value ranges, prefixes, and blind-indexable day tokens.

Dates are encrypted, so the store keeps blind tokens of the local day on which a
value starts and ends, at three granularities (year, month, day). A search turns
its prefix into a set of tokens that covers every possible match (a superset);
the exact comparison, with the spec's range semantics, runs after decryption.
Values without a zone are read in the clinic group's time zone.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from enum import StrEnum
from functools import cache, lru_cache
from typing import Any

MIN_YEAR = 1850
MAX_YEAR = 2150

#: The years a stored or searched date may fall in: every real date, with room around it
#: for time zones and care windows (Python's datetime ends at 0001 and 9999, and a range
#: at its edge overflows). Sentinels such as 9999-12-31 or 0001-01-01 are refused: an
#: open-ended Period leaves its end out.
EARLIEST_YEAR = 1000
LATEST_YEAR = 8999

_DATETIME = re.compile(
    r"^(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d{1,9}))?)?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


#: A dateTime whose offset's ``+`` a query string read as a space: a client that did not
#: escape it as ``%2B`` (``_lastUpdated=gt2026-01-01T08:00:00+08:00``, Hong Kong's own
#: offset). No FHIR date holds a space, and there it can only have been the ``+``.
_UNESCAPED_OFFSET = re.compile(
    r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:\d{2})$"
)


def from_query(text: str) -> str:
    """A date of a URL's query as its sender wrote it: the ``+`` of an offset restored
    where the query string made it a space (integrator rounds 60 and 64). Only for text
    read from a query string: a resource's own dates are JSON, where a space is wrong."""
    return _UNESCAPED_OFFSET.sub(r"\1+\2", text)


class DateFormatError(ValueError):
    """A date search value or stored date is not a FHIR date, dateTime or instant."""


class DateOutOfRange(DateFormatError):
    """A well-formed date outside the years the store holds."""


OUT_OF_RANGE = f"dates must fall in the years {EARLIEST_YEAR} to {LATEST_YEAR}"


def year_in_range(text: str) -> bool:
    """Whether a date, dateTime or instant's year is one the store holds (or it has none)."""
    year = text.strip()[:4]
    return not year.isdigit() or EARLIEST_YEAR <= int(year) <= LATEST_YEAR


class Prefix(StrEnum):
    EQ = "eq"
    NE = "ne"
    GT = "gt"
    LT = "lt"
    GE = "ge"
    LE = "le"
    SA = "sa"
    EB = "eb"
    #: Approximately: the search range is first widened (``approximately``), then a value
    #: matches when its range overlaps the widened one.
    AP = "ap"


@dataclass(frozen=True)
class DateRange:
    """[low, high): ``None`` is unbounded on that side."""

    low: datetime | None
    high: datetime | None


# Remembered (a range is immutable): a bulk load asks for the same times over and over
# (a clinic's slots start on the hour, a visit's records share its time), for search
# terms, clear dates and care windows alike. A text that does not parse raises each time.
@lru_cache(maxsize=1 << 16)
def parse(text: str, zone: tzinfo) -> DateRange:
    """The range a FHIR date/dateTime/instant covers at its precision."""
    match = _DATETIME.match(text.strip())
    if not match:
        raise DateFormatError("not a FHIR date, dateTime or instant")
    parts = match.groupdict()
    if not EARLIEST_YEAR <= int(parts["year"]) <= LATEST_YEAR:
        raise DateOutOfRange(OUT_OF_RANGE)
    try:
        year = int(parts["year"])
        if parts["month"] is None:
            low = datetime(year, 1, 1, tzinfo=zone)
            return DateRange(low, low.replace(year=year + 1))
        month = int(parts["month"])
        if parts["day"] is None:
            low = datetime(year, month, 1, tzinfo=zone)
            return DateRange(low, _add_month(low))
        day = int(parts["day"])
        if parts["hour"] is None:
            low = datetime(year, month, day, tzinfo=zone)
            return DateRange(low, low + timedelta(days=1))
        offset = _zone(parts["zone"]) if parts["zone"] else zone
        low = datetime(year, month, day, int(parts["hour"]), int(parts["minute"]), tzinfo=offset)
        if parts["second"] is None:
            return DateRange(low, low + timedelta(minutes=1))
        low = low.replace(second=int(parts["second"]))
        if parts["fraction"] is None:
            return DateRange(low, low + timedelta(seconds=1))
        fraction = parts["fraction"]
        micros = int(fraction[:6].ljust(6, "0"))
        low = low.replace(microsecond=micros)
        step = timedelta(microseconds=max(1, 10 ** (6 - min(len(fraction), 6))))
        return DateRange(low, low + step)
    except (ValueError, OverflowError) as error:  # a day or hour out of range
        raise DateFormatError("not a valid calendar date or time") from error


@cache
def _zone(text: str) -> tzinfo:
    from datetime import timezone

    if text == "Z":
        return UTC
    sign = 1 if text[0] == "+" else -1
    hours, minutes = int(text[1:3]), int(text[4:6])
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _add_month(moment: datetime) -> datetime:
    if moment.month == 12:
        return moment.replace(year=moment.year + 1, month=1)
    return moment.replace(month=moment.month + 1)


def value_range(value: Any, zone: tzinfo) -> DateRange | None:
    """The range of a stored element: a date string or a Period; None if unusable."""
    try:
        if isinstance(value, str):
            return parse(value, zone)
        if isinstance(value, dict) and ("start" in value or "end" in value):
            start = parse(value["start"], zone).low if isinstance(value.get("start"), str) else None
            end = parse(value["end"], zone).high if isinstance(value.get("end"), str) else None
            return DateRange(start, end)
    except DateFormatError:
        return None
    return None


def approximately(search: DateRange, now: datetime) -> DateRange:
    """The range ``ap`` searches: ``search`` widened on both sides by a tenth of the gap
    between now and it (R4 search, prefixes: "the recommended value for the
    approximation is ... for a date, 10% of the gap between now and the date"). The gap
    is measured to the range's nearer edge, so a value whose range holds now (today,
    this year) is approximately itself, and ``ap`` on it finds what overlaps it."""
    assert search.low is not None and search.high is not None  # noqa: S101 - parse() bounds both
    if now < search.low:
        gap = search.low - now
    elif now >= search.high:
        gap = now - search.high
    else:
        gap = timedelta(0)
    margin = gap / 10
    return DateRange(search.low - margin, search.high + margin)


def instant_window(prefix: Prefix, search: DateRange) -> DateRange:
    """The instants that ``prefix`` and ``search`` match, as one range: what ``matches``
    says of a value known to the microsecond (a ledger entry's time, whose range is
    [t, t + 1 µs)), for a store that compares instants in SQL. ``ne`` matches the
    instants outside the ``eq`` window, which is no one range: ask for that one."""
    assert search.low is not None and search.high is not None  # noqa: S101 - parse() bounds both
    if prefix in (Prefix.EQ, Prefix.AP):  # ap: the range was widened when it was parsed
        return search
    if prefix in (Prefix.GT, Prefix.SA):  # ends after the range: starts at or after its end
        return DateRange(search.high, None)
    if prefix is Prefix.GE:
        return DateRange(search.low, None)
    if prefix in (Prefix.LT, Prefix.EB):  # starts before the range: ends by its start
        return DateRange(None, search.low)
    if prefix is Prefix.LE:
        return DateRange(None, search.high)
    raise ValueError("ne matches the instants outside the eq window, not one range")


def split_prefix(text: str) -> tuple[Prefix, str]:
    if len(text) > 2 and text[:2].isalpha():
        try:
            return Prefix(text[:2]), text[2:]
        except ValueError as error:
            raise DateFormatError(f"unsupported date prefix '{text[:2]}'") from error
    return Prefix.EQ, text


def matches(prefix: Prefix, search: DateRange, target: DateRange) -> bool:
    """FHIR R4 date comparison (search page §3.1.1.5.1), on ranges."""
    assert search.low is not None and search.high is not None  # noqa: S101 - parse() bounds both
    t_low, t_high = target.low, target.high
    above = t_high is None or t_high > search.high
    below = t_low is None or t_low < search.low
    within = (
        t_low is not None and t_high is not None and search.low <= t_low and t_high <= search.high
    )
    if prefix is Prefix.EQ:
        return within
    if prefix is Prefix.NE:
        return not within
    if prefix is Prefix.GT:
        return above
    if prefix is Prefix.LT:
        return below
    if prefix is Prefix.GE:
        return above or within
    if prefix is Prefix.LE:
        return below or within
    if prefix is Prefix.SA:
        return t_low is not None and t_low >= search.high
    if prefix is Prefix.AP:  # the range was widened when the search was parsed
        return (t_high is None or t_high > search.low) and (t_low is None or t_low < search.high)
    return t_high is not None and t_high <= search.low  # EB


# --- tokens -----------------------------------------------------------------------------------

START, END, POINT = "s", "e", "p"


def _day_tokens(side: str, day: date) -> list[str]:
    if day.year < MIN_YEAR:
        return [f"{side}:Ybefore"]
    if day.year > MAX_YEAR:
        return [f"{side}:Yafter"]
    # Formatted by hand: strftime cost more than the rest of indexing a record.
    year = f"{day.year:04d}"
    month = f"{year}-{day.month:02d}"
    return [f"{side}:Y{year}", f"{side}:M{month}", f"{side}:D{month}-{day.day:02d}"]


def tokens(target: DateRange, zone: tzinfo) -> list[str]:
    """Tokens stored for a value: its first and last local day, or 'open' ends.

    A value within one day (most instants and dates) stores one set of 'point'
    tokens that stand for both its start and its end, halving the index.
    """
    found: list[str] = []
    if target.low is not None and target.high is not None:
        first = target.low.astimezone(zone).date()
        last = (target.high - timedelta(microseconds=1)).astimezone(zone).date()
        if first == last:
            return _day_tokens(POINT, first)
    if target.low is None:
        found.append(f"{START}:open")
    else:
        found.extend(_day_tokens(START, target.low.astimezone(zone).date()))
    if target.high is None:
        found.append(f"{END}:open")
    else:
        last = (target.high - timedelta(microseconds=1)).astimezone(zone).date()
        found.extend(_day_tokens(END, last))
    return found


def cover_from(side: str, first: date) -> list[str]:
    """Tokens matching any ``side`` (or point) day on or after ``first``."""
    return [*side_cover_from(side, first), *side_cover_from(POINT, first)]


def cover_until(side: str, last: date) -> list[str]:
    """Tokens matching any ``side`` (or point) day on or before ``last``."""
    return [*side_cover_until(side, last), *side_cover_until(POINT, last)]


# Remembered: an open-ended range lists every year to MAX_YEAR, and a search lists the
# same few days' covers several times over (candidates, then the certain buckets).


@lru_cache(maxsize=4096)
def side_cover_from(side: str, first: date) -> tuple[str, ...]:
    """Tokens of ``side`` alone matching any day on or after ``first``."""
    if first.year > MAX_YEAR:
        return (f"{side}:Yafter",)
    if first.year < MIN_YEAR:
        return (f"{side}:Ybefore", *side_cover_from(side, date(MIN_YEAR, 1, 1)))
    last_day = calendar.monthrange(first.year, first.month)[1]
    found = [
        f"{side}:D{first.year:04d}-{first.month:02d}-{d:02d}"
        for d in range(first.day, last_day + 1)
    ]
    found += [f"{side}:M{first.year:04d}-{m:02d}" for m in range(first.month + 1, 13)]
    found += [f"{side}:Y{y:04d}" for y in range(first.year + 1, MAX_YEAR + 1)]
    found.append(f"{side}:Yafter")
    return tuple(found)


@lru_cache(maxsize=4096)
def side_cover_until(side: str, last: date) -> tuple[str, ...]:
    """Tokens of ``side`` alone matching any day on or before ``last``."""
    if last.year < MIN_YEAR:
        return (f"{side}:Ybefore",)
    if last.year > MAX_YEAR:
        return (*side_cover_until(side, date(MAX_YEAR, 12, 31)), f"{side}:Yafter")
    found = [f"{side}:Ybefore"]
    found += [f"{side}:Y{y:04d}" for y in range(MIN_YEAR, last.year)]
    found += [f"{side}:M{last.year:04d}-{m:02d}" for m in range(1, last.month)]
    found += [f"{side}:D{last.year:04d}-{last.month:02d}-{d:02d}" for d in range(1, last.day + 1)]
    return tuple(found)


def _earliest_day(moment: datetime, zone: tzinfo) -> date:
    """The earliest local day of any instant at or after ``moment``: its own day, or the
    day before where the clocks go back across midnight soon after (a zone's DST end)."""
    day = moment.astimezone(zone).date()
    later = (moment + timedelta(days=1)).astimezone(zone)
    if (later.utcoffset() or timedelta()) < (moment.astimezone(zone).utcoffset() or timedelta()):
        return day - timedelta(days=1)
    return day


def _latest_day(moment: datetime, zone: tzinfo) -> date:
    """The latest local day of any instant at or before ``moment`` (see _earliest_day)."""
    day = moment.astimezone(zone).date()
    earlier = (moment - timedelta(days=1)).astimezone(zone)
    if (earlier.utcoffset() or timedelta()) > (moment.astimezone(zone).utcoffset() or timedelta()):
        return day + timedelta(days=1)
    return day


def candidate_covers(prefix: Prefix, search: DateRange, zone: tzinfo) -> list[list[str]] | None:
    """Token sets that every match has a token in (each list one condition, all must hold).

    Local days only move forward with time, except where clocks go back across
    midnight: there a day of slack is added. ``None`` means no narrowing is possible
    (``ne``) and every value is a candidate.
    """
    assert search.low is not None and search.high is not None  # noqa: S101
    step = timedelta(microseconds=1)
    first = _earliest_day(search.low, zone)
    last = _latest_day(search.high - step, zone)
    open_end, open_start = [f"{END}:open"], [f"{START}:open"]
    if prefix is Prefix.EQ:
        return [cover_from(START, first), cover_until(END, last)]
    if prefix in (Prefix.GT, Prefix.GE):
        return [cover_from(END, first) + open_end]
    if prefix in (Prefix.LT, Prefix.LE):
        return [cover_until(START, last) + open_start]
    if prefix is Prefix.SA:
        return [cover_from(START, _earliest_day(search.high, zone))]
    if prefix is Prefix.EB:
        return [cover_until(END, _latest_day(search.low - step, zone))]
    if prefix is Prefix.AP:  # ends after the low edge and starts before the high edge
        return [cover_from(END, first) + open_end, cover_until(START, last) + open_start]
    return None
