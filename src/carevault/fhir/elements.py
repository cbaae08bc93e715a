"""Reading values out of FHIR JSON by simple dotted paths."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from typing import Any

#: A FHIR id (R4 datatypes.html#id): what a request may name, a store column holds.
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


@cache
def _steps(path: str) -> tuple[str, ...]:
    return tuple(path.split("."))


def values_at(resource: dict[str, Any], path: str) -> list[Any]:
    """Every value at ``path`` ("participant.actor"), lists flattened at each step."""
    steps = _steps(path)
    if len(steps) == 1 and isinstance(resource, dict):
        # Most search and reference paths are one element of the resource itself.
        value = resource.get(path)
        if isinstance(value, list):
            return list(value)
        return [] if value is None else [value]
    current: list[Any] = [resource]
    for step in steps:
        following: list[Any] = []
        for item in current:
            if not isinstance(item, dict):
                continue
            value = item.get(step)
            if isinstance(value, list):
                following.extend(value)
            elif value is not None:
                following.append(value)
        current = following
    return current


def reference_targets(resource: dict[str, Any], paths: tuple[str, ...]) -> list[tuple[str, str]]:
    """(type, id) of each relative reference ``Type/id`` found at ``paths``."""
    found: list[tuple[str, str]] = []
    for path in paths:
        for value in values_at(resource, path):
            parsed = parse_reference(value)
            if parsed is not None:
                found.append(parsed)
    return found


def parse_reference(value: Any) -> tuple[str, str] | None:
    """(type, id) of a Reference element or reference string, if it is relative."""
    reference = value.get("reference") if isinstance(value, dict) else value
    if not isinstance(reference, str):
        return None
    parts = reference.split("/")
    if len(parts) == 2 and parts[0] and parts[1]:
        return parts[0], parts[1]
    if len(parts) == 4 and parts[2] == "_history":
        return parts[0], parts[1]
    return None


def walk_references(node: Any) -> Iterator[dict[str, Any]]:
    """Every dict holding a ``reference`` string, anywhere in ``node``."""
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str):
            yield node
        for value in node.values():
            if isinstance(value, dict | list):
                yield from walk_references(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk_references(item)
