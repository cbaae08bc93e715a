"""Pages of one record's versions (``gate/paging.py``): cut by version number, so a
version written or gone between pages shifts nothing. Pure, no database."""

from __future__ import annotations

from carevault.gate.paging import SUBJECT_PLACE, Cut, chart_cut, chart_place, cut

TWENTY_FIVE = list(range(25, 0, -1))


def test_twenty_five_versions_by_ten_are_three_pages_holding_each_once() -> None:
    first = cut(TWENTY_FIVE, None, 10)
    second = cut(TWENTY_FIVE, first.following, 10)
    third = cut(TWENTY_FIVE, second.following, 10)
    assert (first, second, third) == (
        Cut(0, 10, None, 15),
        Cut(10, 20, 25, 5),
        Cut(20, 25, 15, None),
    )
    pages = [TWENTY_FIVE[page.begin : page.end] for page in (first, second, third)]
    assert [number for page in pages for number in page] == TWENTY_FIVE


def test_a_page_starts_at_the_newest_version_at_or_below_its_start() -> None:
    """Version 15 left the caller's reach between pages: the page that was to start at it
    starts at 14, where a position among what the caller may read would skip one."""
    readable = [number for number in TWENTY_FIVE if number != 15]
    assert readable[cut(readable, 15, 10).begin] == 14
    assert cut(readable, 15, 10).previous == 25


def test_the_last_page_and_an_empty_one_have_no_next() -> None:
    assert cut([3, 2, 1], 1, 10) == Cut(2, 3, 3, None)
    assert cut([3, 2, 1], None, 0).following is None
    assert cut([], None, 10) == Cut(0, 0, None, None)
    assert cut([3, 2, 1], None, None) == Cut(0, 3, None, None)


def test_a_page_without_a_count_holds_every_version_from_its_start() -> None:
    assert cut([5, 4, 3, 2, 1], 3, None) == Cut(2, 5, 5, None)


def test_a_chart_page_after_a_cursor_starts_at_the_first_record_after_it() -> None:
    """``$everything`` (stop 65): the patient first, then by when each was written; a
    cursor's page starts after its place whatever was deleted before it."""
    assert chart_place(5, 7, subject_row=7, began_us=5) == SUBJECT_PLACE
    places = [SUBJECT_PLACE, (10, 1), (10, 4), (30, 2)]
    assert chart_place(10, 4, subject_row=7, began_us=5) == places[2]
    assert chart_cut(places, 1, None, 2) == (1, 3)
    assert chart_cut(places, 0, SUBJECT_PLACE, 2) == (1, 3)
    # The record at (10, 1) deleted: the page after it starts where it stood.
    assert chart_cut(places[:1] + places[2:], 0, (10, 1), 2) == (1, 3)
    assert chart_cut(places, 0, (30, 2), None) == (4, 4)
    assert chart_cut(places, 0, (10, 4), 5) == (3, 4)


def test_a_patient_written_after_the_first_page_stands_where_it_was_written() -> None:
    """Stop 66: the patient is first only if last written by the time the answer's first
    page was as of; written after, it comes where it was written, after every page
    passed, in its new version. None (a cursor sealed before stop 66): first."""
    assert chart_place(40, 7, subject_row=7, began_us=40) == SUBJECT_PLACE
    assert chart_place(41, 7, subject_row=7, began_us=40) == (41, 7)
    assert chart_place(41, 7, subject_row=7, began_us=None) == SUBJECT_PLACE
    # Another record's place never depends on it.
    assert chart_place(41, 3, subject_row=7, began_us=40) == (41, 3)
    assert chart_place(39, 3, subject_row=7, began_us=None) == (39, 3)
