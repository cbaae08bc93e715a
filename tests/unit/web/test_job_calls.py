"""How a job's refusal and failure are answered (``web.job_calls``): a Bulk Data client
reads ``Retry-After`` and the issue code to know whether to try again (integrator round
85)."""

from __future__ import annotations

import pytest

from carevault.domain.jobs import JobRefused
from carevault.web.job_calls import job_failed, refusal


@pytest.mark.parametrize("status", [429, 503])
def test_a_refusal_that_asks_the_client_to_wait_says_how_long(status: int) -> None:
    """A 503 (containment holds the data) had no ``Retry-After``: only the 429 did."""
    answered = refusal(JobRefused(status, "wait"))
    assert answered.status == status
    assert int(answered.headers["Retry-After"]) > 0


@pytest.mark.parametrize("status", [400, 403, 404, 413])
def test_a_refusal_of_the_request_itself_names_no_wait(status: int) -> None:
    assert "Retry-After" not in refusal(JobRefused(status, "no")).headers


def test_a_failed_job_is_answered_with_a_code_that_is_not_transient() -> None:
    """``exception`` is under ``transient`` in FHIR's IssueType (may be retried); the job
    has ended, so ``processing``."""
    failed = job_failed("the export", "stopped: revoked")
    assert failed.status == 500
    assert [issue.code for issue in failed.issues] == ["processing"]
    assert failed.issues[0].diagnostics == "the export failed: stopped: revoked"
