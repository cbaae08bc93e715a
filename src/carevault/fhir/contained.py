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
(``restore_withheld``), so it holds only of the record as it will be stored, which the
gate judges once it has put back what the caller was not shown.

dom-3 (each contained resource is referred to from elsewhere in its container) is not
checked: clinic apps and this project's own tests send contained resources that nothing
refers to (a result kept inside a Patient), which R4 validators reject; refusing them
needs those writers told first (integrator round 72, left open).

Issues name the element and the invariant, never a value.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any

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


def check_references(
    resource: dict[str, Any], path: str, *, restored: Collection[str] = ()
) -> list[Issue]:
    """An issue for each local reference in ``resource`` (the record as it will be
    stored) that names no resource contained in it (R4 ref-1: "SHALL have a contained
    resource if a local reference is provided"; ``#`` alone, the container, only from a
    contained resource). ``restored``: the elements put back from the stored record,
    which the writer was not shown (``subsetting.restore_withheld``): a reference there
    is named by no place, only by what the writer may do about it."""
    items = resource.get("contained")
    contained = items if isinstance(items, list) else []
    ids = {
        item["id"]
        for item in contained
        if isinstance(item, dict) and isinstance(item.get("id"), str)
    }
    issues: list[Issue] = []
    hidden = False
    for name, value in resource.items():
        inside = name == "contained"
        for where, reference in _local_references(value, f"{path}.{name}"):
            if (reference == "#" and inside) or reference[1:] in ids:
                continue
            if name in restored:
                hidden = True
            else:
                issues.append(_broken(where, "ref-1", _REF_1))
    if hidden:
        issues.append(
            _broken(
                f"{path}.contained",
                "ref-1",
                "an element you were not shown refers to a resource contained in this one: "
                "keep the contained resources you were shown",
            )
        )
    return issues


_REF_1 = "a local reference (#id) names a resource contained in this one"


def _local_references(node: Any, path: str) -> Iterator[tuple[str, str]]:
    """(FHIRPath of the element, the reference) of each ``reference`` starting with
    ``#`` in ``node``, anywhere below it."""
    if isinstance(node, dict):
        reference = node.get("reference")
        if isinstance(reference, str) and reference.startswith("#"):
            yield f"{path}.reference", reference
        for name, value in node.items():
            if isinstance(value, dict | list):
                yield from _local_references(value, f"{path}.{name}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _local_references(item, f"{path}[{index}]")
