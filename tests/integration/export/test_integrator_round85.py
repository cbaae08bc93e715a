"""``$export`` driven as a Bulk Data v2 client does what it is told (integrator round 85):
it retries a kick-off refused 429 after the ``Retry-After`` given, fetches every file of
a manifest, polls a job until it is told the job has ended. Answers about *when* (a job
in progress, data held by containment) and about a job (an officer denied it) were
recorded as the caller's denials, and the ``denials`` detector suspended the client
after 20 of them, destroying its approved export. Each test failed on the code before
its fix; the last shows that refusals of what the caller may not do still count."""

from __future__ import annotations

from typing import Any

import pytest

from carevault.containment.state import Mode
from carevault.detect import alerts_as_dicts
from carevault.export.model import Status
from carevault.ledger.events import AuditEvent, Outcome, Tag
from tests.integration.access.browser import bearer
from tests.integration.export.conftest import MINE, Clinic
from tests.integration.export.test_containment import complete_then_contain
from tests.integration.export.test_export import (
    ASYNC,
    approve_and_run,
    events,
    kick_off,
    officer,
    status,
)

pytestmark = pytest.mark.postgres

#: The ``denials`` detector's threshold (refused requests in 10 minutes), and one more.
PAST_THE_THRESHOLD = 21


def _denials(clinic: Clinic) -> list[dict[str, Any]]:
    return [a for a in alerts_as_dicts(clinic.services) if a["detector"] == "denials"]


def _all_entries(clinic: Clinic) -> list[AuditEvent]:
    return [
        AuditEvent.from_canonical(data) for _, data in clinic.services.audit_ledger.store.entries()
    ]


def _kick_off_refusals(clinic: Clinic) -> list[AuditEvent]:
    return [
        e for e in _all_entries(clinic) if e.tag is Tag.EXPORT_REFUSED and "job" not in e.detail
    ]


def test_a_client_retrying_a_busy_kick_off_as_told_is_not_suspended(clinic: Clinic) -> None:
    """Its first export awaits approval; each new kick-off is refused 429 with
    ``Retry-After: 30``. Recorded DENIED, 20 of them suspended the client (its token and
    secret dead, the approved export stopped). A 429 is the server's state: recorded as
    FAILED, not counted among denials; the client and its export are untouched."""
    token = clinic.client("exporter", "system/*.read")
    job_id = kick_off(clinic, token)

    for _ in range(PAST_THE_THRESHOLD):
        again = clinic.web.get("/fhir/Patient/$export", headers={**bearer(token), **ASYNC})
        assert again.status_code == 429, again.text
        assert int(again.headers["retry-after"]) > 0

    assert _denials(clinic) == []
    refusals = _kick_off_refusals(clinic)
    assert len(refusals) == PAST_THE_THRESHOLD
    assert {e.outcome for e in refusals} == {Outcome.FAILED}
    polled = status(clinic, token, job_id)
    assert polled.status_code == 202, polled.text
    approve_and_run(clinic, job_id)
    assert clinic.services.exports is not None
    assert clinic.services.exports.job(job_id).status is Status.COMPLETED


@pytest.mark.parametrize(
    ("mode", "target"),
    [(Mode.PHI_OFFLINE, None), (Mode.CLINIC_LOCK, MINE)],
    ids=["phi-offline", "clinic-lock"],
)
def test_files_held_by_containment_do_not_suspend_the_client(
    clinic: Clinic, mode: Mode, target: str | None
) -> None:
    """While containment held the files, each download answered 503 without
    ``Retry-After`` and was recorded DENIED (one pass over a 20-file manifest suspended
    the client), and the status poll kept handing out the manifest. Now each 503 says
    when to come back and is recorded FAILED, and the poll answers 202 saying the files
    are held, and why, until the release gives the manifest again."""
    token = clinic.client("exporter", "system/*.read")
    contained = complete_then_contain(clinic, token, mode, target)
    job_id, path = contained.job_id, contained.path

    polled = status(clinic, token, job_id)
    assert polled.status_code == 202, polled.text
    assert polled.headers["x-progress"].startswith("held: complete")
    assert "containment" in polled.headers["x-progress"]
    assert int(polled.headers["retry-after"]) > 0
    for _ in range(PAST_THE_THRESHOLD):
        refused = clinic.web.get(path, headers=bearer(token))
        assert refused.status_code == 503, refused.text
        assert refused.json()["issue"][0]["code"] == "transient"
        assert int(refused.headers["retry-after"]) > 0

    assert _denials(clinic) == []
    held = events(clinic, Tag.EXPORT_REFUSED, job_id)
    assert len(held) == PAST_THE_THRESHOLD
    assert {e.outcome for e in held} == {Outcome.FAILED}
    assert events(clinic, Tag.EXPORT_DOWNLOADED, job_id) == []
    clinic.services.contain.release(officer(clinic.officers[1]), contained.containment_id, "over")
    clinic.services.containment.refresh()
    again = status(clinic, token, job_id)
    assert again.status_code == 200, again.text
    assert again.json()["output"] == contained.manifest["output"]
    assert clinic.web.get(path, headers=bearer(token)).status_code == 200


def test_polling_a_denied_export_does_not_suspend_the_client(clinic: Clinic) -> None:
    """An officer denied the export; each poll answers 403 and the refusal middleware
    recorded each as DENIED: 25 polls suspended the client. The export service now
    records the poll once, FAILED (an answer about the job), and the status stays 403."""
    token = clinic.client("exporter", "system/*.read")
    job_id = kick_off(clinic, token)
    staff = clinic.officers[0]
    denied = clinic.web.post(
        f"/admin/exports/{job_id}/deny",
        json={"totp": staff.totp(), "reason": "not agreed"},
        headers=staff.headers,
    )
    assert denied.status_code == 200, denied.text

    for _ in range(PAST_THE_THRESHOLD):
        polled = status(clinic, token, job_id)
        assert polled.status_code == 403, polled.text
        assert polled.json()["issue"][0]["code"] == "forbidden"

    assert _denials(clinic) == []
    polls = events(clinic, Tag.EXPORT_REFUSED, job_id)
    assert len(polls) == PAST_THE_THRESHOLD
    assert {e.outcome for e in polls} == {Outcome.FAILED}
    assert not [e for e in _all_entries(clinic) if e.tag is Tag.REQUEST_REFUSED]
    # The client goes on: a new kick-off is accepted.
    kick_off(clinic, token)


def test_a_failed_export_is_not_answered_as_transient(clinic: Clinic) -> None:
    """A stopped job's status answered 500 with issue code ``exception``, which FHIR's
    IssueType puts under ``transient`` (retry later): a client polled it for ever. Now
    ``processing``, which is not transient."""
    exports = clinic.services.exports
    assert exports is not None
    token = clinic.client("exporter", "system/*.read")
    job_id = kick_off(clinic, token)
    exports.stop(exports.job(job_id), "the client's session was ended")

    polled = status(clinic, token, job_id)

    assert polled.status_code == 500, polled.text
    first = polled.json()["issue"][0]
    assert (first["severity"], first["code"]) == ("error", "processing")
    assert "stopped" in first["diagnostics"]


def test_refusals_beyond_the_clients_grant_still_suspend_it(clinic: Clinic) -> None:
    """What round 85 leaves as it was: 20 kick-offs refused 403 (a client granted less
    than ``system/*.read``) are denials, and the detector suspends the client."""
    token = clinic.client("narrow", "system/Patient.read")

    for _ in range(PAST_THE_THRESHOLD - 1):
        refused = clinic.web.get("/fhir/Patient/$export", headers={**bearer(token), **ASYNC})
        assert refused.status_code == 403, refused.text

    refusals = _kick_off_refusals(clinic)
    assert {e.outcome for e in refusals} == {Outcome.DENIED}
    alerts = _denials(clinic)
    assert [(a["client"], a["action"]) for a in alerts] == [("narrow", "suspend")]
    after = clinic.web.get("/fhir/Patient/pa0", headers=bearer(token))
    assert after.status_code == 401, after.text
