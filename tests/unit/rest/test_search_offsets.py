"""Sealed offsets of identifier searches by roles that may not read government ids
(``rest/offsets.py``), and the paging links of a search whose total is withheld
(``rest/bundles.py``). Pure, no database."""

from __future__ import annotations

import secrets
from urllib.parse import parse_qs, urlsplit

import pytest

from carevault.fhir.outcome import FhirError
from carevault.rest import bundles, cursor, offsets

KEY = secrets.token_bytes(32)
BILLING = "staff:billing7"
PLAN = [("identifier", "urn:oid:2.16.344.1.99.7|FP-7781")]
NOW = 1_780_000_000


def test_a_sealed_offset_opens_for_the_caller_and_criteria_it_was_sealed_for() -> None:
    sealed = offsets.seal(KEY, BILLING, "Patient", PLAN, 40, NOW)
    assert offsets.is_sealed(sealed) and not sealed.isdigit()
    assert offsets.opened(KEY, BILLING, "Patient", PLAN, sealed, NOW) == 40


def test_every_sealed_offset_is_the_same_length_and_none_is_a_history_cursor() -> None:
    lengths = {len(offsets.seal(KEY, BILLING, "Patient", PLAN, at, NOW)) for at in (1, 20, 10**9)}
    assert lengths == {offsets.LENGTH} and offsets.LENGTH != cursor.LENGTH


def test_the_criteria_it_is_bound_to_leave_out_paging_and_the_order_sent() -> None:
    sent = [("_sort", "_id"), ("_count", "2"), *PLAN, ("_offset", "0")]
    assert offsets.criteria(sent) == [("_sort", "_id"), *PLAN]
    assert offsets.criteria(list(reversed(sent))) == offsets.criteria(sent)


@pytest.mark.parametrize(
    ("principal", "type_name", "bound"),
    [
        ("staff:billing8", "Patient", PLAN),
        (BILLING, "Coverage", PLAN),
        (BILLING, "Patient", [("identifier", "http://carevault.hk/sid/hkid|C668668(9)")]),
        (BILLING, "Patient", [*PLAN, ("_sort", "-_lastUpdated")]),
    ],
    ids=["another-caller", "another-type", "another-identifier", "another-sort"],
)
def test_a_sealed_offset_moved_to_another_search_is_refused(
    principal: str, type_name: str, bound: list[tuple[str, str]]
) -> None:
    """What lies before the offset was shown to that caller for those criteria only: on
    another identifier a page past it would say that records match, naming none."""
    sealed = offsets.seal(KEY, BILLING, "Patient", PLAN, 2, NOW)
    with pytest.raises(FhirError) as refused:
        offsets.opened(KEY, principal, type_name, bound, sealed, NOW)
    assert refused.value.status == 400


@pytest.mark.parametrize(
    "value",
    [
        "1",
        "A" * offsets.LENGTH,
        "!" * offsets.LENGTH,
        cursor.LENGTH * "A",
    ],
    ids=["a-position", "made-up", "not-base64", "history-length"],
)
def test_a_made_up_offset_is_refused(value: str) -> None:
    with pytest.raises(FhirError) as refused:
        offsets.opened(KEY, BILLING, "Patient", PLAN, value, NOW)
    assert refused.value.status == 400


def test_an_altered_offset_is_refused() -> None:
    sealed = offsets.seal(KEY, BILLING, "Patient", PLAN, 2, NOW)
    flipped = sealed[:-3] + ("A" if sealed[-3] != "A" else "B") + sealed[-2:]
    with pytest.raises(FhirError):
        offsets.opened(KEY, BILLING, "Patient", PLAN, flipped, NOW)
    with pytest.raises(FhirError):
        offsets.opened(secrets.token_bytes(32), BILLING, "Patient", PLAN, sealed, NOW)


def _links(**given: object) -> dict[str, dict[str, list[str]]]:
    links = bundles.paging_links("https://ehr.example.hk/fhir/Patient", PLAN, **given)  # type: ignore[arg-type]
    return {link["relation"]: parse_qs(urlsplit(link["url"]).query) for link in links}


def test_without_a_total_a_full_page_has_a_next_link_and_a_short_one_none() -> None:
    """The next link of a page whose total is withheld says only that the page was full:
    from a total, its presence told that one more record matched, unnamed."""
    sealing = {"count": 2, "total": None, "position": lambda at: f"sealed-{at}"}
    full = _links(offset=0, full=True, **sealing)
    assert full["next"]["_offset"] == ["sealed-2"]
    assert full["first"]["_offset"] == ["sealed-0"]
    assert "previous" not in full
    short = _links(offset=4, full=False, **sealing)
    assert "next" not in short
    assert short["previous"]["_offset"] == ["sealed-2"]
    assert short["self"]["_offset"] == ["sealed-4"]


def test_with_a_total_the_links_are_as_ever() -> None:
    links = _links(count=2, offset=2, total=5)
    assert links["next"]["_offset"] == ["4"] and links["previous"]["_offset"] == ["0"]
    assert "next" not in _links(count=2, offset=4, total=5, full=True)


def test_a_sealed_offset_pages_for_ten_minutes_only() -> None:
    """Replayed later, when records matching it were written or deleted, a position tells
    of records before it that no page named (review)."""
    sealed = offsets.seal(KEY, BILLING, "Patient", PLAN, 20, NOW)
    assert offsets.opened(KEY, BILLING, "Patient", PLAN, sealed, NOW + offsets.LIFETIME_S) == 20
    assert offsets.opened(KEY, BILLING, "Patient", PLAN, sealed, NOW - offsets.SKEW_S) == 20
    for later in (NOW + offsets.LIFETIME_S + 1, NOW - offsets.SKEW_S - 1):
        with pytest.raises(FhirError):
            offsets.opened(KEY, BILLING, "Patient", PLAN, sealed, later)


def test_a_cursor_opens_for_its_caller_and_criteria_and_is_neither_offset_nor_history() -> None:
    """The cursor of a search in the default order (integrator round 64): the page's last
    ``(last_updated_us, row_id)``, sealed under its own format and length."""
    after = (1_780_000_000_123_456, 9_223_372_036_854_775_807)
    sealed = offsets.seal_cursor(KEY, BILLING, "Patient", PLAN, after)
    assert offsets.opened_cursor(KEY, BILLING, "Patient", PLAN, sealed) == (*after, "")
    assert str(after[1]) not in sealed and len(sealed) == offsets.CURSOR_LENGTH
    assert offsets.is_cursor(sealed) and not offsets.is_sealed(sealed)
    assert offsets.CURSOR_LENGTH not in (offsets.LENGTH, cursor.LENGTH)
    assert len(offsets.seal_cursor(KEY, BILLING, "Patient", PLAN, (0, 1))) == len(sealed)
    offset = offsets.seal(KEY, BILLING, "Patient", PLAN, 2, NOW)
    for refused in (
        lambda: offsets.opened_cursor(KEY, "staff:billing8", "Patient", PLAN, sealed),
        lambda: offsets.opened_cursor(KEY, BILLING, "Coverage", PLAN, sealed),
        lambda: offsets.opened_cursor(KEY, BILLING, "Patient", [], sealed),
        lambda: offsets.opened_cursor(KEY, BILLING, "Patient", PLAN, "A" * len(sealed)),
        lambda: offsets.opened_cursor(KEY, BILLING, "Patient", PLAN, offset),
    ):
        with pytest.raises(FhirError) as error:
            refused()
        assert error.value.status == 400


def test_a_sorted_cursor_carries_the_id_and_opens_only_as_one() -> None:
    """The cursor of a search sorted by ``_id`` or ``_lastUpdated`` (stop 65): the page's
    last ``(last_updated_us, row_id, resource_id)``, sealed under a format and length of
    its own, so neither cursor is taken for the other."""
    after = (1_780_000_000_123_456, 9_223_372_036_854_775_807, "x" * 64)
    sealed = offsets.seal_cursor(KEY, BILLING, "Patient", PLAN, after, sorted_search=True)
    assert offsets.opened_cursor(KEY, BILLING, "Patient", PLAN, sealed, sorted_search=True) == after
    assert "x" * 8 not in sealed and offsets.is_cursor(sealed)
    assert len(sealed) not in (offsets.CURSOR_LENGTH, offsets.LENGTH, cursor.LENGTH)
    short = offsets.seal_cursor(KEY, BILLING, "Patient", PLAN, (0, 1, "a"), sorted_search=True)
    assert len(short) == len(sealed)
    plain = offsets.seal_cursor(KEY, BILLING, "Patient", PLAN, after[:2])
    for refused in (
        lambda: offsets.opened_cursor(KEY, BILLING, "Patient", PLAN, sealed),
        lambda: offsets.opened_cursor(KEY, BILLING, "Patient", PLAN, plain, sorted_search=True),
        lambda: offsets.opened_cursor(
            KEY, "staff:billing8", "Patient", PLAN, sealed, sorted_search=True
        ),
    ):
        with pytest.raises(FhirError) as error:
            refused()
        assert error.value.status == 400


def test_a_chart_cursor_carries_the_first_pages_time_and_reads_one_from_before() -> None:
    """``$everything``'s cursor (stop 66): the place of the page's last record and the
    settled time the first page was as of, under a format and length of its own; a
    cursor sealed before stop 66 in the default order's format is still read, with no
    time (the patient first, as it then was)."""
    chart = "Patient/p1/$everything"
    after, began = (1_780_000_000_123_456, 9_223_372_036_854_775_807), 1_780_000_000_999_999
    sealed = offsets.seal_chart_cursor(KEY, BILLING, chart, PLAN, after, began)
    assert offsets.opened_chart_cursor(KEY, BILLING, chart, PLAN, sealed) == (after, began)
    assert offsets.is_cursor(sealed) and str(began) not in sealed
    lengths = (offsets.CURSOR_LENGTH, offsets.SORTED_CURSOR_LENGTH, offsets.LENGTH, cursor.LENGTH)
    assert len(sealed) == offsets.CHART_CURSOR_LENGTH not in lengths
    subject = offsets.seal_chart_cursor(KEY, BILLING, chart, PLAN, (-1, -1), began)
    assert offsets.opened_chart_cursor(KEY, BILLING, chart, PLAN, subject) == ((-1, -1), began)
    before = offsets.seal_cursor(KEY, BILLING, chart, PLAN, after)
    assert offsets.opened_chart_cursor(KEY, BILLING, chart, PLAN, before) == (after, None)
    for refused in (
        lambda: offsets.opened_chart_cursor(KEY, BILLING, "Patient/p2/$everything", PLAN, sealed),
        lambda: offsets.opened_chart_cursor(KEY, "staff:billing8", chart, PLAN, sealed),
        lambda: offsets.opened_chart_cursor(KEY, BILLING, chart, [], before),
        lambda: offsets.opened_chart_cursor(KEY, BILLING, chart, PLAN, "A" * len(sealed)),
        lambda: offsets.opened_cursor(KEY, BILLING, chart, PLAN, sealed),
    ):
        with pytest.raises(FhirError) as error:
            refused()
        assert error.value.status == 400
