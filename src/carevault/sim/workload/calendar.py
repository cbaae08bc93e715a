"""Working days of the clinic group: weekends and Hong Kong general holidays.

The table lists the general holidays other than Sundays, as the General Holidays
Ordinance (Cap. 149) sets them: a holiday falling on a Sunday moves to the next day
that is not itself a holiday, and when one of the first three days of the Lunar New
Year is a Sunday the fourth day is the holiday instead. The 2026 dates are those the
government gazetted; the 2027 dates follow the same rules from the lunar calendar.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

HK_GENERAL_HOLIDAYS: dict[date, str] = {
    date(2026, 1, 1): "The first day of January",
    date(2026, 2, 17): "Lunar New Year's Day",
    date(2026, 2, 18): "The second day of Lunar New Year",
    date(2026, 2, 19): "The third day of Lunar New Year",
    date(2026, 4, 3): "Good Friday",
    date(2026, 4, 4): "The day following Good Friday",
    date(2026, 4, 6): "Easter Monday",
    date(2026, 4, 7): "The day following Ching Ming Festival",
    date(2026, 5, 1): "Labour Day",
    date(2026, 5, 25): "The day following the Birthday of the Buddha",
    date(2026, 6, 19): "Tuen Ng Festival",
    date(2026, 7, 1): "Hong Kong Special Administrative Region Establishment Day",
    date(2026, 9, 26): "The day following the Chinese Mid-Autumn Festival",
    date(2026, 10, 1): "National Day",
    date(2026, 10, 19): "The day following Chung Yeung Festival",
    date(2026, 12, 25): "Christmas Day",
    date(2026, 12, 26): "The first weekday after Christmas Day",
    date(2027, 1, 1): "The first day of January",
    date(2027, 2, 6): "Lunar New Year's Day",
    date(2027, 2, 8): "The third day of Lunar New Year",
    date(2027, 2, 9): "The fourth day of Lunar New Year",
    date(2027, 3, 26): "Good Friday",
    date(2027, 3, 27): "The day following Good Friday",
    date(2027, 3, 29): "Easter Monday",
    date(2027, 4, 5): "Ching Ming Festival",
    date(2027, 5, 1): "Labour Day",
    date(2027, 5, 13): "The Birthday of the Buddha",
    date(2027, 6, 9): "Tuen Ng Festival",
    date(2027, 7, 1): "Hong Kong Special Administrative Region Establishment Day",
    date(2027, 9, 16): "The day following the Chinese Mid-Autumn Festival",
    date(2027, 10, 1): "National Day",
    date(2027, 10, 8): "Chung Yeung Festival",
    date(2027, 12, 25): "Christmas Day",
    date(2027, 12, 27): "The first weekday after Christmas Day",
}
FIRST_YEAR, LAST_YEAR = 2026, 2027


class DayKind(StrEnum):
    """How a clinic works on a day: full weekday sessions, a Saturday morning, a Sunday or
    holiday rota (one general practitioner per clinic, mornings only), or closed."""

    WEEKDAY = "weekday"
    SATURDAY = "saturday"
    ROTA = "rota"


def holiday(day: date) -> str | None:
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise ValueError(
            f"the holiday table covers {FIRST_YEAR}-{LAST_YEAR}; {day.isoformat()} is outside it"
        )
    return HK_GENERAL_HOLIDAYS.get(day)


def day_kind(day: date) -> DayKind:
    if day.weekday() == 6 or holiday(day) is not None:
        return DayKind.ROTA
    if day.weekday() == 5:
        return DayKind.SATURDAY
    return DayKind.WEEKDAY


def is_working_day(day: date) -> bool:
    """A full working day (Monday to Friday, not a holiday): what "within N working days"
    counts."""
    return day_kind(day) is DayKind.WEEKDAY


def month_end(day: date) -> bool:
    """The last working day of its month: when billing runs."""
    following = date.fromordinal(day.toordinal() + 1)
    while following.month == day.month and not is_working_day(following):
        following = date.fromordinal(following.toordinal() + 1)
    return is_working_day(day) and following.month != day.month
