"""FHIR JSON in and out: every resource is parsed and serialised here.

A FHIR ``decimal`` carries its precision in its text (``72.50`` is not ``72.5``, and
``12345678901234567890.123`` is not a float), so decimals are read as ``FhirDecimal``,
which keeps the text it came as, and are written back as exactly that text.

Request bodies are parsed strictly: duplicate keys, NaN and Infinity are refused, and
nesting is measured before the parser recurses, so a 10,000-level document is a clear
error rather than a RecursionError. Stored bodies were checked when written; they take
a fast parser (orjson, floats), kept only when writing its result again gives back the
stored bytes exactly, so that no decimal's text is lost.
"""

from __future__ import annotations

import json
import re
from array import array
from decimal import Decimal
from itertools import accumulate
from typing import Any

import orjson

#: Deepest nesting of arrays and objects a request may have. A FHIR element is an object
#: in an array (two levels), so this leaves 64 element levels, as the validator allows.
MAX_DEPTH = 128

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")
# An opening bracket is a step down (+1), a closing one a step up (-1 as a signed byte).
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


class MalformedJson(ValueError):
    """The body is not JSON that a FHIR server accepts; the message quotes no content."""


class FhirDecimal(Decimal):
    """A decimal that remembers the text it was read from, and is written back as it."""

    __slots__ = ("text",)
    text: str

    def __new__(cls, text: str) -> FhirDecimal:
        made = super().__new__(cls, text)
        made.text = text
        return made

    def __copy__(self) -> FhirDecimal:
        return self

    def __deepcopy__(self, memo: Any) -> FhirDecimal:
        return self

    def __reduce__(self) -> tuple[type[FhirDecimal], tuple[str]]:
        return (FhirDecimal, (self.text,))


def parse(body: bytes) -> Any:
    """A request body as Python values, decimals exact; MalformedJson if FHIR refuses it."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedJson("the body is not UTF-8 text") from None
    # No body can nest deeper than it has opening brackets: most are far below the limit
    # by this count alone, which costs a scan at memory speed.
    if body.count(b"[") + body.count(b"{") > MAX_DEPTH:
        check_depth(body)
    try:
        return json.loads(
            text,
            parse_float=FhirDecimal,
            parse_int=_integer,
            object_pairs_hook=_reject_duplicates,
            parse_constant=_no_constant,
        )
    except RecursionError:  # a backstop: check_depth refuses these first
        raise MalformedJson("the body is nested too deeply") from None
    except MalformedJson:
        raise
    except ValueError:
        raise MalformedJson("the body is not valid JSON") from None


def check_depth(body: bytes, limit: int = MAX_DEPTH) -> None:
    """Refuse nesting deeper than ``limit`` without recursing, in one linear pass.

    Strings are cut out; the depth after each bracket left is a running sum, whose
    maximum bounds how deep the parser would go (it stops at the first bracket that
    does not match, where the sum may be off).
    """
    steps = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS).translate(_STEPS)
    if steps and max(accumulate(array("b", steps))) > limit:
        raise MalformedJson(f"the body is nested more than {limit} levels deep")


def _integer(text: str) -> int | FhirDecimal:
    # -0 is no FHIR integer, but it is a decimal's own text: keep it as one.
    return FhirDecimal(text) if text == "-0" else int(text)


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise MalformedJson(f"duplicate key '{_short(key)}'")
        seen[key] = value
    return seen


def _short(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "_-." else "?" for ch in text[:40])


def _no_constant(_name: str) -> Any:
    raise MalformedJson("NaN and Infinity are not JSON")


def load(body: bytes) -> Any:
    """A stored body (already checked) as Python values, decimals exact.

    orjson reads numbers as floats and 64-bit integers; if writing what it read gives the
    same bytes, every number's text survived (writing is per value, so any part written
    later does too). Otherwise (``72.50``, a wide integer, an older writer's spelling)
    the body is read again, exactly.
    """
    try:
        fast = orjson.loads(body)
    except orjson.JSONDecodeError:  # a number no double holds, from before the bounds
        fast = None
    if fast is not None and orjson.dumps(fast) == body:
        return fast
    return json.loads(body, parse_float=FhirDecimal, parse_int=_integer)


def inspect(body: bytes) -> Any:
    """A stored body (already checked) read only to look at its shape (element names,
    codes, systems) and never written back: the caller keeps ``body`` itself. Numbers
    may lose their text here (orjson reads floats), which costs nothing when nothing is
    written, and saves ``load``'s check that writing gives back the same bytes."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:  # a number no double holds, from before the bounds
        return json.loads(body, parse_float=FhirDecimal, parse_int=_integer)


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON; a FhirDecimal is written as the text it was read from."""
    try:
        return orjson.dumps(value, default=_number)
    except orjson.JSONEncodeError:
        # orjson takes integers up to 64 bits; anything wider is written the slow way.
        return _dumps_slowly(value).encode()


def _number(value: Any) -> orjson.Fragment:
    if isinstance(value, FhirDecimal):
        return orjson.Fragment(value.text)
    if isinstance(value, Decimal) and value.is_finite():
        return orjson.Fragment(str(value))
    raise TypeError(f"{type(value).__name__} is not JSON")


def _dumps_slowly(value: Any) -> str:
    if isinstance(value, dict):
        items = (f"{_dumps_slowly(str(k))}:{_dumps_slowly(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_dumps_slowly(item) for item in value) + "]"
    if isinstance(value, FhirDecimal):
        return value.text
    if isinstance(value, Decimal) and value.is_finite():
        return str(value)
    return json.dumps(value, ensure_ascii=False, allow_nan=False)
