"""A stranger cannot make the server sign checkpoints (issue 9: 60 anonymous requests
made 30 signed checkpoints in 0.3 s). Anonymous readers get the latest signed one; a
signed-in privacy officer may ask for a fresh one. SQLite and PostgreSQL."""

from __future__ import annotations

import time

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from carevault.ledger.checkpoints import CheckpointSchedule
from carevault.ledger.verifier import VerifierKey, open_checkpoint
from tests.integration.ledger.conftest import StaffToken, bearer
from tests.integration.ledger.test_http import patient
from tests.support.client import FhirTestClient


def test_anonymous_requests_never_sign_a_checkpoint(
    web: FhirTestClient, staff_token: StaffToken, services: Services
) -> None:
    desk, officer = staff_token(Role.FRONT_DESK), staff_token(Role.PRIVACY_OFFICER)
    checkpoints = services.audit_ledger.checkpoints
    assert web.get("/audit/checkpoint").status_code == 404  # none signed yet: none made
    assert checkpoints.latest() is None

    signed = web.get("/audit/checkpoint", headers=bearer(officer))
    assert signed.status_code == 200
    vkey = VerifierKey.parse(web.get("/audit/vkey").json()["audit"])
    first = open_checkpoint(signed.text, vkey)
    count = len(checkpoints.all())

    served = set()
    for round_ in range(60):
        patient(web, desk, f"Chan{round_}")  # the ledger grows between requests
        for ledger in ("audit", "unwrap"):
            response = web.get(f"/audit/checkpoint?ledger={ledger}")
            assert response.status_code in (200, 404)
            if ledger == "audit":
                served.add(response.text)
    assert len(checkpoints.all()) == count
    assert served == {signed.text}
    assert services.audit_ledger.store.head()[0] > first.size

    # Other staff are served the published one too; only the officer's request signs.
    assert web.get("/audit/checkpoint", headers=bearer(desk)).text == signed.text
    fresh = web.get("/audit/checkpoint", headers=bearer(officer))
    assert open_checkpoint(fresh.text, vkey).size > first.size
    assert len(checkpoints.all()) == count + 1
    assert web.get("/audit/checkpoint").text == fresh.text


def test_a_bad_token_on_the_checkpoint_is_refused(web: FhirTestClient) -> None:
    response = web.get("/audit/checkpoint", headers=bearer("not-a-token"))
    assert response.status_code == 401


def test_the_schedule_signs_one_at_start_so_a_fresh_server_has_one_to_serve(
    services: Services,
) -> None:
    checkpoints = services.audit_ledger.checkpoints
    assert checkpoints.latest() is None
    schedule = CheckpointSchedule([checkpoints], seconds=3600)
    schedule.start()
    try:
        for _ in range(500):  # waits for the first tick; asserts nothing about its speed
            if checkpoints.latest() is not None:
                break
            time.sleep(0.02)
    finally:
        schedule.stop()
    latest = checkpoints.latest()
    assert latest is not None and latest.reason == "schedule"
