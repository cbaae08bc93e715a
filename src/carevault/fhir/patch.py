"""Patches of a stored resource: JSON Patch (RFC 6902) and JSON Merge Patch (RFC 7386).

Pure functions over parsed JSON (decimals stay ``FhirDecimal``, so ``72.50`` survives a
patch as ``72.50``). A patch is applied to a copy, all of it or none of it: any error
leaves the document as it was. Errors say what kind of thing went wrong and at which
path, never a value (a value may be patient data).

Status codes follow RFC 5789 section 2.2: a malformed patch document is 400; a patch
that assumes a state the resource is not in (a failed ``test``, a path that does not
exist) is 409; a patch that would change what the server owns (``id``, ``meta``,
``resourceType``) is 422, as is a result that is not a valid resource (checked by the
caller, who knows the resource type's rules).
"""

from __future__ import annotations

import copy
import re
from decimal import Decimal
from typing import Any

from carevault.fhir import jsonio
from carevault.fhir.outcome import FhirError, Issue

#: At most this many operations in one JSON Patch: each one is a walk of the resource.
MAX_OPERATIONS = 1000

#: The members of a resource the server owns: a patch may read them (``test``, the
#: ``from`` of a ``copy``) but never change them.
PROTECTED = ("resourceType", "id", "meta")

_OPS = frozenset({"add", "remove", "replace", "move", "copy", "test"})
_INDEX = re.compile(r"^(0|[1-9][0-9]{0,8})$")
_SHOWN = re.compile(r"[^A-Za-z0-9_/\-.~]")


class PatchFailed(FhirError):
    """The patch cannot be applied; the resource is unchanged."""


def _shown(pointer: str) -> str:
    """A pointer as it may appear in a message: element names and indexes only."""
    return _SHOWN.sub("?", pointer[:120])


def _error(status: int, code: str, message: str, where: str | None = None) -> PatchFailed:
    expression = (where,) if where else ()
    return PatchFailed(status, [Issue(code, message, expression=expression)])


def _malformed(index: int, message: str) -> PatchFailed:
    return _error(400, "structure", f"patch operation {index}: {message}")


def _conflict(index: int, message: str, pointer: str) -> PatchFailed:
    return _error(409, "conflict", f"patch operation {index}: {message} at {_shown(pointer)}")


def parse_pointer(pointer: str) -> list[str]:
    """The reference tokens of a JSON Pointer (RFC 6901); ValueError if it is not one."""
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise ValueError("a JSON Pointer starts with '/'")
    tokens = pointer[1:].split("/")
    for token in tokens:
        if re.search(r"~(?![01])", token):
            raise ValueError("'~' in a JSON Pointer must be followed by 0 or 1")
    return [token.replace("~1", "/").replace("~0", "~") for token in tokens]


def json_equal(left: Any, right: Any) -> bool:
    """Equality as RFC 6902 ``test`` means it: same JSON type, numbers by value,
    objects by members regardless of order, arrays element by element."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    numbers = (int, float, Decimal)
    if isinstance(left, numbers) and isinstance(right, numbers):
        return Decimal(str(left)) == Decimal(str(right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(
            json_equal(a, b) for a, b in zip(left, right, strict=True)
        )
    return type(left) is type(right) and bool(left == right)


def _child(container: Any, token: str) -> tuple[bool, Any]:
    """(found, value) of ``token`` in ``container``."""
    if isinstance(container, dict):
        return (token in container, container.get(token))
    if isinstance(container, list) and _INDEX.match(token) and int(token) < len(container):
        return True, container[int(token)]
    return False, None


def _resolve(document: Any, tokens: list[str]) -> tuple[bool, Any]:
    current = document
    for token in tokens:
        found, current = _child(current, token)
        if not found:
            return False, None
    return True, current


def _parent(document: Any, tokens: list[str], index: int, pointer: str) -> Any:
    found, parent = _resolve(document, tokens[:-1])
    if not found or not isinstance(parent, dict | list):
        raise _conflict(index, "the parent of the path does not exist", pointer)
    return parent


def _add(document: Any, tokens: list[str], value: Any, index: int, pointer: str) -> None:
    parent = _parent(document, tokens, index, pointer)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
        return
    if last == "-":
        parent.append(value)
    elif _INDEX.match(last) and int(last) <= len(parent):
        parent.insert(int(last), value)
    else:
        raise _conflict(index, "the array index is out of range", pointer)


def _remove(document: Any, tokens: list[str], index: int, pointer: str) -> Any:
    parent = _parent(document, tokens, index, pointer)
    found, value = _child(parent, tokens[-1])
    if not found:
        raise _conflict(index, "the path does not exist", pointer)
    if isinstance(parent, dict):
        del parent[tokens[-1]]
    else:
        del parent[int(tokens[-1])]
    return value


def _touches_protected(tokens: list[str]) -> bool:
    return not tokens or tokens[0] in PROTECTED


def _member(operation: dict[str, Any], name: str, index: int) -> list[str]:
    pointer = operation.get(name)
    if not isinstance(pointer, str):
        raise _malformed(index, f"'{name}' must be a JSON Pointer string")
    try:
        return parse_pointer(pointer)
    except ValueError as error:
        raise _malformed(index, f"'{name}' is not a JSON Pointer: {error}") from None


class _Growth:
    """How much a patch may still add by ``copy``: the one operation that can grow a
    resource faster than its own length (each copy may double what it copies)."""

    def __init__(self, document: Any, max_bytes: int | None) -> None:
        self.left = None if max_bytes is None else max_bytes - len(jsonio.dumps(document))

    def spend(self, value: Any) -> None:
        if self.left is None:
            return
        self.left -= len(jsonio.dumps(value))
        if self.left < 0:
            raise _error(413, "too-long", "the patched resource would be over the size limit")


def _apply_one(document: Any, operation: Any, index: int, growth: _Growth) -> None:
    if not isinstance(operation, dict):
        raise _malformed(index, "each operation is a JSON object")
    op = operation.get("op")
    if op not in _OPS:
        raise _malformed(index, "'op' must be add, remove, replace, move, copy or test")
    path = _member(operation, "path", index)
    pointer = operation["path"]
    source = _member(operation, "from", index) if op in ("move", "copy") else None
    if op in ("add", "replace", "test") and "value" not in operation:
        raise _malformed(index, f"'{op}' needs a 'value'")
    changes = op != "test"
    if (changes and _touches_protected(path)) or (
        op == "move" and source is not None and _touches_protected(source)
    ):
        raise _error(
            422,
            "processing",
            f"patch operation {index}: a patch may not change {', '.join(PROTECTED)}",
            _shown(pointer),
        )
    if op == "test":
        found, current = _resolve(document, path)
        if not found:
            raise _conflict(index, "'test' names a path that does not exist", pointer)
        if not json_equal(current, operation["value"]):
            raise _conflict(index, "'test' failed: the value differs", pointer)
    elif op == "add":
        _add(document, path, copy.deepcopy(operation["value"]), index, pointer)
    elif op == "remove":
        _remove(document, path, index, pointer)
    elif op == "replace":
        _remove(document, path, index, pointer)
        _add(document, path, copy.deepcopy(operation["value"]), index, pointer)
    else:
        assert source is not None  # noqa: S101 - set above for move and copy
        found, value = _resolve(document, source)
        if not found:
            raise _conflict(index, f"'{op}' names a 'from' that does not exist", operation["from"])
        if op == "copy":
            growth.spend(value)
        if op == "move":
            if path[: len(source)] == source and len(path) > len(source):
                raise _malformed(index, "'move' cannot move a value into itself")
            _remove(document, source, index, operation["from"])
        _add(document, path, copy.deepcopy(value), index, pointer)


def apply_json_patch(
    document: dict[str, Any], patch: Any, max_bytes: int | None = None
) -> dict[str, Any]:
    """``document`` with the JSON Patch ``patch`` applied; ``document`` is unchanged.
    ``max_bytes``: refuse (413) as soon as copies would take the result over it."""
    if not isinstance(patch, list):
        raise _error(400, "structure", "a JSON Patch is a JSON array of operations")
    if len(patch) > MAX_OPERATIONS:
        raise _error(
            400, "too-costly", f"a JSON Patch may hold at most {MAX_OPERATIONS} operations"
        )
    result = copy.deepcopy(document)
    growth = _Growth(result, max_bytes)
    for index, operation in enumerate(patch):
        _apply_one(result, operation, index, growth)
    return result


def _merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    merged = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = _merge(merged.get(name), value)
    return merged


def apply_merge_patch(document: dict[str, Any], patch: Any) -> dict[str, Any]:
    """``document`` with the JSON Merge Patch ``patch`` applied (``null`` removes a
    member, objects merge, anything else replaces); ``document`` is unchanged."""
    if not isinstance(patch, dict):
        raise _error(400, "structure", "a JSON Merge Patch of a resource is a JSON object")
    result = _merge(document, patch)
    assert isinstance(result, dict)  # noqa: S101 - merging an object into an object
    return result


def keep_protected(before: dict[str, Any], after: dict[str, Any]) -> None:
    """Refuse (422) a patched resource whose id, meta or resourceType changed."""
    for name in PROTECTED:
        if (name in before) != (name in after) or (
            name in before and not json_equal(before[name], after[name])
        ):
            raise _error(
                422,
                "processing",
                f"a patch may not change {', '.join(PROTECTED)}",
                name,
            )
