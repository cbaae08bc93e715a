"""How the ledger records a job's refusal (``carevault.jobs.refusal_outcome``): a refusal
about when (429, 503) is the server's state, not a denial the ``denials`` detector counts
(integrator round 85)."""

from __future__ import annotations

import pytest

from carevault.jobs import refusal_outcome
from carevault.ledger.events import Outcome


@pytest.mark.parametrize("status", [429, 503])
def test_a_refusal_to_wait_is_recorded_as_failed(status: int) -> None:
    assert refusal_outcome(status) is Outcome.FAILED


@pytest.mark.parametrize("status", [400, 403, 404, 413, 415])
def test_a_refusal_of_the_request_is_recorded_as_denied(status: int) -> None:
    assert refusal_outcome(status) is Outcome.DENIED
