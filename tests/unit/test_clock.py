"""HTTP dates as RFC 9110 gives them: what an ``Expires`` or ``Last-Modified`` carries."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from carevault.clock import http_date, to_micros


def test_an_http_date_is_an_imf_fixdate_of_the_second_below() -> None:
    at = datetime(2026, 12, 5, 2, 24, 37, 999_999, tzinfo=UTC)
    assert http_date(to_micros(at)) == "Sat, 05 Dec 2026 02:24:37 GMT"
    assert parsedate_to_datetime(http_date(to_micros(at))) == at.replace(microsecond=0)
