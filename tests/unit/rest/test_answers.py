"""One reading of ``Prefer: return=``, ``If-None-Match`` and ``If-Modified-Since`` for a
request on its own and for a Bundle entry (``rest/answers.py``): pure, no database."""

from __future__ import annotations

import pytest

from carevault.clock import http_date
from carevault.rest.answers import (
    WriteAnswer,
    not_modified,
    prefer_return,
    preferences,
    write_answer,
)
from carevault.rest.interactions import FhirResponse
from carevault.vault.records import Head

HEAD = Head(1, "Patient", "p-1", 2, 0, False, None, "clinic-1", None)
BODY = b'{"resourceType":"Patient","id":"p-1"}'


@pytest.mark.parametrize(
    ("header", "returning"),
    [
        (None, None),
        ("", None),
        ("handling=strict", None),
        ("return=minimal", "minimal"),
        ("return=representation", "representation"),
        ("return=OperationOutcome", "OperationOutcome"),
        ('handling=lenient; return="minimal"', "minimal"),
        # Two lines of the header, joined by a comma as RFC 7240 reads them.
        ("handling=strict, return=minimal", "minimal"),
        ("Return=minimal, return=representation", "minimal"),
    ],
)
def test_the_return_preference_is_read_from_prefer(
    header: str | None, returning: str | None
) -> None:
    assert prefer_return(header) == returning


@pytest.mark.parametrize(
    ("header", "found"),
    [
        ("respond-async", {"respond-async": ""}),
        ("Respond-Async, handling=STRICT", {"respond-async": "", "handling": "STRICT"}),
        ("respond-async; wait=10", {"respond-async": "", "wait": "10"}),
        ("handling=strict,handling=lenient", {"handling": "strict"}),
        (" , ;", {}),
    ],
)
def test_each_preference_is_read_once_by_its_name(header: str, found: dict[str, str]) -> None:
    assert preferences(header) == found


def test_minimal_answers_nothing_and_representation_the_writers_version() -> None:
    assert write_answer(HEAD, BODY, "minimal") == WriteAnswer()
    assert write_answer(HEAD, BODY, "representation") == WriteAnswer(resource=BODY)


@pytest.mark.parametrize(
    ("body", "returning"), [(BODY, "OperationOutcome"), (None, "representation")]
)
def test_a_writer_who_asks_for_it_or_may_not_read_is_told_saved(
    body: bytes | None, returning: str
) -> None:
    answer = write_answer(HEAD, body, returning)

    assert answer.resource is None and answer.outcome is not None
    assert answer.outcome["issue"] == [
        {
            "severity": "information",
            "code": "informational",
            "diagnostics": "Patient/p-1 saved as version 2",
        }
    ]


READ = FhirResponse(200, BODY, {"ETag": 'W/"2"', "Last-Modified": "x", "Content-Type": "y"})


@pytest.mark.parametrize("tag", ['W/"2"', '"2"', ' W/"1", W/"2" ', "*"])
def test_the_version_held_is_not_modified(tag: str) -> None:
    answer = not_modified(tag, READ)

    assert answer.status == 304 and answer.body is None
    assert answer.headers == {"ETag": 'W/"2"', "Last-Modified": "x"}


@pytest.mark.parametrize("tag", [None, 'W/"1"', '"3"', "W/2"])
def test_another_version_or_none_named_is_answered_in_full(tag: str | None) -> None:
    assert not_modified(tag, READ) is READ


def test_only_a_successful_versioned_answer_is_ever_304() -> None:
    assert not_modified("*", FhirResponse(200, BODY)).status == 200
    assert not_modified("*", FhirResponse(404, BODY, {"ETag": 'W/"2"'})).status == 404


WRITTEN_US = 1_796_500_000_000_000  # a whole second
NOW_US = WRITTEN_US + 3_600_000_000
DATED = FhirResponse(200, BODY, {"ETag": 'W/"2"', "Last-Modified": http_date(WRITTEN_US + 250_000)})


@pytest.mark.parametrize("since_us", [WRITTEN_US + 1_000_000, NOW_US])
def test_a_version_written_before_the_date_given_is_not_modified(since_us: int) -> None:
    answer = not_modified(None, DATED, since_us, NOW_US)

    assert answer.status == 304 and answer.body is None
    assert answer.headers["ETag"] == 'W/"2"'


@pytest.mark.parametrize(
    "since_us",
    [
        # The second it was written in: another write may have come within it.
        WRITTEN_US,
        WRITTEN_US + 999_999,
        WRITTEN_US - 1_000_000,
        # A client's clock ahead of the server's: a later change would go unseen.
        NOW_US + 1,
        None,
    ],
)
def test_a_date_not_after_the_versions_second_or_in_the_future_is_answered_in_full(
    since_us: int | None,
) -> None:
    assert not_modified(None, DATED, since_us, NOW_US) is DATED


def test_if_none_match_outranks_the_date() -> None:
    since = WRITTEN_US + 2_000_000
    assert not_modified('W/"1"', DATED, since, NOW_US) is DATED
    assert not_modified('W/"2"', DATED, WRITTEN_US, NOW_US).status == 304
