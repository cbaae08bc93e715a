"""OperationOutcome and the errors that become one.

Messages are written for the clinic's staff and never carry patient data: no
search values, no element values, only what kind of thing went wrong and where.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Issue:
    code: str
    diagnostics: str
    severity: str = "error"
    expression: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        issue: dict[str, Any] = {
            "severity": self.severity,
            "code": self.code,
            "diagnostics": self.diagnostics,
        }
        if self.expression:
            issue["expression"] = list(self.expression)
        return issue


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
