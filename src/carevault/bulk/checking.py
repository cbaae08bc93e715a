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

from carevault.bulk.shape import Shapes
from carevault.fhir.content import InputLimits
from carevault.fhir.outcome import FhirError
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.fhir.validate import validate_resource

#: Records per task given to a worker process.
_TASK = 250
#: This process's compiled checks, per set of limits (they cache per model and value).
_SHAPES: dict[InputLimits, Shapes] = {}


def verdict(
    resource: dict[str, Any] | None,
    refused: str | None,
    limits: InputLimits,
    compiled: bool = True,
) -> str | None:
    """None if ``resource`` may be written, or why not (naming rules, never values).

    The compiled check (``bulk/shape.py``) passes most records; what it is not sure
    of goes through the full validation, which gives the reasons. ``compiled=False``:
    the full validation only (what imports did before; benchmarks compare the two)."""
    if resource is None:
        return refused or "refused"
    name = resource.get("resourceType")
    if not isinstance(name, str) or name not in RESOURCE_TYPES:
        shown = name if isinstance(name, str) and name.isalnum() else "?"
        return f"CareVault does not hold {shown[:40]} resources"
    if compiled:
        shapes = _SHAPES.get(limits)
        if shapes is None:
            shapes = _SHAPES[limits] = Shapes(limits)
        if shapes.certainly_valid(resource):
            return None
    try:
        validate_resource(resource, name, limits)
    except FhirError as error:
        return "; ".join(issue.diagnostics for issue in error.issues)[:2000]
    return None


def _verdicts(
    resources: Sequence[tuple[dict[str, Any] | None, str | None]],
    limits: InputLimits,
    compiled: bool,
) -> list[str | None]:
    return [verdict(resource, refused, limits, compiled) for resource, refused in resources]


class Checker:
    """Verdicts for batches of records, in ``workers`` processes (0: in this one)."""

    def __init__(self, limits: InputLimits, workers: int, *, compiled: bool = True) -> None:
        self.limits = limits
        self.compiled = compiled
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
            done.set_result(_verdicts(resources, self.limits, self.compiled))
            return [done]
        return [
            self._pool.submit(
                _verdicts, list(resources[start : start + _TASK]), self.limits, self.compiled
            )
            for start in range(0, len(resources), _TASK)
        ]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def default_workers() -> int:
    return max(1, (os.cpu_count() or 1))
