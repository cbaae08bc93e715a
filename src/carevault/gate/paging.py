"""Pages of one record's versions (instance history): where a page starts, and where
the pages before and after it start, named by version number, never by position.

A page of an instance history starts at a version number a link of the server's gave
(sealed, ``rest/cursor.py``): the newest version the caller may read at or below it.
Versions are numbered in the order they were written, so a version written after the
first page is above every later page's start and in none of them, and a version that
left the caller's reach between pages (judged again on each page) shifts nothing: a
position among the versions the caller may read would then skip as many as had left
before it. Pure: tested without a database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from carevault.vault.records import Opened


@dataclass(frozen=True)
class Cut:
    """Where a page lies among the versions (newest first): ``begin`` to ``end`` (indexes),
    and the version numbers the previous and next pages start at (None: there is none)."""

    begin: int
    end: int
    previous: int | None
    following: int | None


def cut(version_ids: Sequence[int], start: int | None, count: int | None) -> Cut:
    """The page of up to ``count`` (None: every one) of ``version_ids`` (newest first)
    from the newest at or below ``start`` (None: the newest of all). A page of none
    (``_count=0``) has no next page: it would start where it did."""
    newer = () if start is None else (number for number in version_ids if number > start)
    begin = sum(1 for _ in newer)
    end = len(version_ids) if count is None else min(begin + count, len(version_ids))
    following = version_ids[end] if begin < end < len(version_ids) else None
    back = begin if count is None else count
    previous = version_ids[max(0, begin - back)] if begin > 0 and back else None
    return Cut(begin, end, previous, following)


@dataclass(frozen=True)
class VersionPage:
    """A page of one record's history: the versions (newest first), how many the caller
    may read in all (as of the answer's instant), and the version numbers the previous
    and next pages start at (None: there is none)."""

    versions: list[Opened]
    total: int
    previous: int | None = None
    following: int | None = None


#: Where the patient stands in their own ``$everything``: first, before every record.
SUBJECT_PLACE = (-1, -1)


def chart_place(
    last_updated_us: int, row_id: int, subject_row: int, began_us: int | None
) -> tuple[int, int]:
    """Where a record of a patient's chart stands in ``$everything``'s order: the patient
    (``subject_row``) first, then every other record where it was last written, as a
    search's default order, so that a record written or deleted while a client pages
    moves none past a page (stop 65): one written comes after every page passed.

    The patient stands first only if last written by ``began_us``, the settled time the
    answer's first page was as of (None: first whatever, as a cursor sealed before stop
    66 had it); written after, the patient is a record written while the client pages,
    and comes where it was written, after every page passed, in its new version (it was
    pinned first, before every cursor, and never listed again: integrator round 66)."""
    if row_id == subject_row and (began_us is None or last_updated_us <= began_us):
        return SUBJECT_PLACE
    return (last_updated_us, row_id)


def chart_cut(
    places: Sequence[tuple[int, int]],
    offset: int,
    after: tuple[int, int] | None,
    count: int | None,
) -> tuple[int, int]:
    """Where a page of ``places`` (in order) lies: from ``offset``, or where a cursor
    left off (the first place strictly after ``after``), ``count`` of them (None: the
    rest)."""
    begin = offset if after is None else sum(1 for place in places if place <= after)
    return begin, len(places) if count is None else min(begin + count, len(places))


@dataclass(frozen=True)
class ChartPage:
    """A page of a patient's ``$everything``: the records shown, how many the caller may
    read in all, how many stand before the page, and the place of its last record (where
    the next page starts; None: the page is empty)."""

    records: list[Opened]
    total: int
    offset: int
    following: tuple[int, int] | None
