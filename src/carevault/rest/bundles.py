"""Assembling Bundles around stored resource JSON without parsing it again.

The vault returns each resource as its stored JSON bytes; a searchset of a
hundred resources is built by joining those bytes into the Bundle's frame.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlencode

from carevault.clock import fhir_instant, from_micros, http_date, utc_now
from carevault.fhir import jsonio
from carevault.vault.records import Head, Opened, created_by_write, method_of


def dumps(value: Any) -> bytes:
    return jsonio.dumps(value)


def full_url(base: str, head: Head) -> str:
    return f"{base}/{head.resource_type}/{head.resource_id}"


def etag(version_id: int) -> str:
    return f'W/"{version_id}"'


def last_modified(head: Head) -> str:
    return _http_date(head.last_updated_us // 1_000_000)


@functools.lru_cache(maxsize=4096)
def _http_date(seconds: int) -> str:
    """An HTTP date (RFC 9110 5.6.7) of a whole second: every read by id answers one, and
    formatting it cost more than the ETag and Content-Location together."""
    return http_date(seconds * 1_000_000)


def _frame(
    bundle_type: str,
    total: int | None,
    links: list[dict[str, str]],
    as_of_us: int | None = None,
) -> dict[str, Any]:
    """``as_of_us``: the Bundle's ``meta.lastUpdated`` (None: now)."""
    frame: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {
            "lastUpdated": fhir_instant(utc_now() if as_of_us is None else from_micros(as_of_us))
        },
        "type": bundle_type,
    }
    if total is not None:
        frame["total"] = total
    if links:
        frame["link"] = links
    return frame


def assemble(frame: dict[str, Any], entries: Sequence[bytes]) -> bytes:
    """The frame's JSON with ``entry`` set to the pre-serialised ``entries``."""
    head = dumps(frame)
    if not entries:
        return head
    return head[:-1] + b',"entry":[' + b",".join(entries) + b"]}"


def match_entry(base: str, item: Opened, mode: str = "match") -> bytes:
    assert item.body is not None  # noqa: S101 - searches return live resources only
    return (
        b'{"fullUrl":'
        + dumps(full_url(base, item.head))
        + b',"resource":'
        + item.body
        + b',"search":{"mode":"'
        + mode.encode()
        + b'"}}'
    )


def outcome_entry(outcome: dict[str, Any]) -> bytes:
    return dumps({"resource": outcome, "search": {"mode": "outcome"}})


def self_link(url: str, params: Sequence[tuple[str, str]], offset: int) -> dict[str, str]:
    """The self link of a result the server did not page: the parameters applied, and
    ``_offset`` where one was given."""
    applied = [*params, *([("_offset", str(offset))] if offset else [])]
    return {"relation": "self", "url": f"{url}?{urlencode(applied)}" if applied else url}


def paging_links(
    url: str,
    params: Sequence[tuple[str, str]],
    *,
    count: int,
    offset: int,
    total: int | None,
    full: bool = False,
    position: Callable[[int], str] = str,
    at: str | None = None,
    following: str | None = None,
) -> list[dict[str, str]]:
    """self, first, previous and next links, repeating the applied parameters.

    With a ``total``, a next link where records remain past the page. Without one (a
    search that tells only what it shows: ``gate.withholds_counts``), a next link where
    the page was ``full``, whether more match or not: its presence then says nothing the
    page's entries did not. ``position`` writes an offset as the link carries it (a
    sealed offset, ``rest/offsets.py``, for such a search). ``at`` and ``following``:
    the cursors (``rest/offsets.py``) the self and the next link carry instead of a
    position, where the page was asked by one and where the next page starts."""
    kept = [(name, value) for name, value in params if name not in ("_count", "_offset")]

    def link(relation: str, where: int | str) -> dict[str, str]:
        value = where if isinstance(where, str) else position(where)
        query = urlencode([*kept, ("_count", str(count)), ("_offset", value)])
        return {"relation": relation, "url": f"{url}?{query}"}

    links = [link("self", offset if at is None else at), link("first", 0)]
    if offset > 0:
        links.append(link("previous", max(0, offset - count)))
    more = full if total is None else offset + count < total
    if count and more:
        links.append(link("next", offset + count if following is None else following))
    return links


def searchset(
    base: str,
    items: Sequence[Opened],
    *,
    total: int | None,
    links: list[dict[str, str]],
    included: Sequence[Opened] = (),
    outcome: dict[str, Any] | None = None,
    as_of_us: int | None = None,
) -> bytes:
    """A searchset Bundle; ``as_of_us``: its ``meta.lastUpdated`` (None: now), a settled
    time for a search by ``_lastUpdated`` (``history``)."""
    entries = [match_entry(base, item) for item in items]
    entries += [match_entry(base, item, "include") for item in included]
    if outcome is not None:
        entries.append(outcome_entry(outcome))
    return assemble(_frame("searchset", total, links, as_of_us), entries)


def history(
    base: str,
    versions: Sequence[Opened],
    *,
    total: int | None = None,
    links: list[dict[str, str]] | None = None,
    as_of_us: int | None = None,
) -> bytes:
    """A history Bundle of ``versions``; ``total``: how many versions there are in all
    (None: not counted, as for type- and system-level history). ``as_of_us``: its
    ``meta.lastUpdated``, a time before which every version stamped was committed when
    the versions were read (``Gate.settled_now``): the ``_since`` of a client's next poll
    that misses nothing."""
    entries: list[bytes] = []
    for item in versions:
        head = item.head
        url = f"{head.resource_type}/{head.resource_id}"
        # How the version was written, as stored with it (inferred for older versions).
        request = {"method": method_of(head).value, "url": url}
        # When each version was made, a deletion's too: a client replaying the history
        # orders a deletion against writes it has from elsewhere by it.
        modified = fhir_instant(from_micros(head.last_updated_us))
        if item.body is None:
            response = {
                "status": "204 No Content",
                "etag": etag(head.version_id),
                "lastModified": modified,
            }
        else:
            response = {
                # As the write answered: 201 where it created the record (a first
                # version, or a PUT that brought a deleted record back), else 200.
                "status": "201 Created" if created_by_write(head) else "200 OK",
                "etag": etag(head.version_id),
                "lastModified": modified,
            }
        entry = {"fullUrl": full_url(base, head), "request": request, "response": response}
        encoded = dumps(entry)
        if item.body is not None:
            encoded = encoded[:-1] + b',"resource":' + item.body + b"}"
        entries.append(encoded)
    return assemble(_frame("history", total, links or [], as_of_us), entries)


def history_links(
    url: str,
    params: Sequence[tuple[str, str]],
    *,
    count: int | None,
    at: str | None,
    following: str | None,
    previous: str | None = None,
) -> list[dict[str, str]]:
    """self, first, previous and next links of a history page: ``at`` is the cursor the
    page was asked from (None: the first page), ``following`` and ``previous`` the
    sealed cursors of the next and previous pages (None: there is none); ``count`` the
    page size asked for (None: none was, and the links ask for none either: R4
    bundle.html, a self link is the request the Bundle answers). The first link
    carries no cursor: it begins a new answer, as of its own time. Type- and system-level
    pages have no previous link: FHIR does not ask for one, and counting back among
    candidates repeated or skipped versions (an instance history counts back among the
    versions the caller may read, ``gate/paging.py``)."""
    kept = [(name, value) for name, value in params if name not in ("_count", "_offset")]

    def link(relation: str, cursor: str | None) -> dict[str, str]:
        paging = ([] if count is None else [("_count", str(count))]) + (
            [("_offset", cursor)] if cursor else []
        )
        query = urlencode([*kept, *paging])
        return {"relation": relation, "url": f"{url}?{query}" if query else url}

    links = [link("self", at), link("first", None)]
    if previous is not None:
        links.append(link("previous", previous))
    if following is not None:
        links.append(link("next", following))
    return links


def response_bundle(bundle_type: str, entries: Sequence[bytes]) -> bytes:
    return assemble(_frame(bundle_type, None, []), entries)
