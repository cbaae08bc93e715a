"""Parsing and validating FHIR JSON.

Three checks, all required: a strict walk of the JSON against the model's element types
(FHIR JSON has no "true" strings or quoted numbers, no nulls, no empty arrays or
objects, no duplicate keys), with R4's rules on narrative XHTML (``fhir.xhtml``) and on contained
resources and local references (``fhir.contained``), answered with 400; the content
rules of ``fhir.content`` (no control characters, bounded strings and numbers, HKID
check digits, dates the store holds), answered with 422; then the fhir.resources R4B
model, which checks cardinality, required elements, value formats and unknown elements.
Issues name the element path and the rule, never the offending value. The model only
checks: what is stored is the parsed JSON, decimals as sent.
"""

from __future__ import annotations

import types
import typing
from decimal import Decimal
from functools import cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from carevault.fhir import contained, content, government, xhtml
from carevault.fhir.content import DEFAULT_LIMITS, InputLimits, Tier
from carevault.fhir.jsonio import MalformedJson, parse
from carevault.fhir.outcome import FhirError, Issue

_MAX_DEPTH = 64


class InvalidResource(FhirError):
    """The body is not valid FHIR R4 (400), or breaks a content rule (422)."""


def _short(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "_-." else "?" for ch in text[:40])


def parse_json(body: bytes) -> Any:
    """Parse a request body, decimals exact; malformed, duplicate keys, too deep → 400."""
    try:
        return parse(body)
    except MalformedJson as error:
        raise _invalid("structure", str(error)) from None


def _invalid(code: str, diagnostics: str, expression: tuple[str, ...] = ()) -> InvalidResource:
    return InvalidResource(400, [Issue(code, diagnostics, expression=expression)])


def validate_resource(
    data: Any, expected_type: str | None = None, limits: InputLimits = DEFAULT_LIMITS
) -> dict[str, Any]:
    """Return ``data`` if it is a valid resource (of ``expected_type`` if given)."""
    if not isinstance(data, dict):
        raise _invalid("structure", "the body must be a JSON object holding one resource")
    resource_type = data.get("resourceType")
    if not isinstance(resource_type, str):
        raise _invalid("required", "resourceType is missing", ("resourceType",))
    if expected_type is not None and resource_type != expected_type:
        raise _invalid(
            "invalid",
            f"the body is a {_short(resource_type)} but the URL names {expected_type}",
            ("resourceType",),
        )
    try:
        model = get_fhir_model_class(resource_type)
    except (KeyError, ValueError, ImportError, AttributeError):
        raise _invalid("not-supported", f"unknown resourceType '{_short(resource_type)}'") from None
    issues: list[Issue] = []
    rules: list[Issue] = []
    _check_object(model, data, resource_type, _Walk(issues, rules, limits), 0)
    if not issues:
        contained.check(data, resource_type, issues)
    if issues:
        raise InvalidResource(400, issues[:50])
    content.check_all(data, resource_type, rules, limits)
    content.check_record_rules(data, resource_type, rules)
    if rules:
        # The walk and the generic pass may both object to one element: name it once.
        named: dict[tuple[str, ...], Issue] = {}
        for issue in rules:
            named.setdefault(issue.expression, issue)
        raise InvalidResource(422, list(named.values())[:50])
    try:
        model.model_validate(data)
    except ValidationError as error:
        raise InvalidResource(
            400, [_issue(resource_type, e) for e in error.errors()[:50]]
        ) from None
    return data


def _issue(resource_type: str, error: Any) -> Issue:
    # FHIRPath, as every other issue's expression: a repetition's index in brackets
    # (``Patient.photo[0].data``), not pydantic's ``photo.0.data``.
    path = resource_type
    for part in error.get("loc", ()):
        if isinstance(part, int):
            path += f"[{part}]"
        elif not str(part).startswith("_"):
            path += f".{part}"
    kind = error.get("type", "")
    code = {"missing": "required", "extra_forbidden": "structure"}.get(kind, "value")
    message = error.get("msg", "invalid value")
    if kind == "extra_forbidden":
        message = "unknown element"
    # Pydantic puts the input value in errors; only its location and rule are kept.
    return Issue(code, f"{path}: {message}", expression=(path,))


# --- strict JSON type walk ---------------------------------------------------------------------

_BOOL, _INTEGER, _DECIMAL, _STRING, _COMPLEX, _RESOURCE, _ANY = range(7)


class _Walk(typing.NamedTuple):
    issues: list[Issue]
    rules: list[Issue]
    limits: InputLimits


@cache
def _fields(model: Any) -> dict[str, tuple[bool, int, Any, Tier]]:
    """element name → (is_list, kind, detail, tier): detail is the model class of a
    complex element, or the allowed codes of a code element bound to a required value
    set; tier is what a string element's length and content are checked as."""
    found: dict[str, tuple[bool, int, Any, Tier]] = {}
    owner = getattr(model, "__resource_type__", model.__name__)
    for name, info in model.model_fields.items():
        alias = info.alias or name
        is_list, kind, detail, fhir_type = _kind(info.annotation)
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        codes = extra.get("enum_values")
        if kind == _STRING and isinstance(codes, list) and codes:
            detail = frozenset(str(code) for code in codes)
        found[alias] = (is_list, kind, detail, content.tier(owner, alias, fhir_type))
    return found


def _kind(annotation: Any) -> tuple[bool, int, Any, str]:
    is_list = False
    fhir_type = ""
    while True:
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType):
            args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            annotation = args[0] if len(args) == 1 else Any
        elif origin in (list, typing.List):  # noqa: UP006 - fhir.resources uses typing.List
            is_list = True
            annotation = typing.get_args(annotation)[0]
        elif origin is typing.Annotated:
            annotation, *metadata = typing.get_args(annotation)
            names = [getattr(item, "__visit_name__", "") for item in metadata]
            fhir_type = next((name for name in names if name), fhir_type)
        else:
            break
    if annotation is bool:
        return is_list, _BOOL, None, fhir_type
    if annotation is int:
        return is_list, _INTEGER, None, fhir_type
    if annotation is Decimal or annotation is float:
        return is_list, _DECIMAL, None, fhir_type
    getter = getattr(annotation, "get_model_klass", None)
    if getter is not None:
        klass = getter()
        if getattr(klass, "__resource_type__", "") in ("Resource", "DomainResource"):
            return is_list, _RESOURCE, None, fhir_type
        return is_list, _COMPLEX, klass, fhir_type
    if isinstance(annotation, type) and annotation is not typing.Any:
        return is_list, _STRING, None, fhir_type
    return is_list, _ANY, None, fhir_type


def _check_object(model: Any, data: dict[str, Any], path: str, walk: _Walk, depth: int) -> None:
    issues = walk.issues
    if depth > _MAX_DEPTH:
        issues.append(Issue("structure", f"{path}: nested too deeply", expression=(path,)))
        return
    fields = _fields(model)
    if model.__name__ == "Identifier":
        government.check_identifier(data, path, walk.rules)
    for key, value in data.items():
        where = f"{path}.{key}"
        if key.startswith("_") and _holds_empty_object(value):
            issues.append(_empty_object(where))
            continue
        if key.startswith("_") or key == "resourceType" or key == "fhir_comments":
            continue
        spec = fields.get(key)
        if spec is None:
            continue  # the model reports unknown elements with their path
        is_list, kind, klass, tier = spec
        if value is None:
            issues.append(Issue("structure", f"{where}: null is not allowed", expression=(where,)))
        elif is_list:
            if not isinstance(value, list):
                issues.append(Issue("structure", f"{where}: must be an array", expression=(where,)))
            elif not value:
                issues.append(
                    Issue(
                        "structure", f"{where}: empty arrays are not allowed", expression=(where,)
                    )
                )
            else:
                for index, item in enumerate(value):
                    _check_value(kind, klass, tier, item, f"{where}[{index}]", walk, depth)
        elif isinstance(value, list):
            issues.append(Issue("structure", f"{where}: must not be an array", expression=(where,)))
        else:
            _check_value(kind, klass, tier, value, where, walk, depth)


def _empty_object(where: str) -> Issue:
    # R4 element.html ele-1, "All FHIR elements must have a @value or children": ``{}``
    # is refused as ``[]`` is, in the same words (integrator round 65: an Observation
    # stored with ``"code": {}``, a required element with nothing in it).
    return Issue("structure", f"{where}: empty objects are not allowed", expression=(where,))


def _holds_empty_object(value: Any) -> bool:
    """Whether a primitive's extension element (``_birthDate``, ``_given``) is ``{}`` or
    holds one: ``null`` keeps a place in a list (R4 json.html), ``{}`` says nothing."""
    if isinstance(value, list):
        return any(isinstance(item, dict) and not item for item in value)
    return isinstance(value, dict) and not value


def _check_value(
    kind: int, klass: Any, tier: Tier, value: Any, where: str, walk: _Walk, depth: int
) -> None:
    issues = walk.issues
    wrong: str | None = None
    if kind == _BOOL and not isinstance(value, bool):
        wrong = "must be true or false"
    elif kind == _INTEGER and (isinstance(value, bool) or not isinstance(value, int)):
        wrong = "must be a JSON integer"
    elif kind == _DECIMAL and (
        isinstance(value, bool) or not isinstance(value, int | float | Decimal)
    ):
        wrong = "must be a JSON number"
    elif kind == _STRING and not isinstance(value, str):
        wrong = "must be a JSON string"
    elif kind == _STRING and not value.strip():
        wrong = "must not be empty"
    elif kind == _STRING and klass is not None and value not in klass:
        wrong = "is not a code of the required value set"
    elif kind in (_COMPLEX, _RESOURCE) and not isinstance(value, dict):
        wrong = "must be a JSON object"
    elif kind in (_COMPLEX, _RESOURCE) and not value:
        issues.append(_empty_object(where))
        return
    if wrong is not None:
        issues.append(Issue("value", f"{where}: {wrong}", expression=(where,)))
        return
    if kind == _STRING:
        content.check_string(value, tier, where, walk.rules, walk.limits)
        if tier is Tier.XHTML:
            problem = xhtml.problem(value)
            if problem is not None:
                issues.append(Issue("invalid", f"{where}: {problem}", expression=(where,)))
    elif kind == _COMPLEX:
        _check_object(klass, value, where, walk, depth + 1)
    elif kind == _RESOURCE:
        inner = value.get("resourceType")
        try:
            model = get_fhir_model_class(inner) if isinstance(inner, str) else None
        except (KeyError, ValueError, ImportError, AttributeError):
            model = None
        if model is None:
            issues.append(Issue("structure", f"{where}: not a known resource", expression=(where,)))
        else:
            _check_object(model, value, where, walk, depth + 1)
