"""Reading the audit ledger: searches for the privacy officer, and a patient's access
report in which every line carries its inclusion proof against a signed checkpoint."""

from __future__ import annotations

import base64
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

from carevault.ledger.checkpoints import StoredCheckpoint
from carevault.ledger.events import AuditEvent, Tag, Unrecognised
from carevault.ledger.export import event_subtype, event_type
from carevault.ledger.service import Ledger
from carevault.ledger.verifier import leaf_hash, verify_inclusion

#: A token of a FHIR search: (system, code); a system of None matches any system.
Token = tuple[str | None, str]


@dataclass(frozen=True)
class AuditQuery:
    patient_pseudonym: str | None = None
    principal: str | None = None
    since_us: int | None = None
    until_us: int | None = None
    tags: frozenset[str] = frozenset()
    #: With ``tags``: also entries whose tag this build does not know (a newer build's),
    #: which may be any of them.
    unrecognised_tags: bool = False
    outcome: str | None = None
    #: [since, until) windows of microseconds the entry's time must fall outside of (a
    #: FHIR ``ne`` date, which is no one window ``since_us`` and ``until_us`` can say).
    outside_us: tuple[tuple[int, int], ...] = ()
    after_seq: int = -1
    #: Only entries before this position (the cursor of a newest-first search's pages).
    before_seq: int | None = None
    #: Newest first (``_sort=-date``): the reverse of ledger order.
    newest_first: bool = False
    #: AuditEvent.type, then .subtype, as tokens: each group must hold, by any of its
    #: (system or None for any system, code).
    types: tuple[frozenset[Token], ...] = ()
    subtypes: tuple[frozenset[Token], ...] = ()
    #: Entries about one resource (AuditEvent.entity: its type and id), by any of the
    #: names the ledger gives it (an id no record holds is named by its keyed digest);
    #: empty: entries about no one resource (two were asked for).
    entity: frozenset[tuple[str, str]] | None = None
    count: int = 50


def matching(ledger: Ledger, query: AuditQuery) -> list[tuple[int, AuditEvent, bytes]]:
    """The first ``query.count`` entries that match ``query``, in ledger order (newest
    first if ``query.newest_first``)."""
    return list(islice(each_matching(ledger, query, max(query.count * 2, 100)), query.count))


def count_matching(ledger: Ledger, query: AuditQuery) -> int:
    """How many entries match ``query`` (``count`` aside): a search's ``Bundle.total``,
    read through the whole of what the indexed filters leave."""
    return sum(1 for _ in each_matching(ledger, query))


def each_matching(
    ledger: Ledger, query: AuditQuery, batch_size: int = 1000
) -> Iterator[tuple[int, AuditEvent, bytes]]:
    """Every entry that matches ``query`` (``count`` aside), in ledger order (or its
    reverse), read ``batch_size`` at a time and checked against the entry bytes
    themselves."""
    after, before = query.after_seq, query.before_seq
    while True:
        batch = ledger.store.find(
            subject=query.patient_pseudonym,
            actor=query.principal,
            since_us=query.since_us,
            until_us=query.until_us,
            after_seq=after,
            before_seq=before,
            limit=batch_size,
            newest_first=query.newest_first,
        )
        if not batch:
            return
        for seq, data in batch:
            event = AuditEvent.from_canonical(data, seq=seq)
            if _fits(query, event):
                yield seq, event, data
        if query.newest_first:
            before = batch[-1][0]
        else:
            after = batch[-1][0]


def _holds(groups: tuple[frozenset[Token], ...], coding: tuple[str, str]) -> bool:
    system, code = coding
    return all(
        any(code == wanted and (within is None or within == system) for within, wanted in group)
        for group in groups
    )


def _fits(query: AuditQuery, event: AuditEvent) -> bool:
    return not (
        (query.patient_pseudonym and event.patient_pseudonym != query.patient_pseudonym)
        or (query.principal and event.principal != query.principal)
        or (
            query.tags
            and event.tag.value not in query.tags
            and not (query.unrecognised_tags and isinstance(event.tag, Unrecognised))
        )
        or (query.outcome and event.outcome.value != query.outcome)
        or any(since <= event.at_us < until for since, until in query.outside_us)
        or (query.types and not _holds(query.types, event_type(event.tag.value)))
        or (query.subtypes and not _holds(query.subtypes, event_subtype(event.tag.value)))
        or (
            query.entity is not None
            and (event.resource_type, event.resource_id) not in query.entity
        )
    )


#: The most lines one access report holds (the newest; the report says what it left out).
REPORT_LIMIT = 10_000

#: What counts as an access to a patient's record in their access report.
ACCESS_TAGS = frozenset(
    tag.value
    for tag in (
        Tag.FHIR_READ,
        Tag.FHIR_VREAD,
        Tag.FHIR_SEARCH,
        Tag.FHIR_HISTORY,
        Tag.FHIR_EVERYTHING,
        Tag.FHIR_CREATE,
        Tag.FHIR_UPDATE,
        Tag.FHIR_DELETE,
        Tag.FHIR_EXPORT,
        # The export's file downloaded: when, and by whom, the records left.
        Tag.EXPORT_FILE_RELEASED,
        Tag.FHIR_IMPORT,
        Tag.ACCESS_BREAK_GLASS,
        # An officer's pull of this very report: what it showed is about the patient.
        Tag.AUDIT_READ,
        # A privacy officer's print of the patient's breach notice in full.
        Tag.NOTIFY_PREVIEW_SHOWN,
        # An officer shown what the clinician who broke the glass wrote about the patient.
        Tag.ACCESS_BREAK_GLASS_SHOWN,
        # Who registered the patient where, and moved their home: each opened the record
        # to a clinic's staff (third review of stop 62: neither was in the report).
        Tag.PATIENT_REGISTERED,
        Tag.PATIENT_TRANSFERRED,
        # An officer's correction of the patient's identifiers, and a registration they
        # ended (stop 63).
        Tag.PATIENT_IDENTIFIER_REMOVED,
        Tag.PATIENT_UNREGISTERED,
    )
)


def access_report(
    ledger: Ledger,
    pseudonym: str,
    checkpoint: StoredCheckpoint,
    describe: Callable[[AuditEvent], dict[str, Any]],
    *,
    limit: int = REPORT_LIMIT,
    before_seq: int | None = None,
) -> dict[str, Any]:
    """Every access to one patient's record up to ``checkpoint``, each with its proof.

    ``describe`` turns the principal into who it is (name, role, clinic) for the
    reader; the proof lets anyone check the line is in the signed ledger. An entry
    naming the patient under a tag this build does not know (a newer build wrote it)
    is shown, with its action as written: it may be an access, and a report that
    leaves out an access is worse than one whose reader sees an unfamiliar action.

    At most ``limit`` lines, the newest before ``before_seq`` (all of them when None).
    ``complete`` is False when any access up to the checkpoint is not listed:
    ``left_out`` says how many of ``total``, and ``older_before`` is the ``before_seq``
    that lists the older ones. ``after_checkpoint`` counts the accesses written after
    ``checkpoint``: not listed, they need a newer checkpoint to be proved.
    """
    query = AuditQuery(patient_pseudonym=pseudonym, tags=ACCESS_TAGS, unrecognised_tags=True)
    # The newest accesses are the ones that matter (a snoop hides behind a long
    # history), so the walk keeps the last ``limit`` before ``before_seq``, in bounded
    # memory, and counts the rest: what is left out is said, never silently dropped.
    kept: deque[tuple[int, AuditEvent, bytes]] = deque(maxlen=limit)
    total = before = after_checkpoint = 0
    end = checkpoint.size if before_seq is None else min(before_seq, checkpoint.size)
    for seq, event, data in each_matching(ledger, query):
        if seq >= checkpoint.size:
            after_checkpoint += 1
            continue
        total += 1
        if seq < end:
            before += 1
            kept.append((seq, event, data))
    lines: list[dict[str, Any]] = []
    for seq, event, data in kept:
        proof = ledger.store.inclusion_proof(seq, checkpoint.size)
        verify_inclusion(leaf_hash(data), seq, checkpoint.size, proof, checkpoint.root)
        lines.append(
            {
                "seq": seq,
                "at_us": event.at_us,
                "action": event.tag.value,
                "outcome": event.outcome.value,
                **describe(event),
                "resource": (
                    f"{event.resource_type}/{event.resource_id}" if event.resource_id else None
                ),
                "categories": list(event.categories),
                "purpose": event.purpose,
                "break_glass_reason": event.break_glass_reason,
                "entry": base64.b64encode(data).decode(),
                "proof": [base64.b64encode(item).decode() for item in proof],
            }
        )
    return {
        "patient_pseudonym": pseudonym,
        "checkpoint": checkpoint.note,
        "tree_size": checkpoint.size,
        "complete": total == len(lines),
        "total": total,
        "left_out": total - len(lines),
        "older_before": lines[0]["seq"] if lines and before > len(lines) else None,
        "after_checkpoint": after_checkpoint,
        "accesses": lines,
    }
