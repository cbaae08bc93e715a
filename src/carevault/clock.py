"""Time, injectable so tests can move it."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def to_micros(moment: datetime) -> int:
    """Microseconds since the Unix epoch: how instants are stored in the clear."""
    delta = moment.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    return datetime.fromtimestamp(micros / 1_000_000, UTC).replace(microsecond=micros % 1_000_000)


def fhir_instant(moment: datetime) -> str:
    """An instant as FHIR writes it, with millisecond precision and a zone."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def http_date(micros: int) -> str:
    """An instant as HTTP headers give one (``Expires``, ``Last-Modified``): RFC 9110
    5.6.7's IMF-fixdate, ``Sat, 05 Dec 2026 02:24:37 GMT``, to the whole second below.
    Not an ISO instant, which HTTP clients and caches cannot read; English day and month
    names whatever the process's locale."""
    return format_datetime(from_micros(micros - micros % 1_000_000), usegmt=True)


_DAY = "(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_MONTH = "(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_WEEKDAY = "(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
_TIME = r"\d{2}:\d{2}:\d{2}"
#: RFC 9110 5.6.7: the IMF-fixdate, and the two obsolete forms a recipient must still read
#: (RFC 850's, with the day's whole name and a two-digit year, and C's asctime), each whole.
_HTTP_DATE = re.compile(
    rf"{_DAY}, \d{{2}} {_MONTH} \d{{4}} {_TIME} GMT"
    rf"|{_WEEKDAY}, \d{{2}}-{_MONTH}-\d{{2}} {_TIME} GMT"
    rf"|{_DAY} {_MONTH} [ \d]\d {_TIME} \d{{4}}"
)


def read_http_date(text: str) -> int | None:
    """The instant an HTTP-date names (``If-Modified-Since``), in microseconds; None if
    ``text`` is not exactly one HTTP-date in one of RFC 9110's three forms (a list of
    two, an ISO instant, a day that does not exist): a recipient ignores such a field."""
    text = text.strip()
    if not _HTTP_DATE.fullmatch(text):
        return None
    try:
        moment = parsedate_to_datetime(text)
    except (ValueError, TypeError, OverflowError):
        return None
    # asctime names no zone: every HTTP-date is in GMT.
    return to_micros(moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
