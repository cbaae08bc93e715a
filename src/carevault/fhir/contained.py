"""R4's rules on the contained resources themselves (answered with 400).

* dom-2: a contained resource contains no resources of its own.
* dom-4: a contained resource has no ``meta.versionId`` or ``meta.lastUpdated``: it
  has no versions apart from its container's.
* dom-5: a contained resource has no security labels (``meta.security``): it is
  labelled as its container is.

A resource contained in a contained one is refused here, as malformed, before the
access policy sees the record; ``fhir.categories`` still judges such an item
sensitive, for records stored before this rule.

dom-3 (each contained resource is referred to from elsewhere in its container) and
ref-1 (a local reference ``#id`` names a contained resource) are not checked here: a
role's view leaves out the contained resources it may not see, and a view saved back
(or patched) refers to them until the gate puts them back (``restore_withheld``), so
they hold only of the record as stored, not of the body a caller sends.

Issues name the element and the invariant, never a value.
"""

from __future__ import annotations

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
