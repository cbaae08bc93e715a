"""A compiled check that a resource is certainly valid, for bulk loads.

``fhir.validate`` checks a resource three times over: a strict walk of its JSON
types, the content rules, then the fhir.resources R4B model, which builds a pydantic
object per element (about 3 ms for a Synthea record, most of an import's time). This
module does the same checks in one pass over a table built once per model: unknown
and missing elements, one value per choice (``value[x]``), arrays where arrays go,
JSON types, codes of required value sets, string bounds and control characters,
number bounds, dates the store holds, HKID check digits, and each primitive's format
through the very pydantic validator the model would run on it (cached by value: codes,
systems and references repeat from record to record).

It also keeps the record rules that walk a whole record (``content.check_record_rules``:
no government identity number in any Identifier but the Patient resource's own
``identifier`` list, and no HKID in the strings billing reads that carry a person's
number with an insurer: ``government.BILLING_STRINGS``), since it walks
every object anyway; checks each narrative's XHTML
(``fhir.xhtml``); and asks R4's rules on contained resources (``fhir.contained``) of a
record that has any. It answers only "certainly valid" (True) or "not sure" (False).
Anything it does not handle (primitive extensions ``_x``, an element under a name it
does not know) and any rule broken answers False, and the record then goes through
``validate_resource``, which refuses it with the usual reasons or accepts it. So a
record this check passes is one the full validation passes, and a refusal reads the
same whichever way the record came (tests/unit/bulk/test_shape.py checks both, on
records and on thousands of broken copies of them).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import TypeAdapter, ValidationError

from carevault.domain import hkid
from carevault.fhir import contained, content, dates, government, xhtml
from carevault.fhir.content import InputLimits, Tier
from carevault.fhir.normalise import HKID_SYSTEM
from carevault.fhir.outcome import Issue
from carevault.fhir.validate import _MAX_DEPTH, _fields

_BOOL, _INTEGER, _DECIMAL, _STRING, _COMPLEX, _RESOURCE, _ANY = range(7)
#: Primitive verdicts kept (value → valid) before the cache starts again.
_CACHE_LIMIT = 200_000
#: Strings longer than this are checked every time rather than kept.
_CACHED_CHARS = 200


@dataclass(frozen=True)
class _Element:
    is_list: bool
    kind: int
    #: The model of a complex element; None otherwise.
    model: Any
    #: The allowed codes of a code bound to a required value set, if any.
    codes: frozenset[str] | None
    tier: Tier
    #: The pydantic validator of one value of a primitive element.
    adapter: TypeAdapter[Any] | None


@dataclass(frozen=True)
class _Model:
    elements: dict[str, _Element]
    required: tuple[str, ...]
    required_set: frozenset[str]
    #: Each choice (``value[x]``): its names, and whether one of them is required.
    choices: tuple[tuple[frozenset[str], bool], ...]
    is_identifier: bool
    #: The model's elements of type Identifier that may hold no government identity
    #: number (``government.check_government_ids``): all of them but a Patient's own
    #: ``identifier`` list, whose items a contained Patient is judged on apart
    #: (``certainly_valid``).
    identifiers: tuple[str, ...]
    #: A record billing reads, whose strings that carry a person's number with an insurer
    #: may hold no HKID (``government.check_billing_ids``).
    holds_billing_ids: bool


class Shapes:
    """Certain verdicts for resources; one per process (it caches per model and value)."""

    def __init__(self, limits: InputLimits) -> None:
        self.limits = limits
        self._seen: dict[tuple[int, type, Any], bool] = {}
        #: Verdicts on strings, by (element, value); elements live as long as the process
        #: (``_compiled`` keeps them), so their ids stay theirs.
        self._strings: dict[tuple[int, str], bool] = {}

    def certainly_valid(self, resource: Any) -> bool:
        """True only if ``validate_resource(resource, limits=...)`` accepts it."""
        if not isinstance(resource, dict):
            return False
        name = resource.get("resourceType")
        if not isinstance(name, str) or not name.isalnum():
            return False
        model = _resource_model(name)
        if model is None:
            return False
        if not self._object(model, resource, 0, top=True):
            return False
        if "contained" in resource:
            # R4's rules on contained resources (``fhir.contained``): few records hold any.
            broken: list[Issue] = []
            contained.check(resource, name, broken)
            # Only the record's own Patient keeps a government number, not one it holds.
            return not broken and not any(
                item.get("resourceType") == "Patient" and _government_id_in(item.get("identifier"))
                for item in resource["contained"]
            )
        return True

    def _object(self, model: Any, data: dict[str, Any], depth: int, *, top: bool = False) -> bool:
        if depth > _MAX_DEPTH or not data:
            return False
        spec = _compiled(model)
        elements = spec.elements
        strings = self._strings
        # The commonest values are taken here rather than through ``_value``: an object
        # (one call the fewer per level) and a string whose verdict is kept (most of a
        # record's strings: codes, systems, references and dates repeat).
        for key, value in data.items():
            element = elements.get(key)
            if element is None:
                if top and key == "resourceType":
                    continue
                return False
            if value is None:
                return False
            kind = element.kind
            if element.is_list:
                if not isinstance(value, list) or not value:
                    return False
                if kind == _COMPLEX:
                    inner = element.model
                    for item in value:
                        if not isinstance(item, dict) or not self._object(inner, item, depth + 1):
                            return False
                    continue
                for item in value:
                    if (
                        kind == _STRING
                        and isinstance(item, str)
                        and strings.get((id(element), item))
                    ):
                        continue
                    if not self._value(element, item, depth):
                        return False
            elif kind == _COMPLEX:
                if not isinstance(value, dict) or not self._object(element.model, value, depth + 1):
                    return False
            elif kind == _STRING and isinstance(value, str) and strings.get((id(element), value)):
                continue
            elif isinstance(value, list) or not self._value(element, value, depth):
                return False
        if spec.required and not data.keys() >= spec.required_set:
            return False
        for group, one_required in spec.choices:
            present = len(group.intersection(data))
            if present > 1 or (one_required and present == 0):
                return False
        if spec.is_identifier and data.get("system") == HKID_SYSTEM:
            value = data.get("value")
            if isinstance(value, str) and not hkid.is_valid(value):
                return False
        # The government-number rule, here rather than in a walk of its own: this walk
        # visits every object of a record it passes already (a record broken either way
        # goes to the full validation, which runs the rule for its reason).
        if spec.identifiers:
            for name in spec.identifiers:
                found = data.get(name)
                if found is not None and _government_id_in(found):
                    return False
        # A billing record's strings that carry a person's number with an insurer: no
        # HKID (``government.check_billing_ids``).
        return not (spec.holds_billing_ids and government.billing_hkids(data))

    def _value(self, element: _Element, value: Any, depth: int) -> bool:
        kind = element.kind
        if kind == _COMPLEX:
            return isinstance(value, dict) and self._object(element.model, value, depth + 1)
        if kind == _RESOURCE:
            # A contained resource is checked as the resource it names, as the model does.
            inner = value.get("resourceType") if isinstance(value, dict) else None
            model = _resource_model(inner) if isinstance(inner, str) and inner.isalnum() else None
            return model is not None and self._object(model, value, depth + 1, top=True)
        if kind == _STRING:
            if not isinstance(value, str):
                return False
            # Codes, systems, references and dates repeat record after record: the whole
            # verdict on a string (the checks below and its primitive's) is kept.
            # Long texts (narratives, notes) rarely repeat and would swell the cache.
            if len(value) > _CACHED_CHARS:
                return self._string(element, value)
            key = (id(element), value)
            known = self._strings.get(key)
            if known is None:
                known = self._string(element, value)
                if len(self._strings) >= _CACHE_LIMIT:
                    self._strings.clear()
                self._strings[key] = known
            return known
        if kind == _BOOL:
            if not isinstance(value, bool):
                return False
        elif kind in (_INTEGER, _DECIMAL):
            if isinstance(value, bool) or not isinstance(value, int | Decimal):
                return False
            if kind == _INTEGER and not isinstance(value, int):
                return False
            if content.number_problem(value) is not None:
                return False
        else:
            return False
        return self._primitive(element, value)

    def _string(self, element: _Element, value: str) -> bool:
        if not value.strip():
            return False
        if element.codes is not None and value not in element.codes:
            return False
        limit = min(self.limits.chars(element.tier), self.limits.text_chars)
        if len(value) > limit:
            return False
        if element.tier is Tier.DATE and not dates.year_in_range(value):
            return False
        if element.tier is Tier.XHTML and xhtml.problem(value) is not None:
            return False
        if content.has_control_characters(value):
            return False
        return self._primitive(element, value)

    def _primitive(self, element: _Element, value: Any) -> bool:
        adapter = element.adapter
        if adapter is None:
            return False
        key = (id(adapter), type(value), value)
        known = self._seen.get(key)
        if known is None:
            try:
                adapter.validate_python(value)
                known = True
            except (ValidationError, ValueError, TypeError):
                known = False
            if len(self._seen) >= _CACHE_LIMIT:
                self._seen.clear()
            self._seen[key] = known
        return known


def compile_all(names: Iterable[str]) -> int:
    """Compile the checks of the resource types ``names`` and of every element model
    they hold, ahead of their first record (a checking process does it while the writer
    checks the first batches itself); the number of models compiled."""
    seen: set[Any] = set()
    waiting = [model for model in map(_resource_model, names) if model is not None]
    while waiting:
        model = waiting.pop()
        if model in seen:
            continue
        seen.add(model)
        waiting.extend(
            element.model for element in _compiled(model).elements.values() if element.model
        )
    return len(seen)


class _Unsure(Exception):
    """The check met something it does not model: the full validation decides."""


@cache
def _resource_model(name: str) -> Any:
    try:
        model = get_fhir_model_class(name)
    except (KeyError, ValueError, ImportError, AttributeError):
        return None
    return model if getattr(model, "__resource_type__", None) == name else None


@cache
def _compiled(model: Any) -> _Model:
    walked = _fields(model)
    owner = getattr(model, "__resource_type__", model.__name__)
    elements: dict[str, _Element] = {}
    aliases: dict[str, str] = {}
    for name, info in model.model_fields.items():
        alias = info.alias or name
        aliases[name] = alias
        if alias.startswith("_") or alias == "resourceType" or alias not in walked:
            continue  # primitive extensions and the like: not modelled, so "not sure"
        is_list, kind, detail, tier = walked[alias]
        try:
            item = _item(info.annotation, info.metadata)
        except _Unsure:
            kind = _ANY
        if kind == _COMPLEX and not _is_model(detail):
            kind = _ANY
        elements[alias] = _Element(
            is_list=is_list,
            kind=kind,
            model=detail if kind == _COMPLEX else None,
            codes=detail if kind == _STRING and isinstance(detail, frozenset) else None,
            tier=tier,
            adapter=_adapter(item) if kind in (_BOOL, _INTEGER, _DECIMAL, _STRING) else None,
        )
    required = {
        aliases[name]
        for name, info in model.model_fields.items()
        if info.is_required() and aliases[name] != "resourceType"
    }
    built = model.model_construct()
    required |= {aliases.get(name, name) for name, _ in built.get_required_fields()}
    choices = tuple(
        (
            frozenset(aliases.get(name, name) for name in group),
            any(_choice_required(model.model_fields.get(name)) for name in group),
        )
        for group in built.get_one_of_many_fields().values()
    )
    return _Model(
        elements=elements,
        required=tuple(sorted(required)),
        required_set=frozenset(required),
        choices=choices,
        is_identifier=owner == "Identifier",
        # By type, where ``government.check_government_ids`` knows them by name: it judges
        # the few elements of other types under those names too (a Reference's string
        # ``reference``, an Observation's ``component``), none of which can read as a
        # government number, and asking them cost each Reference here a call.
        identifiers=tuple(
            name
            for name, element in elements.items()
            if element.kind == _COMPLEX
            and element.model.__name__ == "Identifier"
            and (owner, name) != _PATIENTS_OWN
        ),
        holds_billing_ids=owner in government.BILLING_STRINGS,
    )


#: The one list a government number is kept in (the record's own Patient's).
_PATIENTS_OWN = ("Patient", "identifier")


def _government_id_in(found: Any) -> bool:
    """Whether an Identifier element's value (one or a list) holds a government number."""
    return any(
        isinstance(item, dict) and government.is_government_id(item)
        for item in (found if isinstance(found, list) else (found,))
    )


def _choice_required(info: Any) -> bool:
    extra = getattr(info, "json_schema_extra", None)
    return isinstance(extra, dict) and extra.get("one_of_many_required") is True


def _is_model(detail: Any) -> bool:
    return isinstance(detail, type) and hasattr(detail, "model_fields")


def _item(annotation: Any, metadata: list[Any]) -> Any:
    """The annotation of one value of a field (lists and Optional taken off, the
    primitive's own constraints kept)."""
    while True:
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType):
            args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            if len(args) != 1:
                raise _Unsure
            annotation = args[0]
        elif origin in (list, typing.List):  # noqa: UP006 - fhir.resources uses typing.List
            annotation = typing.get_args(annotation)[0]
        else:
            break
    if metadata:
        return typing.Annotated[annotation, *metadata]
    return annotation


@cache
def _adapter(annotation: Any) -> TypeAdapter[Any] | None:
    try:
        return TypeAdapter(annotation)
    except Exception:  # noqa: BLE001 - a type pydantic cannot build alone: "not sure"
        return None
