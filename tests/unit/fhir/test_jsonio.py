"""FHIR JSON in and out: decimals keep their text, nesting is bounded before parsing."""

from __future__ import annotations

import json

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from carevault.fhir import jsonio

NUMBER_TEXT = st.from_regex(
    r"-?(0|[1-9][0-9]{0,20})(\.[0-9]{1,17})?([eE][+-]?[0-9]{1,3})?", fullmatch=True
)


@given(st.lists(NUMBER_TEXT, min_size=1, max_size=8), st.text(max_size=20))
def test_decimals_come_back_as_the_text_they_were(numbers: list[str], label: str) -> None:
    text = json.dumps({"label": label, "values": ["@"] * len(numbers)}, ensure_ascii=False)
    for number in numbers:
        text = text.replace('"@"', number, 1)
    body = text.replace(", ", ",").replace(": ", ":").encode()
    parsed = jsonio.parse(body)
    assert jsonio.dumps(parsed) == body
    assert jsonio.dumps(jsonio.load(body)) == body  # the stored-body path agrees


@pytest.mark.parametrize("depth", [1, 64, jsonio.MAX_DEPTH])
def test_nesting_up_to_the_limit_parses(depth: int) -> None:
    assert jsonio.parse(b"[" * depth + b"]" * depth) is not None


@pytest.mark.parametrize("depth", [jsonio.MAX_DEPTH + 1, 10_000, 1_000_000])
def test_deeper_nesting_is_refused_before_the_parser_recurses(depth: int) -> None:
    with pytest.raises(jsonio.MalformedJson, match="nested"):
        jsonio.parse(b'{"a":' * depth + b"1" + b"}" * depth)


@given(
    st.recursive(
        st.none() | st.booleans() | st.text(max_size=5),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
        ),
        max_leaves=30,
    )
)
def test_the_depth_check_agrees_with_the_parser(value: object) -> None:
    body = json.dumps(value).encode()
    assert jsonio.parse(body) == value


@pytest.mark.parametrize(
    "body", [b'{"a":1,"a":2}', b"[NaN]", b"[1,]", b'["unterminated]', b"[}", b"\xff"]
)
def test_malformed_bodies_are_refused_without_quoting_them(body: bytes) -> None:
    with pytest.raises(jsonio.MalformedJson) as refused:
        jsonio.parse(body)
    assert "unterminated" not in str(refused.value)


def test_wide_integers_are_written_whole() -> None:
    value = {"n": 2**70, "d": jsonio.FhirDecimal("1.50")}
    assert jsonio.dumps(value) == b'{"n":1180591620717411303424,"d":1.50}'


@given(st.lists(NUMBER_TEXT, min_size=1, max_size=8), st.text(max_size=20))
@example(numbers=["0"], label="@")
def test_inspecting_a_stored_body_sees_the_elements_the_exact_read_sees(
    numbers: list[str], label: str
) -> None:
    # Built piece by piece: a placeholder replaced afterwards would also match a label
    # that spells it (hypothesis found "@").
    values = b",".join(b'{"value":' + number.encode() + b',"system":"s"}' for number in numbers)
    label_json = json.dumps(label, ensure_ascii=False).encode()
    body = b'{"label":' + label_json + b',"values":[' + values + b"]}"

    inspected, exact = jsonio.inspect(body), jsonio.load(body)

    assert inspected.keys() == exact.keys() and inspected["label"] == exact["label"]
    assert [item.keys() for item in inspected["values"]] == [
        item.keys() for item in exact["values"]
    ]
    assert [item["system"] for item in inspected["values"]] == ["s"] * len(numbers)


def test_inspecting_a_number_no_double_holds_reads_it_exactly() -> None:
    body = b'{"resourceType":"Observation","valueQuantity":{"value":1e400}}'

    inspected = jsonio.inspect(body)

    assert inspected["valueQuantity"]["value"].text == "1e400"
