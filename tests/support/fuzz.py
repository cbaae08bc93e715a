"""Schemathesis over every route of the app's OpenAPI document, signed in: what the
short test (tests/integration/web/test_fuzz_api.py) and the long run (bench/fuzz_api.py)
both do, and what they count."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings

from carevault.bootstrap import Services

#: Routes that answer without touching records, sessions or keys: public metadata and
#: proofs (hashes only), the console's pages (their refusals of a missing console session
#: are tallied per source and minute like every anonymous refusal), and the caller's own
#: session list. Every other answer must leave a ledger entry.
UNRECORDED = (
    "/fhir/metadata",
    "/.well-known/",
    "/fhir/.well-known/",
    "/audit/checkpoint",
    "/audit/vkey",
    "/audit/proof/consistency",
    "/console",
    "/auth/sessions",
)

#: An answer slower than this counts as a hang.
HANG_SECONDS = 30.0


@dataclass
class FuzzReport:
    operations: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    unrecorded: Counter[str] = field(default_factory=Counter)
    hangs: list[str] = field(default_factory=list)
    slowest_seconds: float = 0.0

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())


def fuzz_document(app: Any) -> dict[str, Any]:
    """The app's OpenAPI document, with every FHIR POST and PUT declared to take any JSON
    object (FHIR bodies are parsed by hand, so the generated document has none)."""
    document: dict[str, Any] = app.openapi()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if path.startswith("/fhir") and method in ("post", "put"):
                operation["requestBody"] = {
                    "required": True,
                    "content": {"application/fhir+json": {"schema": {"type": "object"}}},
                }
    return document


def fuzz_app(services: Services, app: Any, headers: dict[str, str], examples: int) -> FuzzReport:
    schema = schemathesis.openapi.from_dict(fuzz_document(app))
    schema.app = app
    report = FuzzReport()
    operations = [result.ok() for result in schema.get_all_operations()]
    report.operations = len(operations)

    def fuzz(operation: Any) -> None:
        recorded = not operation.path.startswith(UNRECORDED)

        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def exercise(case: Any) -> None:
            before = services.audit_ledger.store.head()[0]
            started = time.monotonic()
            response = case.call(headers=headers)
            took = time.monotonic() - started
            report.slowest_seconds = max(report.slowest_seconds, took)
            report.statuses[response.status_code] += 1
            label = f"{case.method} {operation.path} -> {response.status_code}"
            if took > HANG_SECONDS:
                report.hangs.append(f"{label} ({took:.0f} s)")
            if response.status_code >= 500:
                report.server_errors.append(f"{case.method} {case.formatted_path}")
            if recorded and services.audit_ledger.store.head()[0] == before:
                report.unrecorded[label] += 1

        exercise()

    for operation in operations:
        fuzz(operation)
    return report
