"""Adversary round 48, as a Bulk Data client drives ``$export``: the parameters as a
client that writes its URL by hand sends them."""

from __future__ import annotations

import pytest

from tests.integration.access.browser import bearer
from tests.integration.export.conftest import Clinic
from tests.integration.export.test_export import ASYNC

pytestmark = pytest.mark.postgres


def test_an_output_format_whose_plus_was_not_escaped_is_the_ndjson_asked_for(
    clinic: Clinic,
) -> None:
    """The spec writes ``_outputFormat=application/fhir+ndjson``; sent as written (the
    ``+`` not escaped as ``%2B``), a query string reads it as ``application/fhir ndjson``,
    which was refused with "only application/fhir+ndjson is offered": the very value
    the client had sent."""
    token = clinic.client("by-hand", "system/*.read")
    response = clinic.web.get(
        "/fhir/Patient/$export?_outputFormat=application/fhir+ndjson",
        headers={**bearer(token), **ASYNC},
    )
    assert response.status_code == 202, response.text


def test_an_output_format_not_offered_is_refused_naming_what_was_received(
    clinic: Clinic,
) -> None:
    token = clinic.client("csv-please", "system/*.read")
    response = clinic.web.get(
        "/fhir/Patient/$export?_outputFormat=text/csv", headers={**bearer(token), **ASYNC}
    )
    assert response.status_code == 400
    said = response.json()["issue"][0]["diagnostics"]
    assert "'text/csv'" in said
    assert "application/fhir+ndjson" in said
