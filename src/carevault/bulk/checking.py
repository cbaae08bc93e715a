"""Checking records before they are written, in worker processes beside the writer.

Validation (the strict walk, the content rules, the FHIR model) costs more than
sealing and writing a record, and it needs nothing from the database: worker
processes check the next batch while the gate writes the current one. A worker gets
resources and returns only verdicts (None, or why a record is refused), never keys
and never anything it decrypted: it holds no key and opens nothing.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from carevault.fhir.content import InputLimits
from carevault.fhir.outcome import FhirError
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.fhir.validate import validate_resource

#: Records per task given to a worker process.
_TASK = 250


def verdict(
    resource: dict[str, Any] | None, refused: str | None, limits: InputLimits
) -> str | None:
    """None if ``resource`` may be written, or why not (naming rules, never values)."""
    if resource is None:
        return refused or "refused"
    name = resource.get("resourceType")
    if not isinstance(name, str) or name not in RESOURCE_TYPES:
        shown = name if isinstance(name, str) and name.isalnum() else "?"
        return f"CareVault does not hold {shown[:40]} resources"
    try:
        validate_resource(resource, name, limits)
    except FhirError as error:
        return "; ".join(issue.diagnostics for issue in error.issues)[:2000]
    return None


def _verdicts(
    resources: Sequence[tuple[dict[str, Any] | None, str | None]], limits: InputLimits
) -> list[str | None]:
    return [verdict(resource, refused, limits) for resource, refused in resources]


class Checker:
    """Verdicts for batches of records, in ``workers`` processes (0: in this one)."""

    def __init__(self, limits: InputLimits, workers: int) -> None:
        self.limits = limits
        self._pool: ProcessPoolExecutor | None = None
        if workers > 0:
            # Forked workers would inherit the database connections and keys of the
            # parent: spawned ones start clean and import only what validation needs.
            self._pool = ProcessPoolExecutor(
                max_workers=workers, mp_context=multiprocessing.get_context("spawn")
            )

    def submit(
        self, resources: Sequence[tuple[dict[str, Any] | None, str | None]]
    ) -> list[Future[list[str | None]]]:
        """Start checking; the futures' verdicts, concatenated, follow ``resources``."""
        if self._pool is None:
            done: Future[list[str | None]] = Future()
            done.set_result(_verdicts(resources, self.limits))
            return [done]
        return [
            self._pool.submit(_verdicts, list(resources[start : start + _TASK]), self.limits)
            for start in range(0, len(resources), _TASK)
        ]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def default_workers() -> int:
    return max(1, (os.cpu_count() or 1))
