"""Time, injectable so tests can move it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime

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


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
