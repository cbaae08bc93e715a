"""Parsing and validating FHIR JSON.

Two checks, both required: a strict walk of the JSON against the model's element
types (FHIR JSON has no "true" strings or quoted numbers, no nulls, no empty
arrays, no duplicate keys), then the fhir.resources R4B model, which checks
cardinality, required elements, value formats and unknown elements. Issues name
the element path and the rule, never the offending value.
"""

from __future__ import annotations

import json
import types
import typing
from decimal import Decimal
from functools import cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from carevault.fhir.outcome import FhirError, Issue

_MAX_DEPTH = 64


class InvalidResource(FhirError):
    """The body is not valid FHIR R4 (400)."""


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"duplicate key '{_short(key)}'")
        seen[key] = value
    return seen


def _short(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "_-." else "?" for ch in text[:40])


def parse_json(body: bytes) -> Any:
    """Parse a request body; malformed JSON or duplicate keys → 400."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid("structure", "the body is not UTF-8 text") from None
    try:
        return json.loads(text, object_pairs_hook=_reject_duplicates, parse_constant=_no_constant)
    except RecursionError:
        raise _invalid("structure", "the body is nested too deeply") from None
    except ValueError as error:
        message = str(error) if "duplicate key" in str(error) else "the body is not valid JSON"
        raise _invalid("structure", message) from None


def _no_constant(name: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")


def _invalid(code: str, diagnostics: str, expression: tuple[str, ...] = ()) -> InvalidResource:
    return InvalidResource(400, [Issue(code, diagnostics, expression=expression)])


def validate_resource(data: Any, expected_type: str | None = None) -> dict[str, Any]:
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
    _check_object(model, data, resource_type, issues, 0)
    if issues:
        raise InvalidResource(400, issues[:50])
    try:
        model.model_validate(data)
    except ValidationError as error:
        raise InvalidResource(
            400, [_issue(resource_type, e) for e in error.errors()[:50]]
        ) from None
    return data


def _issue(resource_type: str, error: Any) -> Issue:
    location = ".".join(str(part) for part in error.get("loc", ()) if not str(part).startswith("_"))
    kind = error.get("type", "")
    code = {"missing": "required", "extra_forbidden": "structure"}.get(kind, "value")
    message = error.get("msg", "invalid value")
    if kind == "extra_forbidden":
        message = "unknown element"
    path = f"{resource_type}.{location}" if location else resource_type
    # Pydantic puts the input value in errors; only its location and rule are kept.
    return Issue(code, f"{path}: {message}", expression=(path,))


# --- strict JSON type walk ---------------------------------------------------------------------

_BOOL, _INTEGER, _DECIMAL, _STRING, _COMPLEX, _RESOURCE, _ANY = range(7)


@cache
def _fields(model: Any) -> dict[str, tuple[bool, int, Any]]:
    """element name → (is_list, kind, detail): the model class of a complex element, or
    the allowed codes of a code element bound to a required value set."""
    found: dict[str, tuple[bool, int, Any]] = {}
    for name, info in model.model_fields.items():
        alias = info.alias or name
        is_list, kind, detail = _kind(info.annotation)
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        codes = extra.get("enum_values")
        if kind == _STRING and isinstance(codes, list) and codes:
            detail = frozenset(str(code) for code in codes)
        found[alias] = (is_list, kind, detail)
    return found


def _kind(annotation: Any) -> tuple[bool, int, Any]:
    is_list = False
    while True:
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType):
            args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            annotation = args[0] if len(args) == 1 else Any
        elif origin in (list, typing.List):  # noqa: UP006 - fhir.resources uses typing.List
            is_list = True
            annotation = typing.get_args(annotation)[0]
        elif origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        else:
            break
    if annotation is bool:
        return is_list, _BOOL, None
    if annotation is int:
        return is_list, _INTEGER, None
    if annotation is Decimal or annotation is float:
        return is_list, _DECIMAL, None
    getter = getattr(annotation, "get_model_klass", None)
    if getter is not None:
        klass = getter()
        if getattr(klass, "__resource_type__", "") in ("Resource", "DomainResource"):
            return is_list, _RESOURCE, None
        return is_list, _COMPLEX, klass
    if isinstance(annotation, type) and annotation is not typing.Any:
        return is_list, _STRING, None
    return is_list, _ANY, None


def _check_object(
    model: Any, data: dict[str, Any], path: str, issues: list[Issue], depth: int
) -> None:
    if depth > _MAX_DEPTH:
        issues.append(Issue("structure", f"{path}: nested too deeply", expression=(path,)))
        return
    fields = _fields(model)
    for key, value in data.items():
        where = f"{path}.{key}"
        if key.startswith("_") or key == "resourceType" or key == "fhir_comments":
            continue
        spec = fields.get(key)
        if spec is None:
            continue  # the model reports unknown elements with their path
        is_list, kind, klass = spec
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
                    _check_value(kind, klass, item, f"{where}[{index}]", issues, depth)
        elif isinstance(value, list):
            issues.append(Issue("structure", f"{where}: must not be an array", expression=(where,)))
        else:
            _check_value(kind, klass, value, where, issues, depth)


def _check_value(
    kind: int, klass: Any, value: Any, where: str, issues: list[Issue], depth: int
) -> None:
    wrong: str | None = None
    if kind == _BOOL and not isinstance(value, bool):
        wrong = "must be true or false"
    elif kind == _INTEGER and (isinstance(value, bool) or not isinstance(value, int)):
        wrong = "must be a JSON integer"
    elif kind == _DECIMAL and (isinstance(value, bool) or not isinstance(value, int | float)):
        wrong = "must be a JSON number"
    elif kind == _STRING and not isinstance(value, str):
        wrong = "must be a JSON string"
    elif kind == _STRING and not value.strip():
        wrong = "must not be empty"
    elif kind == _STRING and klass is not None and value not in klass:
        wrong = "is not a code of the required value set"
    elif kind in (_COMPLEX, _RESOURCE) and not isinstance(value, dict):
        wrong = "must be a JSON object"
    if wrong is not None:
        issues.append(Issue("value", f"{where}: {wrong}", expression=(where,)))
        return
    if kind == _COMPLEX:
        _check_object(klass, value, where, issues, depth + 1)
    elif kind == _RESOURCE:
        inner = value.get("resourceType")
        try:
            model = get_fhir_model_class(inner) if isinstance(inner, str) else None
        except (KeyError, ValueError, ImportError, AttributeError):
            model = None
        if model is None:
            issues.append(Issue("structure", f"{where}: not a known resource", expression=(where,)))
        else:
            _check_object(model, value, where, issues, depth + 1)
