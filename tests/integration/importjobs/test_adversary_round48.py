"""Adversary round 48, as an integration client sends ``$import``: a body compressed
for the wire (``Content-Encoding: gzip``, as a large NDJSON file is usually sent)."""

from __future__ import annotations

import gzip

import pytest

from carevault.ledger.events import Tag
from tests.integration.access.browser import bearer
from tests.integration.export.conftest import MINE, patient
from tests.integration.importjobs.conftest import NDJSON, Clinic
from tests.integration.importjobs.test_import_api import ndjson

pytestmark = pytest.mark.postgres


def test_a_compressed_body_is_refused_before_a_job_is_made(clinic: Clinic) -> None:
    """The coding was ignored: the gzip bytes were taken (202) and sealed as a job, whose
    every "line" was then refused as not UTF-8, with nothing saying why."""
    token = clinic.client("gzip-importer")
    body = gzip.compress(ndjson(patient("p1", MINE, "Chan")))
    response = clinic.web.post(
        "/fhir/$import",
        content=body,
        headers={**bearer(token), **NDJSON, "Content-Encoding": "gzip"},
    )
    assert response.status_code == 415, response.text
    said = response.json()["issue"][0]
    assert said["code"] == "not-supported"
    assert "Content-Encoding" in said["diagnostics"]
    assert clinic.imports.jobs.all() == []
    assert [e.detail["status"] for e in clinic.events(Tag.IMPORT_REFUSED)] == [415]


def test_an_identity_coding_is_no_coding(clinic: Clinic) -> None:
    token = clinic.client("plain-importer")
    response = clinic.web.post(
        "/fhir/$import",
        content=ndjson(patient("p1", MINE, "Chan")),
        headers={**bearer(token), **NDJSON, "Content-Encoding": "identity"},
    )
    assert response.status_code == 202, response.text


def test_a_compressed_fhir_body_is_refused_for_its_coding_not_as_bad_text(clinic: Clinic) -> None:
    token = clinic.client("gzip-writer")
    response = clinic.web.post(
        "/fhir/Patient",
        content=gzip.compress(b'{"resourceType": "Patient", "name": [{"family": "Chan"}]}'),
        headers={
            **bearer(token),
            "Content-Type": "application/fhir+json",
            "Content-Encoding": "gzip",
        },
    )
    assert response.status_code == 415, response.text
    assert "Content-Encoding" in response.json()["issue"][0]["diagnostics"]
