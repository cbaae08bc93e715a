"""What a write answers, whether sent alone or as an entry of a batch or transaction
Bundle: one reading of ``Prefer: return=``, so that an entry can never answer more (or
otherwise) than the same write sent on its own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from carevault.fhir.outcome import Issue, outcome

if TYPE_CHECKING:
    from carevault.vault.records import Head


def prefer_return(prefer: str | None) -> str | None:
    """The ``return`` preference of a ``Prefer`` header (FHIR R4 http.html#ops:
    ``minimal``, ``representation`` or ``OperationOutcome``); None when none is given."""
    for part in (prefer or "").split(";"):
        name, _, value = part.strip().partition("=")
        if name.strip() == "return":
            return value.strip().strip('"')
    return None


@dataclass(frozen=True)
class WriteAnswer:
    """The body of the answer to a write: the version as its writer may read it
    (``resource``), a note that it was saved (``outcome``), or neither (minimal)."""

    resource: bytes | None = None
    outcome: dict[str, Any] | None = None


def write_answer(head: Head, body: bytes | None, returning: str) -> WriteAnswer:
    """``body``: the written version as the gate let its writer have it (``Gate.write``
    cuts it as a read would, None if they may not read it): it is all a write ever shows,
    so nothing withheld from the writer can leave through any form of the answer."""
    if returning == "minimal":
        return WriteAnswer()
    if returning == "OperationOutcome" or body is None:
        # body None: the writer may write but not read what was written (a record of a
        # patient they do not care for); they are told it was saved, not shown it.
        note = Issue(
            "informational", f"{head.reference} saved as version {head.version_id}", "information"
        )
        return WriteAnswer(outcome=outcome([note]))
    return WriteAnswer(resource=body)
