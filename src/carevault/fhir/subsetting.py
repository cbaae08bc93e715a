"""Views of a record without what its reader may not see, and updates that keep what
their writer was not shown.

Reads return only what the caller may see (``fhir/categories.py`` says which category
each element is of): withheld elements are removed and the resource is labelled
SUBSETTED in ``meta.tag``, where R4's search page puts it (a common tag: servers such as
HAPI put and check it there), and in ``meta.security``, where FHIR's security labels and
earlier releases of CareVault put it; a resource whose main category is withheld is not
shown at all. An update from a caller who was shown a view keeps what the view left
out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from carevault.domain.categories import DataCategory
from carevault.fhir.categories import (
    ALWAYS_SHOWN,
    MARKS,
    NARRATIVE,
    always_cut,
    element_category,
    is_sensitivity_label,
    itemised_by,
    items_of,
    main_category,
    sensitivity_labels,
)
from carevault.fhir.registry import ResourceType

SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
    "display": "subsetted",
}


def subset(
    rt: ResourceType, resource: dict[str, Any], granted: frozenset[DataCategory]
) -> dict[str, Any] | None:
    """``resource`` with withheld elements removed (and labelled), or None if its main
    category is withheld. The narrative goes whenever an element is removed (it may
    repeat it), and from every record of a type some of whose categories are withheld
    (``always_cut``)."""
    main = main_category(rt, resource)
    if main not in granted:
        return None
    kept: dict[str, Any] = {}
    removed = always_cut(rt, granted)
    for name, value in resource.items():
        itemised = itemised_by(rt, name, main)
        if name in ALWAYS_SHOWN:
            kept[name] = value
        elif itemised is not None:
            items = items_of(value)
            visible = [item for item in items if itemised(item) <= granted]
            removed = removed or len(visible) != len(items)
            if visible:
                kept[name] = visible
        elif element_category(rt, name, main, value) in granted:
            kept[name] = value
        else:
            removed = True
    if DataCategory.SENSITIVE_CLINICAL not in granted:
        # A visit, booking or patient labelled HIV (or tagged with an HIV code) would tell
        # what its withheld reason does.
        unlabelled = _meta_without(kept.get("meta"), is_sensitivity_label, MARKS)
        if unlabelled is not None:
            kept["meta"] = unlabelled
            removed = True
    if not removed:
        return resource
    kept.pop(NARRATIVE, None)
    return mark_subsetted(kept)


def _meta_without(
    meta: Any, unwanted: Callable[[Any], bool], kinds: tuple[str, ...] = ("security",)
) -> dict[str, Any] | None:
    """``meta`` (a new dict) without the codings of its ``kinds`` (security labels, tags)
    that ``unwanted`` picks (and without a list none is left in), or None if it has none
    to take out."""
    if not isinstance(meta, dict):
        return None
    kept: dict[str, Any] | None = None
    for kind in kinds:
        labels = meta.get(kind)
        if not isinstance(labels, list):
            continue
        left = [label for label in labels if not unwanted(label)]
        if len(left) == len(labels):
            continue
        # Copied only when something is taken out: every read of a visit, booking or
        # patient by a role that may not see sensitive records asks.
        kept = dict(meta) if kept is None else kept
        if left:
            kept[kind] = left
        else:
            del kept[kind]
    return kept


def mark_subsetted(kept: dict[str, Any]) -> dict[str, Any]:
    """``kept`` (a new dict, elements taken from a resource) labelled SUBSETTED, once:
    the one way a view of a record says it is not the whole record, whether the role
    withheld elements or the client asked for fewer (``fhir/views.py``), or both. In
    ``meta.tag`` (integrator round 85: R4's search page says the tag; a server that
    checks only the tag would store a view as a whole record) and in ``meta.security``
    (clients of earlier releases look there), once in each. A new meta with new lists:
    what it shares with the stored resource is never changed."""
    meta = dict(kept.get("meta") or {})
    for kind in MARKS:
        given = meta.get(kind)
        labels: list[Any] = given if isinstance(given, list) else []
        if not any(_is_subsetted(label) for label in labels):
            meta[kind] = [*labels, SUBSETTED]
    kept["meta"] = meta
    return kept


def without_subsetted(resource: dict[str, Any]) -> dict[str, Any]:
    """``resource`` without the SUBSETTED label (matched by system and code) in
    ``meta.security`` and ``meta.tag``, which marks a reader's view and never a record:
    a client that saves back what it read sends it, in either or both (a client that
    keeps only tags keeps the tag alone). The same object when there is none to take
    out; a new one (and a new meta) if so: callers tell a view by that."""
    kept = _meta_without(resource.get("meta"), _is_subsetted, MARKS)
    if kept is None:
        return resource
    unlabelled = {name: value for name, value in resource.items() if name != "meta"}
    if kept:
        unlabelled["meta"] = kept
    return unlabelled


def _is_subsetted(label: Any) -> bool:
    return (
        isinstance(label, dict)
        and label.get("system") == SUBSETTED["system"]
        and label.get("code") == SUBSETTED["code"]
    )


def restore_withheld(
    rt: ResourceType,
    submitted: dict[str, Any],
    current: dict[str, Any],
    granted: frozenset[DataCategory],
) -> dict[str, Any]:
    """An update from someone who could not see some elements keeps those elements.

    Without this, a front-desk update of a patient's phone number would erase the
    HKID number the front desk never saw, and the narrative it was never shown
    (``always_cut``; one it sends replaces it, as its own words).
    """
    merged = dict(submitted)
    if NARRATIVE in current and NARRATIVE not in submitted and always_cut(rt, granted):
        merged[NARRATIVE] = current[NARRATIVE]
    for kind in MARKS if DataCategory.SENSITIVE_CLINICAL not in granted else ():
        # The sensitivity labels and tags it was not shown stay (``subset``): a desk's
        # update of a patient labelled HIV does not take the label off.
        stored_labels = sensitivity_labels(current.get("meta"), kind)
        if not stored_labels:
            continue
        meta: dict[str, Any] = dict(merged["meta"]) if isinstance(merged.get("meta"), dict) else {}
        given = meta.get(kind)
        labels: list[Any] = given if isinstance(given, list) else []
        meta[kind] = [*labels, *(label for label in stored_labels if label not in labels)]
        merged["meta"] = meta
    main = main_category(rt, current)
    for name, value in current.items():
        if name in ALWAYS_SHOWN:
            continue
        itemised = itemised_by(rt, name, main)
        if itemised is not None:
            stored = items_of(value)
            hidden = [not itemised(item) <= granted for item in stored]
            if any(hidden):
                sent = submitted.get(name)
                merged[name] = _merge_items(
                    [] if sent is None else items_of(sent), stored, hidden, name
                )
        elif element_category(rt, name, main, value) not in granted and name not in submitted:
            merged[name] = value
    return merged


class HiddenItemNamed(ValueError):
    """An update sends an item under the name of one the caller may not see (a contained
    resource under its id, a claim's line or supporting information under its sequence):
    kept beside it, the record would hold two items of one name (a reference to it, an
    adjudication of the line, would then name either); taken as its replacement, the
    caller would change what it may not see. Refused, in words that name neither item."""


#: What names an item of an itemised element, and what refusing one sent under the name
#: of a hidden item says.
_ITEM_NAMES = {
    "contained": (
        "id",
        "contained: a resource sent has the id of a contained resource of the record you "
        "may not change; give it an id of its own",
    ),
    **{
        name: (
            "sequence",
            f"{name}: an entry sent has the sequence of an entry of the record you may not "
            "change; give it a sequence of its own",
        )
        for name in ("item", "supportingInfo")
    },
}


def _item_name(item: Any, key: str) -> str | int | None:
    name = item.get(key) if isinstance(item, dict) else None
    return name if isinstance(name, str | int) and not isinstance(name, bool) else None


def _merge_items(sent: list[Any], stored: list[Any], hidden: list[bool], name: str) -> list[Any]:
    """The items of an update: each hidden stored item where it stood, the items sent in
    the places of those the caller saw, in order, and the rest of those sent after. A
    caller who sends back what it was shown leaves the element as it was stored."""
    if name in _ITEM_NAMES:
        key, refusal = _ITEM_NAMES[name]
        taken = {
            _item_name(item, key)
            for item, withheld in zip(stored, hidden, strict=True)
            if withheld and _item_name(item, key) is not None
        }
        if any(_item_name(item, key) in taken for item in sent):
            raise HiddenItemNamed(refusal)
    # An item sent that is a hidden stored item, value for value, is that item: kept
    # where it stood, not added a second time (adversary round 79: a desk that typed a
    # patient's HKID again, which it may write but not read, stored it twice). What the
    # caller is shown is the same either way: the item is of a category hidden from it.
    withheld_items = [item for item, withheld in zip(stored, hidden, strict=True) if withheld]
    sent = [item for item in sent if item not in withheld_items]
    waiting = list(reversed(sent))
    merged: list[Any] = []
    for item, withheld in zip(stored, hidden, strict=True):
        if withheld:
            merged.append(item)
        elif waiting:
            merged.append(waiting.pop())
    merged.extend(reversed(waiting))
    return merged
