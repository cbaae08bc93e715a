"""``$import`` refusals about *when* (integrator round 85, as for ``$export``): a
kick-off refused 429 (the client's import still queued or running) or 503 (containment)
is the server's state, which the client is told to wait out. Recorded DENIED, a client
that retried as ``Retry-After`` told it was suspended by the ``denials`` detector after
20. Each test failed on the code before its fix, but the last, which shows that a
refusal of what the client may not do is still a denial."""

from __future__ import annotations

from typing import Any

import pytest
from httpx import Response

from carevault.containment.state import Mode
from carevault.detect import alerts_as_dicts
from carevault.ledger.events import Outcome, Tag
from tests.integration.access.browser import bearer
from tests.integration.export.conftest import MINE, patient
from tests.integration.importjobs.conftest import NDJSON, Clinic
from tests.integration.importjobs.test_import_api import ndjson, officer

pytestmark = pytest.mark.postgres

#: The ``denials`` detector's threshold (refused requests in 10 minutes), and one more.
PAST_THE_THRESHOLD = 21


def _denials(clinic: Clinic) -> list[dict[str, Any]]:
    return [a for a in alerts_as_dicts(clinic.services) if a["detector"] == "denials"]


def _send_past_the_threshold(clinic: Clinic, token: str, status: int) -> list[Response]:
    """As many kick-offs as the detector's threshold and one more, each refused
    ``status`` with a ``Retry-After``."""
    answers = [
        clinic.web.post(
            "/fhir/$import",
            content=ndjson(patient("p2", MINE, "Ma")),
            headers={**bearer(token), **NDJSON},
        )
        for _ in range(PAST_THE_THRESHOLD)
    ]
    for answer in answers:
        assert answer.status_code == status, answer.text
        assert int(answer.headers["retry-after"]) > 0
    return answers


def test_a_client_retrying_a_busy_import_as_told_is_not_suspended(clinic: Clinic) -> None:
    token = clinic.client("importer")
    job_id = clinic.kick_off(token, ndjson(patient("p1", MINE, "Chan")))

    _send_past_the_threshold(clinic, token, 429)

    assert _denials(clinic) == []
    refused = clinic.events(Tag.IMPORT_REFUSED)
    assert [(e.outcome, e.detail["status"]) for e in refused] == [
        (Outcome.FAILED, 429)
    ] * PAST_THE_THRESHOLD
    assert clinic.status(token, job_id).status_code == 202


def test_an_import_refused_while_contained_says_when_and_is_not_a_denial(clinic: Clinic) -> None:
    token = clinic.client("importer")
    started = clinic.services.contain.start(
        officer(clinic.officers[1]), Mode.PHI_OFFLINE, None, "drill"
    )
    clinic.services.containment.refresh()

    _send_past_the_threshold(clinic, token, 503)

    assert _denials(clinic) == []
    assert {e.outcome for e in clinic.events(Tag.IMPORT_REFUSED)} == {Outcome.FAILED}
    clinic.services.contain.release(officer(clinic.officers[1]), started.containment_id, "done")
    clinic.services.containment.refresh()
    clinic.kick_off(token, ndjson(patient("p2", MINE, "Ma")))


def test_an_import_refused_for_its_grant_is_still_a_denial(clinic: Clinic) -> None:
    reader = clinic.client("reader", "system/*.rs")
    refused = clinic.web.post(
        "/fhir/$import",
        content=ndjson(patient("p1", MINE, "A")),
        headers={**bearer(reader), **NDJSON},
    )
    assert refused.status_code == 403
    assert [e.outcome for e in clinic.events(Tag.IMPORT_REFUSED)] == [Outcome.DENIED]
