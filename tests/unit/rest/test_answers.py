"""One reading of ``Prefer: return=`` for a write on its own and for a Bundle entry
(``rest/answers.py``): pure, no database."""

from __future__ import annotations

import pytest

from carevault.rest.answers import WriteAnswer, prefer_return, write_answer
from carevault.vault.records import Head

HEAD = Head(1, "Patient", "p-1", 2, 0, False, None, "clinic-1", None)
BODY = b'{"resourceType":"Patient","id":"p-1"}'


@pytest.mark.parametrize(
    ("header", "returning"),
    [
        (None, None),
        ("", None),
        ("handling=strict", None),
        ("return=minimal", "minimal"),
        ("return=representation", "representation"),
        ("return=OperationOutcome", "OperationOutcome"),
        ('handling=lenient; return="minimal"', "minimal"),
    ],
)
def test_the_return_preference_is_read_from_prefer(
    header: str | None, returning: str | None
) -> None:
    assert prefer_return(header) == returning


def test_minimal_answers_nothing_and_representation_the_writers_version() -> None:
    assert write_answer(HEAD, BODY, "minimal") == WriteAnswer()
    assert write_answer(HEAD, BODY, "representation") == WriteAnswer(resource=BODY)


@pytest.mark.parametrize(
    ("body", "returning"), [(BODY, "OperationOutcome"), (None, "representation")]
)
def test_a_writer_who_asks_for_it_or_may_not_read_is_told_saved(
    body: bytes | None, returning: str
) -> None:
    answer = write_answer(HEAD, body, returning)

    assert answer.resource is None and answer.outcome is not None
    assert answer.outcome["issue"] == [
        {
            "severity": "information",
            "code": "informational",
            "diagnostics": "Patient/p-1 saved as version 2",
        }
    ]
