"""Which data category each element of a resource belongs to, and removing those withheld.

Reads return only what the caller may see: withheld elements are removed and the
resource is labelled SUBSETTED in ``meta.security``, as FHIR's security labels
specify. A resource whose main category is withheld is not shown at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from carevault.domain.categories import HEALTH_CATEGORIES, DataCategory
from carevault.domain.sensitive import RESTRICTED_LABELS, is_sensitive_code
from carevault.fhir.normalise import HKID_SYSTEM
from carevault.fhir.registry import ResourceType

SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
    "display": "subsetted",
}

#: Identifier systems that are government identity numbers.
GOVERNMENT_ID_SYSTEMS = frozenset({HKID_SYSTEM, "http://hl7.org/fhir/sid/passport-HKG"})

#: Elements every reader of a resource may see: what the server itself tracks.
_ALWAYS = frozenset({"resourceType", "id", "meta", "implicitRules", "language"})


def _has_sensitive_code(node: Any) -> bool:
    """Whether a coding anywhere in ``node`` (a ``code`` beside a ``system`` or a
    ``display``) is sensitive; it stops at the first one and builds no list, since every
    health record written is asked (twice in a bulk load)."""
    if isinstance(node, dict):
        code = node.get("code")
        if isinstance(code, str) and ("system" in node or "display" in node):
            system = node.get("system")
            if is_sensitive_code(system if isinstance(system, str) else None, code):
                return True
        for value in node.values():
            if isinstance(value, dict | list) and _has_sensitive_code(value):
                return True
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, dict | list) and _has_sensitive_code(item):
                return True
    return False


def is_sensitive(resource: dict[str, Any]) -> bool:
    labels = (resource.get("meta") or {}).get("security") or []
    if any(isinstance(label, dict) and label.get("code") in RESTRICTED_LABELS for label in labels):
        return True
    return _has_sensitive_code({k: v for k, v in resource.items() if k not in ("meta", "text")})


def main_category(rt: ResourceType, resource: dict[str, Any] | None = None) -> DataCategory:
    """The resource's own category; health data that carries a sensitive code is sensitive."""
    if resource is not None and rt.category in HEALTH_CATEGORIES and is_sensitive(resource):
        return DataCategory.SENSITIVE_CLINICAL
    return rt.category


def possible_categories(rt: ResourceType) -> frozenset[DataCategory]:
    """Every category an instance of ``rt`` may hold, known before decrypting it."""
    found = {rt.category, *rt.element_categories.values()}
    if rt.category in HEALTH_CATEGORIES:
        found.add(DataCategory.SENSITIVE_CLINICAL)
    if rt.is_patient:
        found.add(DataCategory.IDENTITY)
    return frozenset(found)


def _identifier_category(identifier: Any) -> DataCategory:
    system = identifier.get("system") if isinstance(identifier, dict) else None
    return DataCategory.GOVERNMENT_ID if system in GOVERNMENT_ID_SYSTEMS else DataCategory.IDENTITY


def _itemised(rt: ResourceType, name: str) -> Callable[[Any], DataCategory] | None:
    """For an element whose items differ in category, each item's: a patient's
    identifiers (the HKID is a government id, a record number identity). None for any
    other element. Contained resources are not judged item by item: the read and write
    decisions are taken on the categories a type may hold (``possible_categories``),
    which would have to hold every category a contained resource may be of first."""
    if name == "identifier" and rt.is_patient:
        return _identifier_category
    return None


def _element_category(rt: ResourceType, name: str, main: DataCategory) -> DataCategory:
    """The category of the element ``name``: a primitive's ``_name`` sibling (its id and
    extensions: a cause of death beside ``deceasedDateTime``) is its element's."""
    return rt.element_categories.get(name[1:] if name.startswith("_") else name, main)


def element_categories(
    rt: ResourceType, resource: dict[str, Any], *, main: DataCategory | None = None
) -> set[DataCategory]:
    """The categories present in this resource (``main``: its ``main_category``, when
    the caller has it already)."""
    if main is None:
        main = main_category(rt, resource)
    present: set[DataCategory] = {main}
    for name, value in resource.items():
        if name in _ALWAYS:
            continue
        itemised = _itemised(rt, name)
        if itemised is not None and isinstance(value, list):
            present.update(itemised(item) for item in value)
        else:
            present.add(_element_category(rt, name, main))
    return present


def changed_categories(
    rt: ResourceType, submitted: dict[str, Any], current: dict[str, Any]
) -> set[DataCategory]:
    """The categories an update changes: the resource's own, and those of every element
    added, removed or altered. A physician correcting a phone number does not rewrite
    the HKID number the record also holds."""
    changed: set[DataCategory] = {main_category(rt, submitted), main_category(rt, current)}
    for name in (set(submitted) | set(current)) - _ALWAYS:
        old, new = current.get(name), submitted.get(name)
        if old == new:
            continue
        itemised = _itemised(rt, name)
        if itemised is not None:
            before = [item for item in old or [] if isinstance(item, dict)]
            after = [item for item in new or [] if isinstance(item, dict)]
            for category in {itemised(item) for item in before + after}:
                if [i for i in before if itemised(i) == category] != [
                    i for i in after if itemised(i) == category
                ]:
                    changed.add(category)
        else:
            changed.add(_element_category(rt, name, main_category(rt, submitted)))
    return changed


def subset(
    rt: ResourceType, resource: dict[str, Any], granted: frozenset[DataCategory]
) -> dict[str, Any] | None:
    """``resource`` with withheld elements removed (and labelled), or None if its main
    category is withheld."""
    main = main_category(rt, resource)
    if main not in granted:
        return None
    kept: dict[str, Any] = {}
    removed = False
    for name, value in resource.items():
        itemised = _itemised(rt, name)
        if name in _ALWAYS:
            kept[name] = value
        elif itemised is not None and isinstance(value, list):
            visible = [item for item in value if itemised(item) in granted]
            removed = removed or len(visible) != len(value)
            if visible:
                kept[name] = visible
        elif _element_category(rt, name, main) in granted:
            kept[name] = value
        else:
            removed = True
    if not removed:
        return resource
    # The narrative may repeat what was removed.
    kept.pop("text", None)
    return mark_subsetted(kept)


def mark_subsetted(kept: dict[str, Any]) -> dict[str, Any]:
    """``kept`` (a new dict, elements taken from a resource) labelled SUBSETTED, once:
    the one way a view of a record says it is not the whole record, whether the role
    withheld elements or the client asked for fewer (``fhir/views.py``), or both. A
    new meta with a new security list: what it shares with the stored resource is never
    changed."""
    meta = dict(kept.get("meta") or {})
    labels = meta.get("security") or []
    if not any(_is_subsetted(label) for label in labels):
        meta["security"] = [*labels, SUBSETTED]
    kept["meta"] = meta
    return kept


def without_subsetted(resource: dict[str, Any]) -> dict[str, Any]:
    """``resource`` without the SUBSETTED label (matched by system and code), which marks
    a reader's view and never a record: a client that saves back what it read sends it.
    The same object when there is none to take out; a new one (and a new meta) if so."""
    meta = resource.get("meta")
    if not isinstance(meta, dict) or not isinstance(meta.get("security"), list):
        return resource
    labels = [label for label in meta["security"] if not _is_subsetted(label)]
    if len(labels) == len(meta["security"]):
        return resource
    kept = {name: value for name, value in meta.items() if name != "security"}
    if labels:
        kept["security"] = labels
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
    HKID number the front desk never saw.
    """
    merged = dict(submitted)
    main = main_category(rt, current)
    for name, value in current.items():
        if name in _ALWAYS:
            continue
        itemised = _itemised(rt, name)
        if itemised is not None and isinstance(value, list):
            hidden = [item for item in value if itemised(item) not in granted]
            if hidden:
                merged[name] = [*(submitted.get(name) or []), *hidden]
        elif _element_category(rt, name, main) not in granted and name not in submitted:
            merged[name] = value
    return merged
