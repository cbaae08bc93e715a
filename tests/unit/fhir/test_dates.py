"""Date ranges, prefixes and the blind-token covers that narrow a date search."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carevault.fhir import dates
from carevault.fhir.dates import DateRange, Prefix

HK = ZoneInfo("Asia/Hong_Kong")


def test_precision_sets_the_range() -> None:
    assert dates.parse("2024", HK) == DateRange(
        datetime(2024, 1, 1, tzinfo=HK), datetime(2025, 1, 1, tzinfo=HK)
    )
    assert dates.parse("2024-12", HK).high == datetime(2025, 1, 1, tzinfo=HK)
    day = dates.parse("2024-02-29", HK)
    assert day.high is not None and day.low is not None
    assert day.high - day.low == timedelta(days=1)
    instant = dates.parse("2024-03-01T10:00:00Z", HK)
    assert instant.low == datetime(2024, 3, 1, 10, tzinfo=UTC)
    assert instant.high == datetime(2024, 3, 1, 10, 0, 1, tzinfo=UTC)
    fraction = dates.parse("2024-03-01T10:00:00.250+08:00", HK)
    assert fraction.low is not None and fraction.low.microsecond == 250_000


@pytest.mark.parametrize(
    "text", ["yesterday", "2024-13-01", "2024-02-30", "24-01-01", "2024-01-01T25:00:00Z", ""]
)
def test_invalid_dates_are_refused(text: str) -> None:
    with pytest.raises(dates.DateFormatError):
        dates.parse(text, HK)


def test_prefixes() -> None:
    assert dates.split_prefix("ge2024") == (Prefix.GE, "2024")
    assert dates.split_prefix("2024") == (Prefix.EQ, "2024")
    assert dates.split_prefix("ap2024") == (Prefix.AP, "2024")
    with pytest.raises(dates.DateFormatError):
        dates.split_prefix("xx2024")


NOW = datetime(2026, 12, 4, 14, 0, tzinfo=UTC)


def test_approximately_widens_by_a_tenth_of_the_gap_between_now_and_the_value() -> None:
    """R4 search: the recommended approximation for a date is 10% of the gap between now
    and the date, on either side of the value's own range."""
    past = dates.parse("2016-12-04T14:00:00Z", HK)  # ten years (3,652 days) before NOW
    assert past.low is not None and past.high is not None
    widened = dates.approximately(past, NOW)
    margin = (NOW - past.high) / 10
    assert widened == DateRange(past.low - margin, past.high + margin)
    assert timedelta(days=365) < margin < timedelta(days=366)
    future = dates.parse("2036-12", HK)
    assert future.low is not None and future.high is not None
    ahead = dates.approximately(future, NOW)
    assert ahead.low == future.low - (future.low - NOW) / 10
    assert ahead.high == future.high + (future.low - NOW) / 10
    # A value whose range holds now is approximately itself.
    today = dates.parse("2026-12-04", HK)
    assert dates.approximately(today, NOW) == today


def test_approximately_matches_a_value_that_overlaps_the_widened_range() -> None:
    search = dates.approximately(dates.parse("2016-06-01", HK), NOW)
    assert dates.matches(Prefix.AP, search, dates.parse("2016-01-15", HK))
    assert dates.matches(Prefix.AP, search, dates.parse("2017-03-01", HK))
    assert not dates.matches(Prefix.AP, search, dates.parse("2014-01-15", HK))
    assert not dates.matches(Prefix.AP, search, dates.parse("2018-06-01", HK))
    # A period overlapping the range, or open towards it, is approximately there.
    assert dates.matches(Prefix.AP, search, dates.value_range({"start": "2010-01-01"}, HK))
    assert dates.matches(
        Prefix.AP, search, dates.value_range({"start": "2012", "end": "2015-12"}, HK)
    )
    assert not dates.matches(Prefix.AP, search, dates.value_range({"end": "2012"}, HK))


def test_period_without_end_is_open() -> None:
    found = dates.value_range({"start": "2020-01-01"}, HK)
    assert found is not None and found.high is None
    assert dates.tokens(found, HK)[-1] == "e:open"
    assert dates.value_range({"start": "garbage"}, HK) is None
    assert dates.value_range(42, HK) is None


def test_comparison_follows_the_spec_on_ranges() -> None:
    march = dates.parse("2024-03", HK)
    day = dates.parse("2024-03-10", HK)
    straddles = DateRange(datetime(2024, 2, 20, tzinfo=HK), datetime(2024, 3, 5, tzinfo=HK))
    assert dates.matches(Prefix.EQ, march, day)
    assert not dates.matches(Prefix.EQ, march, straddles)
    assert dates.matches(Prefix.NE, march, straddles)
    assert dates.matches(Prefix.LT, march, straddles)
    assert not dates.matches(Prefix.GT, march, straddles)
    assert dates.matches(Prefix.GE, march, day)
    assert dates.matches(Prefix.SA, dates.parse("2024-02", HK), day)
    assert dates.matches(Prefix.EB, dates.parse("2024-04", HK), day)


BOUNDS = st.datetimes(
    min_value=datetime(1800, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)
SEARCH_TEXT = st.one_of(
    st.dates(min_value=date(1845, 1, 1), max_value=date(2160, 1, 1)).map(lambda d: d.isoformat()),
    st.integers(1845, 2160).map(str),
    st.tuples(st.integers(1845, 2160), st.integers(1, 12)).map(lambda ym: f"{ym[0]}-{ym[1]:02d}"),
)


@st.composite
def targets(draw: st.DrawFn) -> DateRange:
    low = draw(st.one_of(st.none(), BOUNDS))
    length = draw(st.one_of(st.none(), st.timedeltas(timedelta(seconds=1), timedelta(days=800))))
    if low is None:
        high = draw(st.one_of(st.none(), BOUNDS))
        return DateRange(None, high)
    return DateRange(low, None if length is None else low + length)


@settings(max_examples=400, deadline=None)
@given(targets(), SEARCH_TEXT, st.sampled_from([p for p in Prefix if p is not Prefix.NE]))
def test_every_match_carries_a_token_of_every_cover(
    target: DateRange, text: str, prefix: Prefix
) -> None:
    """The blind-token covers never lose a match (they may let extra candidates through)."""
    search = dates.parse(text, HK)
    covers = dates.candidate_covers(prefix, search, HK)
    assert covers is not None
    stored = set(dates.tokens(target, HK))
    if dates.matches(prefix, search, target):
        for cover in covers:
            assert stored & set(cover), (target, text, prefix)


def test_ne_cannot_be_narrowed() -> None:
    assert dates.candidate_covers(Prefix.NE, dates.parse("2024", HK), HK) is None


@settings(max_examples=400, deadline=None)
@given(
    st.data(),
    SEARCH_TEXT,
    st.sampled_from([p for p in Prefix if p is not Prefix.NE]),
    st.sampled_from([HK, UTC, ZoneInfo("America/Sao_Paulo")]),
)
def test_an_instant_is_in_the_window_exactly_when_its_range_matches(
    data: st.DataObject, text: str, prefix: Prefix, zone: ZoneInfo
) -> None:
    """A store that compares instants in SQL (the ledger's, for the AuditEvent search)
    finds what ``matches`` finds: an instant, known to the microsecond, lies in the
    prefix's window exactly when its range [t, t + 1 µs) matches, at the edges too."""
    search = dates.parse(text, zone)
    if prefix is Prefix.AP:
        search = dates.approximately(search, NOW)
    assert search.low is not None and search.high is not None
    step = timedelta(microseconds=1)
    edges = [search.low - step, search.low, search.high - step, search.high]
    moment = data.draw(st.one_of(st.sampled_from(edges), BOUNDS))
    window = dates.instant_window(prefix, search)
    inside = (window.low is None or window.low <= moment) and (
        window.high is None or moment < window.high
    )
    assert inside == dates.matches(prefix, search, DateRange(moment, moment + step))


def test_ne_has_no_one_instant_window() -> None:
    with pytest.raises(ValueError, match="outside the eq window"):
        dates.instant_window(Prefix.NE, dates.parse("2024", HK))


def test_a_value_within_a_day_stores_point_tokens() -> None:
    assert dates.tokens(dates.parse("1980-05-01", HK), HK) == [
        "p:Y1980",
        "p:M1980-05",
        "p:D1980-05-01",
    ]
    far = dates.tokens(dates.parse("1700-01-01", HK), HK)
    assert far == ["p:Ybefore"]


# --- the bounds of what the store holds --------------------------------------------------

ZONES = st.sampled_from([UTC, HK, ZoneInfo("Pacific/Kiritimati"), ZoneInfo("Etc/GMT+12")])


@st.composite
def any_fhir_date(draw: st.DrawFn) -> str:
    """Any well-formed FHIR date, dateTime or instant, years 0001 to 9999."""
    year = draw(st.integers(1, 9999))
    month = draw(st.integers(1, 12))
    day = draw(st.integers(1, 28))
    shape = draw(st.integers(0, 4))
    if shape == 0:
        return f"{year:04d}"
    if shape == 1:
        return f"{year:04d}-{month:02d}"
    if shape == 2:
        return f"{year:04d}-{month:02d}-{day:02d}"
    hour, minute = draw(st.integers(0, 23)), draw(st.integers(0, 59))
    zone = draw(st.sampled_from(["", "Z", "+14:00", "-12:00", "+08:00"]))
    fraction = ".999999" if shape == 4 else ""
    return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:59{fraction}{zone}"


@settings(max_examples=600, deadline=None)
@given(any_fhir_date(), ZONES, st.sampled_from(list(Prefix)))
def test_any_date_parses_or_is_refused_as_out_of_range_never_overflowing(
    text: str, zone: ZoneInfo, prefix: Prefix
) -> None:
    """9999-12-31 and 0001-01-01 once raised OverflowError (a 500): a date is either in the
    store's years and fully usable (range, tokens, covers), or refused as out of range."""
    year = int(text[:4])
    if not dates.EARLIEST_YEAR <= year <= dates.LATEST_YEAR:
        with pytest.raises(dates.DateOutOfRange):
            dates.parse(text, zone)
        assert not dates.year_in_range(text)
        assert dates.value_range(text, zone) is None
        return
    assert dates.year_in_range(text)
    found = dates.parse(text, zone)
    assert found.low is not None and found.high is not None and found.low < found.high
    assert dates.tokens(found, zone)
    dates.candidate_covers(prefix, found, zone)
    assert dates.matches(Prefix.EQ, found, found)


@pytest.mark.parametrize("text", ["9999-12-31", "0001-01-01", "9999", "0999-12-31T23:59:59Z"])
def test_the_sentinels_an_attacker_sent_are_out_of_range(text: str) -> None:
    with pytest.raises(dates.DateOutOfRange):
        dates.parse(text, HK)


@pytest.mark.parametrize("text", ["1000-01-01", "8999-12-31", "8999-12-31T23:59:59-12:00"])
def test_the_edges_of_the_range_are_usable(text: str) -> None:
    found = dates.parse(text, HK)
    assert dates.tokens(found, HK)
    assert dates.candidate_covers(Prefix.GE, found, HK)
