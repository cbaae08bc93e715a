"""A FHIR Parameters resource (an operation's input) as the list of its parts, each
with the type its value was given as. Plain parsing, no I/O.

An operation must see every part a client sent, repeated ones included, and what type
each value came as: reading only the types it expects, keyed by name, drops the rest
without a word (a ``_since`` sent as ``valueInstant``, a second ``_type``), and an
operation that filters what it releases would then release more than was asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class NotParameters(ValueError):
    """The document is not a Parameters resource whose parts each have a name."""


@dataclass(frozen=True)
class Part:
    """One ``parameter`` of a Parameters resource: its name, the element its value was
    given in (``valueInstant``...; None when it has no value: a ``resource`` or nested
    ``part`` instead, or nothing at all), and that value as sent (JSON)."""

    name: str
    value_type: str | None
    value: Any = None


def parts(document: Any) -> list[Part]:
    """Every part of ``document`` in the order sent; NotParameters if it is not a
    Parameters resource, a part has no name, or a part has two values (FHIR allows
    one ``value[x]``)."""
    if not isinstance(document, dict) or document.get("resourceType") != "Parameters":
        raise NotParameters("send a Parameters resource")
    items = document.get("parameter", [])
    if not isinstance(items, list):
        raise NotParameters("send a Parameters resource")
    found: list[Part] = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise NotParameters("send a Parameters resource with named parameters")
        values = [key for key in item if isinstance(key, str) and key.startswith("value")]
        if len(values) > 1:
            raise NotParameters("a parameter has more than one value[x]")
        if values:
            found.append(Part(item["name"], values[0], item[values[0]]))
        else:
            found.append(Part(item["name"], None))
    return found
