"""Date tokens that settle a match: a token from the certain set is carried only by
values that match, and every match carries a token of each cover (property tests
against the exact comparison)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from carevault.fhir import dates
from carevault.fhir.date_certain import certain_tokens
from carevault.fhir.dates import DateRange, Prefix

ZONE = ZoneInfo("Asia/Hong_Kong")
#: Zones whose clocks went back (or forward) across midnight: local days that overlap.
ZONES = st.sampled_from(
    [ZONE, ZoneInfo("America/Sao_Paulo"), ZoneInfo("America/Havana"), ZoneInfo("UTC")]
)

_DAY = st.dates(min_value=datetime(1840, 1, 1).date(), max_value=datetime(2160, 12, 31).date())
_PRECISIONS = ("year", "month", "day", "minute", "second-utc", "day-utc-offset")


def _text(day: object, precision: str, minute: int) -> str:
    assert isinstance(day, type(datetime(2000, 1, 1).date()))
    if precision == "year":
        return f"{day:%Y}"
    if precision == "month":
        return f"{day:%Y-%m}"
    if precision == "day":
        return f"{day:%Y-%m-%d}"
    clock = f"{minute // 60:02d}:{minute % 60:02d}"
    if precision == "minute":
        return f"{day:%Y-%m-%d}T{clock}"
    if precision == "second-utc":
        return f"{day:%Y-%m-%d}T{clock}:30Z"
    return f"{day:%Y-%m-%d}T{clock}:00-05:00"


_MOMENT = st.builds(
    _text, _DAY, st.sampled_from(_PRECISIONS), st.integers(min_value=0, max_value=1439)
)


@st.composite
def _values(draw: st.DrawFn) -> DateRange:
    """A stored value: a date or instant, or a Period (maybe open on one side)."""
    kind = draw(st.sampled_from(("point", "period", "open-start", "open-end")))
    first = dates.parse(draw(_MOMENT), ZONE)
    if kind == "point":
        return first
    if kind == "open-start":
        return DateRange(None, first.high)
    if kind == "open-end":
        return DateRange(first.low, None)
    assert first.low is not None
    length = timedelta(minutes=draw(st.integers(min_value=1, max_value=3 * 366 * 24 * 60)))
    return DateRange(first.low, first.low + length)


@settings(max_examples=3000, deadline=None)
@given(value=_values(), prefix=st.sampled_from(list(Prefix)), searched=_MOMENT, zone=ZONES)
def test_certain_tokens_only_on_matches_and_covers_hold_every_match(
    value: DateRange, prefix: Prefix, searched: str, zone: ZoneInfo
) -> None:
    search = dates.parse(searched, zone)
    stored = set(dates.tokens(value, zone))
    matched = dates.matches(prefix, search, value)
    if stored & certain_tokens(prefix, search, zone):
        assert matched, (value, prefix, searched)
    if matched:
        for cover in dates.candidate_covers(prefix, search, zone) or ():
            assert stored & set(cover), (value, prefix, searched)


def test_a_whole_day_range_settles_every_day_but_the_slack_one() -> None:
    search = dates.parse("1990-01-01", ZONE)
    certain = certain_tokens(Prefix.GE, search, ZONE)
    assert "p:D1990-01-01" in certain and "p:Y1991" in certain and "p:Yafter" in certain
    assert "p:D1989-12-31" not in certain and "p:Y1990" not in certain
    # A birth date on the first day matches without decrypting it.
    born = dates.parse("1990-01-01", ZONE)
    assert set(dates.tokens(born, ZONE)) & certain


def test_an_instant_search_leaves_its_own_day_to_the_exact_comparison() -> None:
    search = dates.parse("2026-12-01T10:00:00+08:00", ZONE)
    certain = certain_tokens(Prefix.GE, search, ZONE)
    assert "p:D2026-12-01" not in certain
    assert "p:D2026-12-02" in certain
    at_nine = DateRange(
        datetime(2026, 12, 1, 1, tzinfo=UTC), datetime(2026, 12, 1, 1, 1, tzinfo=UTC)
    )
    assert not set(dates.tokens(at_nine, ZONE)) & certain


def test_a_day_that_repeats_its_last_hour_is_still_settled_exactly() -> None:
    """São Paulo's clocks went back from 00:00 to 23:00 on 18 February 2018: an hour of
    instants carries the 17th's tokens after the 18th has begun once."""
    zone = ZoneInfo("America/Sao_Paulo")
    start = datetime(2018, 2, 18, 0, 0, tzinfo=UTC)
    values = [
        DateRange(start + timedelta(minutes=m), start + timedelta(minutes=m, seconds=1))
        for m in range(0, 8 * 60, 7)
    ]
    searches = [
        "2018-02-17",
        "2018-02-18",
        "2018-02-17T23:30",
        "2018-02-18T02:59:00Z",
        "2018-02-18T03:00:00Z",
    ]
    for text in searches:
        search = dates.parse(text, zone)
        for prefix in Prefix:
            certain = certain_tokens(prefix, search, zone)
            covers = dates.candidate_covers(prefix, search, zone) or []
            for value in values:
                stored = set(dates.tokens(value, zone))
                matched = dates.matches(prefix, search, value)
                assert not (stored & certain) or matched, (text, prefix, value)
                assert not matched or all(stored & set(cover) for cover in covers)
