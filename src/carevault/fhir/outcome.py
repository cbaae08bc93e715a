"""OperationOutcome and the errors that become one.

Messages are written for the clinic's staff and never carry patient data: no
search values, no element values, only what kind of thing went wrong and where.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: FHIR's core extension saying on which line of a source file an issue is (context
#: OperationOutcome.issue, a valueInteger counted from 1).
ISSUE_LINE = "http://hl7.org/fhir/StructureDefinition/operationoutcome-issue-line"


@dataclass(frozen=True)
class Issue:
    code: str
    diagnostics: str
    severity: str = "error"
    #: FHIRPath expressions only (what FHIR defines ``issue.expression`` as).
    expression: tuple[str, ...] = ()
    #: The line of a file sent (an ``$import`` body) the issue is about: an extension,
    #: never an expression, which a client reads as FHIRPath.
    line: int | None = None

    def to_json(self) -> dict[str, Any]:
        issue: dict[str, Any] = {}
        if self.line is not None:
            issue["extension"] = [{"url": ISSUE_LINE, "valueInteger": self.line}]
        issue |= {
            "severity": self.severity,
            "code": self.code,
            "diagnostics": self.diagnostics,
        }
        if self.expression:
            issue["expression"] = list(self.expression)
        return issue


def element_name(key: str) -> str:
    """An element's name as sent, fit to spell in an issue's path: a key is the sender's
    text, and only letters, digits, ``_`` and ``-`` of its first 64 characters are kept."""
    return "".join(ch if ch.isalnum() or ch in "_-" else "?" for ch in key[:64])


def outcome(issues: list[Issue]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [issue.to_json() for issue in issues]}


@dataclass
class FhirError(Exception):
    """An error answered with an OperationOutcome and ``status``."""

    status: int
    issues: list[Issue] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return "; ".join(issue.diagnostics for issue in self.issues)

    @classmethod
    def of(cls, status: int, code: str, diagnostics: str, **headers: str) -> FhirError:
        return cls(status, [Issue(code, diagnostics)], dict(headers))


def bad_request(diagnostics: str, code: str = "invalid") -> FhirError:
    return FhirError.of(400, code, diagnostics)


def not_found(diagnostics: str) -> FhirError:
    return FhirError.of(404, "not-found", diagnostics)


def gone(diagnostics: str) -> FhirError:
    return FhirError.of(410, "deleted", diagnostics)


def conflict(diagnostics: str) -> FhirError:
    return FhirError.of(409, "conflict", diagnostics)


def precondition_failed(diagnostics: str) -> FhirError:
    return FhirError.of(412, "conflict", diagnostics)


def unprocessable(diagnostics: str, code: str = "processing") -> FhirError:
    return FhirError.of(422, code, diagnostics)


def unavailable(diagnostics: str) -> FhirError:
    return FhirError.of(503, "transient", diagnostics)
