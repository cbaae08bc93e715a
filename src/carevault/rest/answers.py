"""What a write and a read by id answer, whether asked alone or as an entry of a batch or
transaction Bundle: one reading of ``Prefer: return=``, of ``If-None-Match`` and of
``If-Modified-Since``, so that an entry can never answer more (or otherwise) than the
same request sent on its own."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from carevault.clock import read_http_date
from carevault.fhir.outcome import Issue, outcome

if TYPE_CHECKING:
    from carevault.rest.interactions import FhirResponse
    from carevault.vault.records import Head


def preferences(prefer: str | None) -> dict[str, str]:
    """Each preference of a ``Prefer`` header (every line of it joined by commas, as RFC
    7240 section 2 reads several), by name in lower case, with its value as sent (``""``
    for none); a name given twice keeps its first value (a server "SHOULD ignore all but
    the first instance"). Read leniently: a ``;`` separates preferences too, as clients
    write ``return=minimal; handling=strict``, so a preference's parameter (RFC 7240's
    ``respond-async; wait=10``) reads as a preference of its own: none CareVault weighs
    is also a parameter. The one reading of ``return``, ``handling`` and
    ``respond-async`` (integrator round 60 found the asynchronous kick-offs reading only
    the header's first line, case for case)."""
    found: dict[str, str] = {}
    for item in _PREFERENCE_SEPARATORS.split(prefer or ""):
        name, _, value = item.partition("=")
        name = name.strip().lower()
        if name and name not in found:
            found[name] = value.strip().strip('"')
    return found


_PREFERENCE_SEPARATORS = re.compile(r"[,;]")


def prefer_return(prefer: str | None) -> str | None:
    """The ``return`` preference of a ``Prefer`` header (FHIR R4 http.html#ops:
    ``minimal``, ``representation`` or ``OperationOutcome``); None when none is given."""
    return preferences(prefer).get("return")


@dataclass(frozen=True)
class WriteAnswer:
    """The body of the answer to a write: the version as its writer may read it
    (``resource``), a note that it was saved (``outcome``), or neither (minimal)."""

    resource: bytes | None = None
    outcome: dict[str, Any] | None = None


def write_answer(
    head: Head, body: bytes | None, returning: str, *, found: bool = False
) -> WriteAnswer:
    """``body``: the written version as the gate let its writer have it (``Gate.write``
    cuts it as a read would, None if they may not read it): it is all a write ever shows,
    so nothing withheld from the writer can leave through any form of the answer.
    ``found``: nothing was written, a conditional create found ``head`` (as its caller's
    search showed it), and the note says so rather than that it was saved."""
    if returning == "minimal":
        return WriteAnswer()
    if returning == "OperationOutcome" or body is None:
        # body None: the writer may write but not read what was written (a record of a
        # patient they do not care for); they are told it was saved, not shown it.
        said = f"{head.reference} saved as version {head.version_id}"
        if found:
            # Integrator round 65: a create that matched said "saved", of nothing saved.
            said = (
                f"{head.reference} version {head.version_id} found by If-None-Exist: "
                "nothing written"
            )
        return WriteAnswer(outcome=outcome([Issue("informational", said, "information")]))
    return WriteAnswer(resource=body)


def _opaque(tag: str) -> str:
    """An entity tag compared weakly (RFC 9110 8.8.3.2): without its ``W/``."""
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag


def not_modified(
    if_none_match: str | None,
    result: FhirResponse,
    modified_since_us: int | None = None,
    now_us: int = 0,
) -> FhirResponse:
    """304 Not Modified, with no body, when ``if_none_match`` (the ``If-None-Match``
    header, or ``Bundle.entry.request.ifNoneMatch``) names the version read, or is ``*``
    (FHIR http.html#cread); ``result`` otherwise. The read itself went through the gate
    and is in the ledger: the caller was allowed it and already holds that version.

    With no ``If-None-Match`` (RFC 9110 13.1.3: it outranks the date), 304 too when the
    version read was written before ``modified_since_us`` (``If-Modified-Since``, or
    ``Bundle.entry.request.ifModifiedSince``), taken to its whole second below. Before,
    not at: ``Last-Modified`` is a whole second, and a record written twice within one
    second would otherwise be answered 304 to a client holding the first of the two
    (RFC 9110 allows 304 "earlier than or equal"; a stale chart is worse than a second
    sending). A client that echoes ``Last-Modified`` of the current version gets it
    again; its ``ETag`` is the exact validator. A date after ``now_us`` (the services'
    clock) is ignored, as RFC 7232 3.3 said: a client whose clock runs ahead would
    otherwise be answered 304 for every change until its date came."""
    current = result.headers.get("ETag")
    if current is None or result.status != 200:
        return result
    if if_none_match is not None:
        tags = {_opaque(tag) for tag in if_none_match.split(",")}
        if "*" in tags or _opaque(current) in tags:
            return _unmodified(result)
        return result
    if modified_since_us is None or modified_since_us > now_us:
        return result
    # Our own header: the version's time to the whole second below.
    written = read_http_date(result.headers.get("Last-Modified", ""))
    if written is not None and written < modified_since_us - modified_since_us % 1_000_000:
        return _unmodified(result)
    return result


def _unmodified(result: FhirResponse) -> FhirResponse:
    kept = {name: value for name, value in result.headers.items() if name != "Content-Type"}
    return replace(result, status=304, body=None, headers=kept)
