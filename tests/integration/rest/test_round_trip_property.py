"""Hypothesis-made FHIR resources (nested extensions, any Unicode text, contained
resources, decimals of up to 35 significant digits) through create, update and read:
what is read back is what was sent, every number's text included."""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.client import FhirTestClient

EXAMPLES = int(os.environ.get("CAREVAULT_FUZZ_EXAMPLES", "0")) * 10 or 12

#: FHIR strings: any character but the controls (tab, line feed, carriage return
#: allowed), no lone surrogates; non-blank (FHIR: strings have non-whitespace content).
TEXT = st.text(
    st.characters(
        blacklist_categories=("Cs", "Cc"),
        blacklist_characters="\x7f",
    ),
    min_size=1,
    max_size=40,
).filter(lambda text: text.strip() == text and text != "")

#: A decimal's text as sent: up to 35 significant digits, trailing zeros kept.
DECIMAL = st.builds(
    lambda sign, whole, fraction: f"{sign}{whole}" + (f".{fraction}" if fraction else ""),
    st.sampled_from(["", "-"]),
    st.from_regex(r"\A(0|[1-9][0-9]{0,17})\Z"),
    st.from_regex(r"\A[0-9]{0,17}\Z"),
)


def extension(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    leaf = st.fixed_dictionaries(
        {"url": st.just("http://example.org/fhir/StructureDefinition/leaf"), "valueString": TEXT}
    )
    if depth == 0:
        return leaf
    nested = st.fixed_dictionaries(
        {
            "url": st.just("http://example.org/fhir/StructureDefinition/nested"),
            "extension": st.lists(extension(depth - 1), min_size=1, max_size=2),
        }
    )
    return st.one_of(leaf, nested)


@st.composite
def observation(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, str]]:
    """An Observation as a dict whose decimals are placeholders, and the decimal texts."""
    decimals = {f"__decimal_{n}__": draw(DECIMAL) for n in range(2)}
    body: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "code": {
            "coding": [{"system": "http://loinc.org", "code": "8480-6"}],
            "text": draw(TEXT),
        },
        "extension": draw(st.lists(extension(2), max_size=3)),
        "valueQuantity": {"value": "__decimal_0__", "unit": draw(TEXT)},
        "referenceRange": [{"low": {"value": "__decimal_1__"}, "text": draw(TEXT)}],
        "contained": [
            {
                "resourceType": "Practitioner",
                "id": "author",
                "name": [{"family": draw(TEXT), "given": draw(st.lists(TEXT, max_size=2))}],
            }
        ],
        "performer": [{"reference": "#author"}],
        "note": [{"text": draw(TEXT)}],
    }
    if not body["extension"]:
        del body["extension"]
    if not body["contained"][0]["name"][0]["given"]:
        del body["contained"][0]["name"][0]["given"]
    return body, decimals


def as_text(body: dict[str, Any], decimals: dict[str, str]) -> str:
    text = json.dumps(body, ensure_ascii=False)
    for placeholder, value in decimals.items():
        text = text.replace(f'"{placeholder}"', value)
    return text


def exact(text: str) -> Any:
    """JSON with every number kept as its text, and the server's own fields dropped."""
    document = json.loads(text, parse_float=str, parse_int=str)
    document.pop("meta", None)
    document.pop("id", None)
    return document


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(first=observation(), second=observation())
def test_what_is_read_back_is_what_was_sent(
    api: FhirTestClient,
    first: tuple[dict[str, Any], dict[str, str]],
    second: tuple[dict[str, Any], dict[str, str]],
) -> None:
    sent = as_text(*first)
    headers = {"content-type": "application/fhir+json"}
    created = api.post("/fhir/Observation", content=sent.encode(), headers=headers)
    assert created.status_code == 201, created.text
    resource_id = created.json()["id"]
    read = api.get(f"/fhir/Observation/{resource_id}")
    assert exact(read.text) == exact(sent)

    body, decimals = second
    updated_text = as_text({**body, "id": resource_id}, decimals)
    updated = api.put(
        f"/fhir/Observation/{resource_id}", content=updated_text.encode(), headers=headers
    )
    assert updated.status_code == 200, updated.text
    read = api.get(f"/fhir/Observation/{resource_id}")
    assert exact(read.text) == exact(updated_text)
    assert read.json()["meta"]["versionId"] == "2"
