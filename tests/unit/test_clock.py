"""HTTP dates as RFC 9110 gives them: what an ``Expires`` or ``Last-Modified`` carries,
and what an ``If-Modified-Since`` may."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import pytest

from carevault.clock import http_date, read_http_date, to_micros


def test_an_http_date_is_an_imf_fixdate_of_the_second_below() -> None:
    at = datetime(2026, 12, 5, 2, 24, 37, 999_999, tzinfo=UTC)
    assert http_date(to_micros(at)) == "Sat, 05 Dec 2026 02:24:37 GMT"
    assert parsedate_to_datetime(http_date(to_micros(at))) == at.replace(microsecond=0)


@pytest.mark.parametrize(
    "text",
    [
        "Sun, 06 Nov 1994 08:49:37 GMT",
        " Sun, 06 Nov 1994 08:49:37 GMT ",
        # RFC 9110 5.6.7's obsolete forms, which a recipient must still read.
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
    ],
)
def test_an_http_date_is_read_in_each_of_its_three_forms(text: str) -> None:
    assert read_http_date(text) == to_micros(datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yesterday",
        "2026-12-05T10:00:00Z",
        # A list of two: a recipient ignores the field (RFC 9110 13.1.3).
        "Sun, 06 Nov 1994 08:49:37 GMT, Mon, 07 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 +0800",
        "Thu, 31 Feb 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 25:49:37 GMT",
        "sun, 06 nov 1994 08:49:37 gmt",
    ],
)
def test_what_is_not_one_http_date_reads_as_none(text: str) -> None:
    assert read_http_date(text) is None


def test_an_http_date_read_back_is_the_instant_written() -> None:
    at = to_micros(datetime(2026, 12, 5, 2, 24, 37, tzinfo=UTC))
    assert read_http_date(http_date(at + 999_999)) == at
