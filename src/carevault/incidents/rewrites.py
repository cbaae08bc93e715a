"""What a compromised principal wrote over in a Patient record, and the record as it
stands without it: which versions their writes cited in an incident's scope made over
an earlier one (read from the ledger entries themselves), and the record's history
replayed oldest first without those versions. The notices take a person's contact
details so (``notify/reader.py``), and the scope groups records into people by the
HKID so (``incidents/people.py``): neither is the attacker's to choose."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.ledger.store import LedgerStore


def written_over(
    store: LedgerStore, patient_id: str, evidence: Iterable[int]
) -> tuple[set[int], bool]:
    """The versions of ``patient_id``'s Patient record that the writes at ``evidence``
    (ledger positions) made over an earlier version (an update, a deletion, a record
    written again after its deletion), and whether they made the record itself (its
    first version: it replaced no one's details)."""
    versions: set[int] = set()
    made = False
    for seq in evidence:
        data = store.entry(seq)
        if data is None:
            continue
        event = AuditEvent.from_canonical(data, seq=seq)
        version = event.detail.get("version")
        if (
            event.tag in (Tag.FHIR_CREATE, Tag.FHIR_UPDATE, Tag.FHIR_DELETE)
            and event.outcome == Outcome.SUCCESS
            and event.resource_type == "Patient"
            and event.resource_id == patient_id
            and isinstance(version, int)
        ):
            if version > 1 or event.tag != Tag.FHIR_CREATE:
                versions.add(version)
            else:
                made = True
    return versions, made


def replay(
    versions: Sequence[tuple[int, dict[str, Any] | None]],
    untrusted: frozenset[int],
    lists: Sequence[str],
    singles: Sequence[tuple[str, ...]] = (),
) -> dict[str, Any]:
    """A Patient of its ``lists`` and ``singles`` elements, from ``versions`` (oldest
    first; None for a deletion) as if those in ``untrusted`` had not been written. Each
    trusted version applies only what it changed from the version before it: the list
    entries it added or removed, the single values it changed; the entries added latest
    come first. A desk that changes a phone number saves the attacker's email unchanged
    beside it: the email is not taken. ``singles``: groups of elements that are one
    value (a ``[x]`` choice)."""
    kept: dict[str, dict[str, Any]] = {name: {} for name in lists}
    taken: dict[tuple[str, ...], tuple[Any, ...]] = {}
    before: dict[str, Any] = {}
    for version, body in versions:
        now = body or {}
        if version not in untrusted:
            for name in lists:
                old, new = _entries(before.get(name)), _entries(now.get(name))
                for key in old.keys() - new.keys():
                    kept[name].pop(key, None)
                added = {key: entry for key, entry in new.items() if key not in old}
                # The latest trusted entries first: a notice takes the first valid one.
                kept[name] = {**added, **kept[name]}
            for group in singles:
                value = tuple(now.get(element) for element in group)
                if value != tuple(before.get(element) for element in group):
                    taken[group] = value
        before = now
    replayed: dict[str, Any] = {"resourceType": "Patient"}
    for name, entries in kept.items():
        if entries:
            replayed[name] = list(entries.values())
    for group, values in taken.items():
        replayed.update(
            (element, v) for element, v in zip(group, values, strict=True) if v is not None
        )
    return replayed


def _entries(value: Any) -> dict[str, Any]:
    """A list element's entries by their canonical text (the same entry in two versions
    is one key)."""
    items = value if isinstance(value, list) else [] if value is None else [value]
    return {json.dumps(item, sort_keys=True, ensure_ascii=False): item for item in items}
