"""A refused line in the ``$import`` status report: the line where FHIR allows it (the
diagnostics and the issue-line extension), ``expression`` only ever a FHIRPath."""

from __future__ import annotations

import pytest

from carevault.fhir.outcome import ISSUE_LINE
from carevault.importjobs.model import rejection


def test_the_line_leads_the_diagnostics_and_is_the_issue_line_extension() -> None:
    issue = rejection(3, "Patient.gender: Value error, not a code").to_json()
    assert issue == {
        "extension": [{"url": ISSUE_LINE, "valueInteger": 3}],
        "severity": "error",
        "code": "invalid",
        "diagnostics": "line 3: Patient.gender: Value error, not a code",
        "expression": ["Patient.gender"],
    }


@pytest.mark.parametrize(
    ("reason", "expression"),
    [
        ("Observation.subject: refer to a patient here as Patient/[id]", ["Observation.subject"]),
        ("Patient.name[0].family: too long", ["Patient.name[0].family"]),
        ("not JSON: the body is not valid JSON", None),
        ("CareVault does not hold Spaceship resources", None),
        ("Spaceship.engine: no such type", None),
        ("Patient.name.0.family: a pydantic path, not FHIRPath", None),
    ],
)
def test_only_a_fhirpath_the_reason_starts_with_is_an_expression(
    reason: str, expression: list[str] | None
) -> None:
    assert rejection(7, reason).to_json().get("expression") == expression
