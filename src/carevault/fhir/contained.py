"""R4's rules on the contained resources themselves (answered with 400).

* dom-2: a contained resource contains no resources of its own.
* dom-4: a contained resource has no ``meta.versionId`` or ``meta.lastUpdated``: it
  has no versions apart from its container's.
* dom-5: a contained resource has no security labels (``meta.security``): it is
  labelled as its container is.

A resource contained in a contained one is refused here, as malformed, before the
access policy sees the record; ``fhir.categories`` still judges such an item
sensitive, for records stored before this rule.

ref-1 (a local reference ``#id`` names a contained resource) is checked apart, by
``check_references``: a role's view leaves out the contained resources it may not see,
and a view saved back (or patched) refers to them until the gate puts them back
(``restore_withheld``). The gate judges the references the writer sent against the
resources contained in the record as it will be stored, once it has put back what the
writer was not shown; the references of elements put back are not judged (which of them
dangles would tell the writer what an element it may not see refers to).

dom-3 (each contained resource is referred to from elsewhere in its container) is not
checked: clinic apps and this project's own tests send contained resources that nothing
refers to (a result kept inside a Patient), which R4 validators reject; refusing them
needs those writers told first (integrator round 72, left open).

Issues name the element and the invariant, never a value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator
from typing import Any

from carevault.fhir import jsonio
from carevault.fhir.outcome import Issue


def check(resource: dict[str, Any], path: str, issues: list[Issue]) -> None:
    """Append an issue for each rule a contained resource of ``resource`` (a resource
    named ``path``) breaks."""
    items = resource.get("contained")
    if not isinstance(items, list):
        return  # none, or not an array: the walk names that
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            continue  # the walk names what is not a resource
        where = f"{path}.contained[{index}]"
        if "contained" in item:
            issues.append(
                _broken(
                    f"{where}.contained",
                    "dom-2",
                    "a contained resource may not contain resources of its own",
                )
            )
        meta = item.get("meta")
        if not isinstance(meta, dict):
            continue
        if "versionId" in meta or "lastUpdated" in meta:
            issues.append(
                _broken(
                    f"{where}.meta",
                    "dom-4",
                    "a contained resource has no meta.versionId or meta.lastUpdated",
                )
            )
        if "security" in meta:
            issues.append(
                _broken(
                    f"{where}.meta.security",
                    "dom-5",
                    "a contained resource has no security labels of its own; label the "
                    "resource that contains it",
                )
            )


def _broken(where: str, invariant: str, rule: str) -> Issue:
    return Issue("invariant", f"{where}: {invariant}: {rule}", expression=(where,))


def may_refer_locally(resource: dict[str, Any]) -> bool:
    """Whether ``resource`` contains resources or may hold a local reference (a string
    starting ``#``): most records do neither, which one serialisation tells (2-3 µs a
    record, where ``check_references`` walks every element)."""
    return "contained" in resource or b'"#' in jsonio.dumps(resource)


def contained_ids(resource: dict[str, Any]) -> set[str]:
    """The ids of the resources contained in ``resource``."""
    items = resource.get("contained")
    return {
        item["id"]
        for item in (items if isinstance(items, list) else ())
        if isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"]
    }


def check_references(
    resource: dict[str, Any],
    path: str,
    *,
    held: Collection[str] | None = None,
    tolerated: Collection[tuple[str, str]] = (),
) -> list[Issue]:
    """An issue for each local reference in ``resource`` that names no contained
    resource (R4 ref-1: "SHALL have a contained resource if a local reference is
    provided"; ``#`` alone, the container, only from a contained resource), named by its
    place in ``resource``. ``held``: the ids of the resources contained in the record as
    it will be stored, when that is not ``resource`` itself (an update into which the
    gate put back what its writer was not shown); ``tolerated``: the (place, reference)
    pairs that broke the rule already in the version replaced (``dangling``), which an
    update sending them back unchanged is not refused for."""
    ids = contained_ids(resource) if held is None else set(held)
    return [
        _broken(where, "ref-1", _REF_1)
        for where, reference in dangling(resource, path, ids)
        if (where, reference) not in tolerated
    ]


def dangling(resource: dict[str, Any], path: str, ids: Collection[str]) -> list[tuple[str, str]]:
    """(place, reference) of each local reference in ``resource`` that names none of
    ``ids`` (``#`` alone: its container, from a contained resource only). The references
    are read off the serialised record first, and the places worked out only where one
    dangles: a Synthea claim took 79 µs with every place (the review of stop 61)."""
    if all(reference[1:] in ids for reference in _local_references(resource)):
        return []
    broken: list[tuple[str, str]] = []
    for name, value in resource.items():
        for where, reference in _placed_references(value, f"{path}.{name}"):
            if reference[1:] not in ids and (name != "contained" or reference != "#"):
                broken.append((where, reference))
    return broken


_REF_1 = "a local reference (#id) names a resource contained in this one"


#: A ``reference`` whose value starts with ``#``, in a record as ``jsonio.dumps`` writes
#: it (no spaces; a quote inside a string is escaped, so this matches keys only).
_LOCAL_REFERENCE = re.compile(rb'"reference":"(#(?:[^"\\]|\\.)*)"')


def _local_references(resource: dict[str, Any]) -> list[str]:
    """Every ``reference`` starting with ``#`` anywhere in ``resource``."""
    return [
        json.loads(b'"' + found + b'"')
        for found in _LOCAL_REFERENCE.findall(jsonio.dumps(resource))
    ]


def _placed_references(node: Any, path: str) -> Iterator[tuple[str, str]]:
    """(FHIRPath of the element, the reference) of each ``reference`` starting with
    ``#`` in ``node``, anywhere below it."""
    if isinstance(node, dict):
        reference = node.get("reference")
        if isinstance(reference, str) and reference.startswith("#"):
            yield f"{path}.reference", reference
        for name, value in node.items():
            if isinstance(value, dict | list):
                yield from _placed_references(value, f"{path}.{name}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _placed_references(item, f"{path}[{index}]")
