"""What the routes of exports and ``$import`` jobs share: a service call made off the
event loop, its refusals answered as FHIR OperationOutcomes with their HTTP status."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool

from carevault.domain.jobs import JobNotFound, JobRefused
from carevault.fhir.outcome import FhirError, Issue
from carevault.rest.errors import INSUFFICIENT_SCOPE

#: The issue code of each refusal's status.
REFUSAL_CODES = {
    400: "invalid",
    403: "forbidden",
    404: "not-found",
    413: "too-long",
    415: "not-supported",
    429: "throttled",
    503: "transient",
}
#: How long a client whose previous job is still in progress is told to wait (429): a
#: job takes several status polls at least.
BUSY_RETRY_SECONDS = 30
#: How long a client refused because containment holds the data (503) is told to wait:
#: an officer's containment lasts minutes at least. Without it a Bulk Data client has no
#: word on when to come back (RFC 9110 15.6.4; integrator round 85).
HELD_RETRY_SECONDS = 60
#: The ``Retry-After`` of each refusal that asks the client to wait.
RETRY_AFTER = {429: BUSY_RETRY_SECONDS, 503: HELD_RETRY_SECONDS}


def refusal(refused: JobRefused) -> FhirError:
    code = REFUSAL_CODES.get(refused.status, "invalid")
    wait = RETRY_AFTER.get(refused.status)
    headers = {"Retry-After": str(wait)} if wait is not None else {}
    if refused.insufficient_scope:
        headers["WWW-Authenticate"] = INSUFFICIENT_SCOPE
    return FhirError(refused.status, [Issue(code, str(refused))], headers)


async def job_call(call: Callable[..., Any], *args: Any) -> Any:
    """``call(*args)`` in the thread pool; a refusal or an unknown job as a FhirError."""
    try:
        return await run_in_threadpool(call, *args)
    except JobRefused as refused:
        raise refusal(refused) from None
    except JobNotFound as missing:
        raise FhirError(404, [Issue("not-found", str(missing))]) from None


def job_failed(what: str, error: str | None, *more: Issue) -> FhirError:
    """A status poll of a job that failed: 500 and an OperationOutcome saying what
    failed (Bulk Data: a 4XX or 5XX with an OperationOutcome). ``error`` is the job's
    stored reason, which names rules and kinds of error, never a record's content.

    Its issue code is ``processing``, not ``exception``: FHIR's IssueType puts
    ``exception`` under ``transient`` ("may be retried"), and a client that read it so
    polled the failed job for ever (integrator round 85). The job has ended: polling
    again answers the same; a new kick-off is the way on."""
    return FhirError(
        500, [Issue("processing", f"{what} failed: {error or 'no reason kept'}"), *more]
    )
