"""Adversary round 68: ``GET /audit/checkpoint?tree_size=S`` (integrator round 67), open
to anyone, as an anonymous caller probes it: a flood of sizes, and values that are not
sizes."""

from __future__ import annotations

import pytest

from carevault.bootstrap import Services
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.web.app import create_app
from tests.support.client import FhirTestClient

STRANGER = "203.0.113.68"


@pytest.mark.settings(rate_limit_source_per_second=0.01, rate_limit_source_burst=20)
def test_a_stranger_probing_signed_sizes_is_held_to_the_address_budget(services: Services) -> None:
    services.audit_ledger.writer.record(
        [AuditEvent(Tag.AUDIT_READ, Outcome.SUCCESS, services.now_us(), principal="staff:x")]
    )
    signed = services.audit_ledger.checkpoints.make("test")
    assert signed is not None
    size = signed.size
    with FhirTestClient(
        create_app(services.settings, services), client=(STRANGER, 50000)
    ) as stranger:
        odd = {
            value: stranger.get(f"/audit/checkpoint?tree_size={value}")
            for value in (
                "-1",
                "abc",
                "1e3",
                "",
                "99999999999999999999",
                f"{size}&tree_size={size + 1000}",
            )
        }
        found = stranger.get(f"/audit/checkpoint?tree_size={size}")
        probes = [stranger.get(f"/audit/checkpoint?tree_size={n}").status_code for n in range(40)]

    assert all(answer.status_code < 500 for answer in odd.values()), {
        value: answer.status_code for value, answer in odd.items()
    }
    assert odd["99999999999999999999"].status_code == 404
    # Repeated, the last is taken (FastAPI reads one value): that size was never signed.
    assert odd[f"{size}&tree_size={size + 1000}"].status_code == 404
    assert found.status_code == 200 and found.text == signed.note
    # The budget is the address's, whatever the route: 20 requests, then 429 only.
    assert probes.count(429) == 40 - (20 - len(odd) - 1)
    assert set(probes) <= {200, 404, 429}
