"""FHIR media types: what an ``Accept`` admits and which request bodies are read
(FHIR R4 http.html#mime-type and #version-parameter)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carevault.fhir.mediatype import (
    BODY_NOT_R4,
    JSON_BODIES,
    NOT_JSON,
    NOT_R4,
    NOT_UTF8,
    Answer,
    body_problem,
    negotiate,
    parse,
    refusal,
)

WANTED = "send application/fhir+json"


def test_names_and_parameter_names_are_read_without_case_and_quotes() -> None:
    media = parse(' Application/FHIR+JSON ; FhirVersion="4.0" ; Charset=UTF-8')
    assert media.name == "application/fhir+json"
    assert media.parameters == {"fhirversion": "4.0", "charset": "UTF-8"}
    assert media.of_r4 and media.in_utf8


@pytest.mark.parametrize(
    ("accept", "answer"),
    [
        ("application/fhir+json; fhirVersion=4.0", Answer.JSON),
        ("application/fhir+json; fhirVersion=4.0.1", Answer.JSON),
        ("application/json+fhir", Answer.JSON),
        ("application/fhir+json; fhirVersion=3.0", Answer.OTHER_RELEASE),
        ("application/fhir+json; fhirVersion=5.0, application/fhir+xml", Answer.OTHER_RELEASE),
        # Refused by the client (q=0): it does not ask for R3 either.
        ("application/fhir+json; fhirVersion=3.0; q=0, application/xml", Answer.NOT_JSON),
        ("application/fhir+xml; fhirVersion=4.0", Answer.NOT_JSON),
    ],
)
def test_an_accept_admits_r4_json_or_says_why_not(accept: str, answer: Answer) -> None:
    assert negotiate(accept) is answer


def test_each_refusal_has_its_own_message() -> None:
    assert refusal(Answer.JSON) is None
    assert refusal(Answer.OTHER_RELEASE) == NOT_R4
    assert refusal(Answer.NOT_JSON) == NOT_JSON


@pytest.mark.parametrize(
    "content_type",
    [
        "application/fhir+json",
        "application/json",
        "application/json+fhir",
        "application/fhir+json; charset=utf-8",
        "application/fhir+json; charset=UTF-8",
        'application/fhir+json; charset="Utf-8"; fhirVersion=4.0',
        "application/json+fhir; fhirVersion=4.0.1",
    ],
)
def test_an_r4_json_body_in_utf8_is_read(content_type: str) -> None:
    assert body_problem(content_type, JSON_BODIES, WANTED) is None


@pytest.mark.parametrize(
    ("content_type", "problem"),
    [
        ("application/fhir+xml", WANTED),
        ("", WANTED),
        ("application/fhir+json; fhirVersion=3.0", BODY_NOT_R4),
        ("application/fhir+json; fhirVersion=4.3", BODY_NOT_R4),
        ("application/fhir+json; fhirVersion=", BODY_NOT_R4),
        ("application/fhir+json; charset=iso-8859-1", NOT_UTF8),
        ("application/json; charset=utf-16", NOT_UTF8),
        ("application/json+fhir; charset=latin1", NOT_UTF8),
    ],
)
def test_any_other_body_is_refused_saying_why(content_type: str, problem: str) -> None:
    assert body_problem(content_type, JSON_BODIES, WANTED) == problem


@given(st.text(max_size=60))
def test_a_refusal_never_repeats_what_was_sent(sent: str) -> None:
    problem = body_problem(f"application/fhir+json; charset={sent}", JSON_BODIES, WANTED)
    assert problem in (None, NOT_UTF8)
    answer = refusal(negotiate(f"application/fhir+json; fhirVersion={sent}"))
    assert answer in (None, NOT_R4)
