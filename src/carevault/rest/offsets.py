"""Sealed offsets: where the next page of a search starts, for a caller who may not be
told positions it has not been shown.

A role that may not read government ids searches by identifier only for the records it
matches, named in the ledger and charged to the release budget (``gate/core.py:
withholds_counts``). A page asked at a position the caller chose tells what lies before
it without naming it: a page at ``_offset=k`` with entries says that k records before
them match, and nothing names those. So such a search moves on only by the server's own links:
the offset of a next (or previous) link is sealed here, and a sealed offset is issued
only after every record before it was shown to that caller, on pages of the same
criteria, each named in the ledger. What a page reached by one can then reveal is either
named (its entries) or that nothing more matches.

The offset goes out encrypted and authenticated (AES-GCM under the vault's paging key,
the one history cursors use; ``rest/cursor.py``), padded to one length, bound to the
caller's principal, the resource type and the search's criteria (every applied
parameter but ``_count`` and ``_offset``, in a fixed order): replayed by anyone else, on
another identifier, another sort or another type, or altered, it is refused (400); so
is one issued more than ``LIFETIME_S`` ago. Within that time, when records matching the
criteria were written or deleted meanwhile, it starts at the same position among what
matches then, so the page may repeat a record already named or pass over one not yet
shown (never one the caller was not let see: each entry is still judged and named as it
leaves); replayed later (a record deleted, two written: the page would show the second,
after one no page named) it is refused.

Cursors: a search in the default order (no ``_sort``, and not one that withholds counts)
moves on by where its last page ended, not by a position: the next link's ``_offset``
seals the ``(last_updated_us, row_id)`` of the page's last entry, under its own format,
bound as a sealed offset is (the caller's principal, the resource type, the criteria).
The page it asks holds the matches strictly after that entry: a record updated or
deleted on an earlier page moves no later one back past the page (a position did: each
update skipped one record, round 64 of the integrators), and one updated comes again,
at the end, in its new version. A cursor names a point in an order the caller was shown
up to, not a count of what lies before it, so it has no lifetime: replayed later it
asks what a search by ``_lastUpdated`` would. Its page's other links count positions
as they stand when it is read.

A search sorted by ``_id`` and ``_lastUpdated`` alone (stop 65) moves on by a cursor in
its own order: the page's last ``(last_updated_us, row_id, resource_id)``, under a
format and length of its own, bound as any cursor is (the criteria hold the sort and its
direction). These are values every entry shows in the clear. A sort by a date pages by
position: of patient data (a birth date, encrypted), its cursor would carry the date of
the caller's last record shown, a record's value in a link that proxies, logs and
histories keep, sealed or not; a directory's clear date (a Slot's start) is not in the
record's head, and was left to positions with them.
``Patient/$everything`` pages by a cursor of its own (stop 66): the place of the page's
last record in the chart's order (``gate/paging.chart_place``) and the settled time its
first page was as of (the patient stands first only if last written by then), bound to
``Patient/<id>/$everything`` in place of a type. One sealed before stop 66 in the
default order's format is still read, as the patient first.

On PostgreSQL a page that moves on by cursor in the order records were written (the
default, ``_lastUpdated``) is read as of a settled time (``Gate.cursor_now``), listing
only what was written by then: writes run side by side there, and one stamped before
the page's last record but committed after the page was read would lie behind its
cursor, in no page (integrator round 66). Every write not committed by the settled time
stamps after it, so after the cursor: it comes at the end.
"""

from __future__ import annotations

from collections.abc import Sequence

from carevault.fhir import jsonio
from carevault.fhir.outcome import FhirError, bad_request
from carevault.fhir.query import SearchQuery
from carevault.rest import sealing

_FORMAT = b"\x03"
#: The offset and when it was issued (seconds), as digits, padded with spaces: every
#: sealed offset is the same length.
_OFFSET_BYTES = 34  # with the format, nonce and tag, 63 bytes: base64url with no spare bits
#: How long a sealed offset pages (seconds): replayed later, once records matching its
#: criteria were written or deleted, a position would tell of records before it that no
#: page named (a record deleted, two written: the page shows the second, after one
#: never shown). Within it, paging is what a client does at once (review).
LIFETIME_S = 600
#: How far ahead another server process's clock may be (behind a load balancer, the page
#: after may be served by another host).
SKEW_S = 30
LENGTH = sealing.sealed_length(_OFFSET_BYTES)
#: Parameters a sealed offset is not bound to: the page's size may change between pages
#: (what lies before the offset was shown whatever the size), and the offset is itself.
_PAGING = frozenset({"_count", "_offset"})


def criteria(applied: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The parameters a sealed offset is bound to: every applied one but the paging, in
    a fixed order (a client may send them in any)."""
    return sorted((name, value) for name, value in applied if name not in _PAGING)


def _binding(principal: str, type_name: str, bound: Sequence[tuple[str, str]]) -> bytes:
    return jsonio.dumps(["search", principal, type_name, [list(p) for p in bound]])


def is_sealed(value: str) -> bool:
    """Whether an ``_offset`` value is (shaped as) a sealed offset, not a position."""
    return len(value) == LENGTH and not value.isdigit()


def seal(
    key: bytes,
    principal: str,
    type_name: str,
    bound: Sequence[tuple[str, str]],
    at: int,
    now_s: int,
) -> str:
    """The sealed offset ``at`` of this caller's search of ``type_name`` by ``bound``,
    issued at ``now_s`` (seconds since the epoch)."""
    if at < 0 or now_s < 0:
        raise ValueError("an offset out of range to seal")
    plain = f"{at} {now_s}".encode("ascii")
    return sealing.seal(key, _FORMAT, plain, _OFFSET_BYTES, _binding(principal, type_name, bound))


def opened(
    key: bytes,
    principal: str,
    type_name: str,
    bound: Sequence[tuple[str, str]],
    value: str,
    now_s: int,
) -> int:
    """The offset ``value`` seals, if this server sealed it for this caller and these
    criteria less than ``LIFETIME_S`` ago; otherwise a 400 that says no more than that."""
    plain = sealing.opened(
        key, _FORMAT, _OFFSET_BYTES, value, _binding(principal, type_name, bound)
    )
    at, _, issued = (plain or b"").partition(b" ")
    if not (at.isdigit() and issued.isdigit()) or not (
        -SKEW_S <= now_s - int(issued) <= LIFETIME_S
    ):
        raise _refused()
    return int(at)


_CURSOR_FORMAT = b"\x05"
#: ``[last_updated_us, row_id]`` as JSON, padded with spaces: 20 digits each and more.
_CURSOR_BYTES = 49  # with the format, nonce and tag, 78 bytes: base64url with no spare bits
CURSOR_LENGTH = sealing.sealed_length(_CURSOR_BYTES)
_SORTED_FORMAT = b"\x06"
#: ``[last_updated_us, row_id, resource_id]``: a default cursor's and an id of up to 64.
_SORTED_BYTES = 118  # with the format, nonce and tag, 147 bytes: no spare bits either
SORTED_CURSOR_LENGTH = sealing.sealed_length(_SORTED_BYTES)


def _cursor_form(sorted_search: bool) -> tuple[bytes, int]:
    return (_SORTED_FORMAT, _SORTED_BYTES) if sorted_search else (_CURSOR_FORMAT, _CURSOR_BYTES)


def seal_cursor(
    key: bytes,
    principal: str,
    type_name: str,
    bound: Sequence[tuple[str, str]],
    after: tuple[int, int] | tuple[int, int, str],
    *,
    sorted_search: bool = False,
) -> str:
    """The cursor of the page after ``after`` (``last_updated_us``, ``row_id`` and, for a
    ``sorted_search``, the ``resource_id`` its ``_id`` sort may need) of this caller's
    search of ``type_name`` by ``bound``."""
    form, width = _cursor_form(sorted_search)
    plain = jsonio.dumps(list(after) if sorted_search else [after[0], after[1]])
    binding = _binding(principal, type_name, bound)
    return sealing.seal(key, form, plain, width, binding)


def opened_cursor(
    key: bytes,
    principal: str,
    type_name: str,
    bound: Sequence[tuple[str, str]],
    value: str,
    *,
    sorted_search: bool = False,
) -> tuple[int, int, str]:
    """Where cursor ``value`` places the page (``last_updated_us``, ``row_id``,
    ``resource_id``: empty in the default order), if this server sealed it for this
    caller, these criteria and this kind of order; otherwise a 400 that says no more."""
    form, width = _cursor_form(sorted_search)
    plain = sealing.opened(key, form, width, value, _binding(principal, type_name, bound))
    if plain is None:
        raise bad_request(
            "_offset of this search is taken only from a link this server gave the same "
            "caller for the same criteria; search again from the first page"
        )
    at, row_id, *resource_id = jsonio.parse(plain)
    return int(at), int(row_id), str(resource_id[0]) if resource_id else ""


def moves_by_cursor(query: SearchQuery, *, withheld: bool) -> bool:
    """Whether a page of this search may give a next link that moves on by cursor: the
    default order or a sort by ``_id`` and ``_lastUpdated``, entries asked, and counts
    not ``withheld`` (``gate.withholds_counts``: such a search pages by sealed offsets).
    On PostgreSQL such a page is read as of a settled time (``Gate.cursor_now``)."""
    return query.pages_by_cursor and query.count > 0 and not query.summary_count and not withheld


_CHART_FORMAT = b"\x07"
#: ``[last_updated_us, row_id, began_us]``: a default cursor's place and the settled time
#: the answer's first page was as of, 20 characters each at most.
_CHART_BYTES = 64  # with the format, nonce and tag, 93 bytes: no spare bits either
CHART_CURSOR_LENGTH = sealing.sealed_length(_CHART_BYTES)


def seal_chart_cursor(
    key: bytes,
    principal: str,
    chart: str,
    bound: Sequence[tuple[str, str]],
    after: tuple[int, int],
    began_us: int,
) -> str:
    """The cursor of the page after place ``after`` of this caller's ``$everything`` of
    ``chart`` (``Patient/<id>/$everything``) by ``bound``, whose first page was as of
    ``began_us``: the patient stands first only if last written by then (stop 66)."""
    plain = jsonio.dumps([after[0], after[1], began_us])
    binding = _binding(principal, chart, bound)
    return sealing.seal(key, _CHART_FORMAT, plain, _CHART_BYTES, binding)


def opened_chart_cursor(
    key: bytes, principal: str, chart: str, bound: Sequence[tuple[str, str]], value: str
) -> tuple[tuple[int, int], int | None]:
    """Where chart cursor ``value`` places the page, and the time the first page was as
    of, if this server sealed it for this caller, this chart and these criteria;
    otherwise a 400 that says no more. A cursor sealed before stop 66 (the default
    order's, with no time) is still read, the time None: the patient first, as its
    first page had it."""
    binding = _binding(principal, chart, bound)
    if len(value) == CURSOR_LENGTH:
        before = opened_cursor(key, principal, chart, bound, value)
        return (before[0], before[1]), None
    plain = sealing.opened(key, _CHART_FORMAT, _CHART_BYTES, value, binding)
    if plain is None:
        raise bad_request(
            "_offset of this $everything is taken only from a link this server gave the "
            "same caller for the same patient and parameters; ask again from the first page"
        )
    at, row_id, began_us = jsonio.parse(plain)
    return (int(at), int(row_id)), int(began_us)


def is_cursor(value: str) -> bool:
    """Whether an ``_offset`` value is (shaped as) a sealed cursor, of the default order,
    of a sort or of ``$everything``, not a position nor a sealed offset (another
    length)."""
    lengths = (CURSOR_LENGTH, SORTED_CURSOR_LENGTH, CHART_CURSOR_LENGTH)
    return len(value) in lengths and not value.isdigit()


def _refused() -> FhirError:
    return bad_request(
        "_offset of this search is taken only from a link this server gave the same caller "
        "for the same criteria in the last ten minutes; search again from the first page"
    )
