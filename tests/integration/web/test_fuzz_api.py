"""Schemathesis over every route of the OpenAPI document, signed in, on SQLite and
PostgreSQL: no answer is a 5xx, and every answer on a route that touches records or
sessions leaves its ledger entry.

The document is served nowhere (``openapi_url=None`` in production); the test builds it
from the app and, since FHIR bodies are parsed by hand and so absent from it, declares
every FHIR POST and PUT to take any JSON object. ``CAREVAULT_FUZZ_EXAMPLES`` sets the
examples per operation (bench/fuzz_api runs many more).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from carevault.web.app import create_app
from tests.support.client import FhirTestClient
from tests.support.fuzz import fuzz_app
from tests.support.staff import make_staff

EXAMPLES = int(os.environ.get("CAREVAULT_FUZZ_EXAMPLES", "2"))
CLINIC = "clinic-a"


@pytest.fixture
def signed_in(services: Services) -> Iterator[tuple[Any, dict[str, str]]]:
    app = create_app(services.settings, services)
    with FhirTestClient(app) as client:
        client.put_json(
            f"/fhir/Organization/{CLINIC}",
            {"resourceType": "Organization", "id": CLINIC, "name": "Clinic A"},
        )
    staff = make_staff(services, Role.PHYSICIAN, [CLINIC])
    yield app, {"authorization": f"Bearer {staff.token}"}


def test_no_route_answers_5xx_and_every_answer_is_recorded(
    services: Services, signed_in: tuple[Any, dict[str, str]]
) -> None:
    app, headers = signed_in
    report = fuzz_app(services, app, headers, EXAMPLES)
    assert report.operations > 60
    assert report.requests >= report.operations
    assert not report.server_errors, report.server_errors[:20]
    assert not report.unrecorded, sorted(report.unrecorded.items())
    assert not report.hangs, report.hangs
