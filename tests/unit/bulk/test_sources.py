"""An NDJSON line reads as ``jsonio.parse`` reads it, whichever way it is read: the
fast way (orjson, when writing gives the line back) or the strict one."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carevault.bulk.sources import parse_line, read_again
from carevault.fhir import jsonio
from carevault.sim.group import build_group
from carevault.sim.patients import generate_patients
from tests.support.synthea import BUNDLES

NUMBER_TEXT = st.from_regex(
    r"-?(0|[1-9][0-9]{0,22})(\.[0-9]{1,19})?([eE][+-]?[0-9]{1,3})?", fullmatch=True
)


def _same(left: Any, right: Any) -> bool:
    """Equal values of equal types, each decimal with the same text."""
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return list(left) == list(right) and all(_same(left[k], right[k]) for k in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(map(_same, left, right))
    if isinstance(left, jsonio.FhirDecimal):
        return bool(left.text == right.text)
    return bool(left == right)


def _records() -> list[bytes]:
    lines = [
        jsonio.dumps(entry["resource"])
        for path in BUNDLES[:2]
        for entry in jsonio.parse(path.read_bytes())["entry"]
    ]
    group = build_group(7, None)
    for record in generate_patients(group, 4, 7, group.today):
        lines.extend(jsonio.dumps(item) for item in (record.patient, *record.resources))
    return lines


@pytest.mark.parametrize("line", _records()[::7])
def test_records_read_the_same_as_the_strict_parser_reads_them(line: bytes) -> None:
    assert _same(parse_line(line), jsonio.parse(line))


@given(st.lists(NUMBER_TEXT, min_size=1, max_size=8), st.text(max_size=20))
def test_every_number_keeps_its_text_and_type(numbers: list[str], label: str) -> None:
    text = json.dumps({"label": label, "values": ["@"] * len(numbers)}, ensure_ascii=False)
    for number in numbers:
        text = text.replace('"@"', number, 1)
    line = text.replace(", ", ",").replace(": ", ":").encode()
    assert _same(parse_line(line), jsonio.parse(line))
    assert jsonio.dumps(parse_line(line)) == line
    # A writer whose checking processes read the line again keeps orjson's floats: it
    # writes the same bytes all the same.
    assert jsonio.dumps(parse_line(line, exact_numbers=False)) == line


@pytest.mark.parametrize("line", _records()[::7])
def test_records_read_without_exact_numbers_are_written_back_as_sent(line: bytes) -> None:
    assert jsonio.dumps(parse_line(line, exact_numbers=False)) == line


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
        ),
        max_leaves=30,
    )
)
def test_any_json_reads_the_same_either_way(value: object) -> None:
    for line in (json.dumps(value).encode(), jsonio.dumps(value)):
        try:
            expected = jsonio.parse(line)
        except jsonio.MalformedJson:
            with pytest.raises(jsonio.MalformedJson):
                parse_line(line)
            continue
        assert _same(parse_line(line), expected)


@pytest.mark.parametrize(
    "line",
    [
        b'{"a":1,"a":2}',
        b'{"a":[NaN]}',
        b'{"a":1,}',
        b"\xff",
        b"[" * (jsonio.MAX_DEPTH + 1) + b"]" * (jsonio.MAX_DEPTH + 1),
    ],
)
def test_what_the_strict_parser_refuses_is_refused(line: bytes) -> None:
    with pytest.raises(jsonio.MalformedJson):
        parse_line(line)


@pytest.mark.parametrize(
    ("line", "text"),
    [
        (b'{"v":72.50}', "72.50"),
        (b'{"v":-0}', "-0"),
        (b'{"v":1E5}', "1E5"),
        (b'{"v":12345678901234567890123}', None),
        (b'{"v":1e400}', "1e400"),
        (b'{"v":0.1}', "0.1"),
    ],
)
def test_numbers_keep_their_text(line: bytes, text: str | None) -> None:
    value = parse_line(line)["v"]
    assert _same(value, jsonio.parse(line)["v"])
    if text is None:
        assert isinstance(value, int)
    else:
        assert isinstance(value, Decimal) and value.text == text  # type: ignore[attr-defined]


def test_a_line_read_again_gets_the_id_it_was_given_only_if_it_had_none() -> None:
    assert read_again(b'{"resourceType":"Patient"}', "given") == {
        "resourceType": "Patient",
        "id": "given",
    }
    assert read_again(b'{"resourceType":"Patient","id":"own"}', "given") == {
        "resourceType": "Patient",
        "id": "own",
    }
    assert read_again(b"[1]", "given") is None
    assert read_again(b"{not json", "given") is None


def test_a_line_without_fractions_keeps_its_integers_and_one_with_them_gets_decimals() -> None:
    from decimal import Decimal

    from carevault.bulk.sources import parse_line

    assert parse_line(b'{"a":1,"b":"x:1.5"}') == {"a": 1, "b": "x:1.5"}
    found = parse_line(b'{"a":[1,{"b":-0.25}],"c":72.5}')
    assert found == {"a": [1, {"b": Decimal("-0.25")}], "c": Decimal("72.5")}
    assert isinstance(found["c"], Decimal)
