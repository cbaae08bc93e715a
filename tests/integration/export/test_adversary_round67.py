"""Adversary round 67, the thief with the files: what a client typed into a refused
``$export`` kick-off (a parameter's name or value, a patient reference) was quoted in the
ledger's ``export:job:refused`` entry, in the clear and for good. The answer to the
client still quotes it (it is the client's own input); the entry does not."""

from __future__ import annotations

import json

from carevault.ledger.events import AuditEvent, Tag
from tests.integration.access.browser import bearer
from tests.integration.export.conftest import Clinic

ASYNC = {"prefer": "respond-async", "accept": "application/fhir+json"}
TYPED = "Quillfeather"


def _post_patients(clinic: Clinic, token: str, *references: str) -> int:
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "patient", "valueReference": {"reference": reference}}
            for reference in references
        ],
    }
    answer = clinic.web.post(
        "/fhir/Patient/$export",
        content=json.dumps(body),
        headers={**bearer(token), **ASYNC, "content-type": "application/fhir+json"},
    )
    return answer.status_code


def test_a_refused_kick_off_keeps_nothing_the_client_typed_in_the_ledger(
    clinic: Clinic,
) -> None:
    token = clinic.client("exporter", "system/*.read")
    for query in (f"{TYPED}=1", f"_type={TYPED}", f"_outputFormat={TYPED}"):
        answer = clinic.web.get(
            f"/fhir/Patient/$export?{query}", headers={**bearer(token), **ASYNC}
        )
        assert answer.status_code == 400
        assert TYPED in answer.text  # the client is told what it sent
    assert (
        clinic.web.get(
            f"/fhir/Group/{TYPED}/$export", headers={**bearer(token), **ASYNC}
        ).status_code
        == 404
    )
    assert _post_patients(clinic, token, f"Patient/{TYPED}") == 400
    assert _post_patients(clinic, token, f"Organization/{TYPED}") == 400
    # Another clinic's patient, a record the client may not reach: its id stays evidence.
    assert _post_patients(clinic, token, f"Patient/{clinic.other[0]}") == 400

    entries = [data for _, data in clinic.services.audit_ledger.store.entries()]
    assert [entry for entry in entries if TYPED.encode() in entry] == []
    refused = [
        event.reason
        for event in map(AuditEvent.from_canonical, entries)
        if event.tag is Tag.EXPORT_REFUSED
    ]
    assert "unknown parameter (what was sent)" in refused
    unknown = "patient: Patient/(an id no record holds) is not a patient this export may reach"
    assert f"{unknown} (1 of those named are not)" in refused
    assert any(f"Patient/{clinic.other[0]} is not a patient" in reason for reason in refused)
