"""How much of each resource an answer shows: ``_summary`` and ``_elements`` (FHIR R4
search.html#summary, #elements), for reads and searches alike.

A view only ever takes elements away. It is applied to what the caller's role may
already see (the gate's cut, ``fhir/categories.py``), never to the stored record, so it
cannot show anything the role withholds; a resource it takes something from is
labelled SUBSETTED by the same function that labels the role's cut.

Which elements are "summary" and which are mandatory comes from the fhir.resources
models the validator uses (``summary_element_property``, required fields), derived once
per type: the R4B models, whose flags match R4's for the types served here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class

from carevault.fhir import jsonio
from carevault.fhir.subsetting import mark_subsetted

#: A top-level element name as FHIR spells them: no paths (``name.given``), no
#: primitive extensions (``_birthDate``), nothing an expression could hide in.
_ELEMENT_NAME = re.compile(r"^[a-z][A-Za-z0-9]{0,63}$")
#: More names than any resource type has elements (ExplanationOfBenefit, the widest,
#: has under 70 with every choice spelt out): a longer list is not a request for a view.
MAX_ELEMENTS = 100
#: Shown in every view: what says which resource this is and which version.
_ALWAYS = frozenset({"resourceType", "id", "meta"})


class ViewError(ValueError):
    """``_summary`` or ``_elements`` cannot be honoured as given (400 Bad Request). The
    message names the parameter, never a value beyond a cleaned element name."""


class Summary(StrEnum):
    TRUE = "true"
    TEXT = "text"
    DATA = "data"
    COUNT = "count"
    FALSE = "false"


@dataclass(frozen=True)
class View:
    """``summary``: TRUE, TEXT or DATA (None: no summary form); ``elements``: the
    top-level elements asked for by ``_elements`` (None: not asked). At most one of the
    two is set: FHIR gives no meaning to both."""

    summary: Summary | None = None
    elements: frozenset[str] | None = None

    @property
    def cuts(self) -> bool:
        return self.summary is not None or self.elements is not None


#: Every element, as stored.
FULL = View()


@dataclass(frozen=True)
class Elements:
    """What a type's model says of its top-level elements, by JSON name."""

    names: frozenset[str]
    summary: frozenset[str]
    mandatory: frozenset[str]
    #: ``value`` → ``valueQuantity``, ``valueString``…: a choice asked for by its stem.
    choices: dict[str, frozenset[str]]


@cache
def elements_of(type_name: str) -> Elements:
    """The model's view of ``type_name``, once per type."""
    model = get_fhir_model_class(type_name)
    names: set[str] = set()
    summary: set[str] = set()
    mandatory: set[str] = set()
    choices: dict[str, set[str]] = {}
    for field in model.model_fields.values():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if not extra.get("element_property"):
            continue  # fhir_comments, and the ``_name`` siblings of primitives
        name = field.alias or ""
        names.add(name)
        if extra.get("summary_element_property"):
            summary.add(name)
        if field.is_required() or extra.get("element_required"):
            mandatory.add(name)
        stem = extra.get("one_of_many")
        if isinstance(stem, str):
            choices.setdefault(stem, set()).add(name)
            if extra.get("one_of_many_required"):
                mandatory.add(name)
    return Elements(
        frozenset(names),
        frozenset(summary),
        frozenset(mandatory),
        {stem: frozenset(variants) for stem, variants in choices.items()},
    )


@dataclass(frozen=True)
class Asked:
    """What a request's ``_summary`` and ``_elements`` ask for: the view; whether only a
    count is wanted; the pairs honoured, as a search's self link repeats them; and the
    element names ignored (not elements of the type, under lenient handling)."""

    view: View = FULL
    count_only: bool = False
    applied: tuple[tuple[str, str], ...] = ()
    ignored: tuple[str, ...] = ()


def asked_view(
    type_name: str, params: Sequence[tuple[str, str]], *, search: bool, strict: bool
) -> Asked:
    """The view the ``_summary`` and ``_elements`` pairs of ``params`` ask for (the other
    pairs are not looked at). ViewError for a value FHIR does not define, a name that is
    no element name, both parameters at once (FHIR gives that no meaning: refused rather
    than guessed), and, under strict handling, a name ``type_name`` has no element of.
    Lenient handling ignores such a name: it can only leave an element out."""
    summaries = {value for name, value in params if name == "_summary"}
    element_values = [value for name, value in params if name == "_elements"]
    if len(summaries) > 1:
        raise ViewError("_summary is given more than once, with different values")
    summary = parse_summary(summaries.pop(), search=search) if summaries else None
    if summary is Summary.COUNT:
        # No resource is shown: there is nothing for _elements to shape.
        return Asked(count_only=True, applied=(("_summary", summary.value),))
    if summary is not None and element_values:
        raise ViewError("_summary and _elements cannot be used together: give one of them")
    if summary is not None:
        shown_as = None if summary is Summary.FALSE else summary
        return Asked(View(summary=shown_as), applied=(("_summary", summary.value),))
    if not element_values:
        return Asked()
    wanted, named, unknown = parse_elements(type_name, element_values)
    if unknown and strict:
        raise ViewError(f"_elements: '{unknown[0]}' is not an element of {type_name}")
    applied = (("_elements", ",".join(named)),) if named else ()
    return Asked(View(elements=wanted), applied=applied, ignored=tuple(unknown))


def parse_summary(value: str, *, search: bool) -> Summary:
    """``_summary``'s value; ``count`` only on a search (it answers with no resources)."""
    try:
        summary = Summary(value)
    except ValueError:
        allowed = ", ".join(mode.value for mode in Summary if search or mode is not Summary.COUNT)
        raise ViewError(f"_summary must be one of {allowed}") from None
    if summary is Summary.COUNT and not search:
        raise ViewError("_summary=count is for searches only")
    return summary


def parse_elements(
    type_name: str, values: Sequence[str]
) -> tuple[frozenset[str], list[str], list[str]]:
    """What ``_elements`` (every value given, each a comma-separated list) asks of a
    ``type_name``: the elements wanted, a choice's stem (``value``) spelt out as its
    variants; the names honoured, as asked; and the names the type has no element of.
    A name that is not an element name at all (a path, an expression, empty), or more
    names than any type has, is a ViewError."""
    known = elements_of(type_name)
    asked: dict[str, None] = {}
    for value in values:
        for part in value.split(","):
            name = part.strip()
            if not _ELEMENT_NAME.match(name):
                raise ViewError(
                    "_elements takes a comma-separated list of top-level element names "
                    "(no paths, no prefixes)"
                )
            asked[name] = None
            if len(asked) > MAX_ELEMENTS:
                raise ViewError(f"_elements names more than {MAX_ELEMENTS} elements")
    wanted: set[str] = set()
    named: list[str] = []
    unknown: list[str] = []
    for name in asked:
        if name in known.choices:
            wanted |= known.choices[name]
        elif name in known.names or name in _ALWAYS:
            wanted.add(name)
        else:
            unknown.append(name)
            continue
        named.append(name)
    return frozenset(wanted), named, unknown


def kept_names(type_name: str, view: View) -> frozenset[str] | None:
    """The top-level elements ``view`` keeps of a ``type_name`` (None: all but ``text``,
    for ``_summary=data``). Mandatory elements stay in every view: a resource without
    them is not valid FHIR, and FHIR asks servers to return them whether asked or not."""
    known = elements_of(type_name)
    if view.summary is Summary.DATA:
        return None
    if view.summary is Summary.TEXT:
        return _ALWAYS | known.mandatory | {"text"}
    if view.summary is Summary.TRUE:
        return _ALWAYS | known.mandatory | known.summary
    return _ALWAYS | known.mandatory | (view.elements or frozenset())


def shown(type_name: str, resource: dict[str, Any], view: View) -> dict[str, Any]:
    """``resource`` (the caller's view of it already) cut to ``view``: the same object
    when nothing is taken away, else a new one labelled SUBSETTED."""
    if not view.cuts:
        return resource
    keep = kept_names(type_name, view)
    if keep is None:
        kept = {name: value for name, value in resource.items() if name != "text"}
    else:
        # A primitive's ``_name`` (its id and extensions) goes with it.
        kept = {
            name: value
            for name, value in resource.items()
            if name in keep or (name.startswith("_") and name[1:] in keep)
        }
    if len(kept) == len(resource):
        return resource
    return mark_subsetted(kept)


def shown_body(type_name: str, body: bytes, view: View) -> bytes:
    """``shown`` on a stored resource's JSON: the same bytes when nothing is taken away."""
    if not view.cuts:
        return body
    resource = jsonio.load(body)
    cut = shown(type_name, resource, view)
    return body if cut is resource else jsonio.dumps(cut)
