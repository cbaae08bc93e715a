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
