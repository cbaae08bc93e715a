"""Break-the-glass over FHIR: a stated reason opens one record for a while, is recorded
with the reason, and waits in the privacy officer's review queue."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from carevault.web.app import create_app
from tests.support.client import FHIR_JSON, FhirTestClient
from tests.support.staff import make_staff


@pytest.fixture
def web(services: Services) -> Iterator[FhirTestClient]:
    with FhirTestClient(create_app(services.settings, services)) as client:
        yield client


def parameters(**values: str) -> str:
    return json.dumps(
        {
            "resourceType": "Parameters",
            "parameter": [{"name": name, "valueString": value} for name, value in values.items()],
        }
    )


def test_breaking_the_glass_opens_one_record_and_is_queued(
    web: FhirTestClient, api: FhirTestClient, services: Services
) -> None:
    for clinic in ("clinic-a", "clinic-b"):
        api.put_json(f"/fhir/Organization/{clinic}", {"resourceType": "Organization", "id": clinic})
    patient = api.post_json(
        "/fhir/Patient",
        {
            "resourceType": "Patient",
            "name": [{"family": "Glass"}],
            "managingOrganization": {"reference": "Organization/clinic-b"},
        },
    ).json()["id"]
    observation = api.post_json(
        "/fhir/Observation",
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "blood pressure"},
            "subject": {"reference": f"Patient/{patient}"},
        },
    ).json()["id"]
    doctor = make_staff(services, Role.PHYSICIAN, ["clinic-a"])
    desk = make_staff(services, Role.FRONT_DESK, ["clinic-b"])
    headers = {**doctor.headers, **FHIR_JSON}
    path = f"/fhir/Patient/{patient}/$break-glass"

    assert web.get(f"/fhir/Observation/{observation}", headers=doctor.headers).status_code == 403
    bad = web.post(path, content=parameters(reason="curious", text="just looking"), headers=headers)
    assert bad.status_code == 400
    not_clinician = web.post(
        path,
        content=parameters(reason="emergency-treatment", text="collapsed"),
        headers={**desk.headers, **FHIR_JSON},
    )
    assert not_clinician.status_code == 403
    granted = web.post(
        path,
        content=parameters(reason="emergency-treatment", text="collapsed at the MTR station"),
        headers=headers,
    )
    assert granted.status_code == 200, granted.text
    assert web.get(f"/fhir/Observation/{observation}", headers=doctor.headers).status_code == 200

    queue = services.break_glass.queue()
    assert len(queue) == 1 and queue[0].reason.value == "emergency-treatment"
    assert services.break_glass.reason_text(queue[0].grant_id) == "collapsed at the MTR station"
    entries = [json.loads(data) for _, data in services.audit_ledger.store.entries()]
    reads = [
        e
        for e in entries
        if e["tag"] == "fhir:resource:read" and e.get("resource_id") == observation
    ]
    assert [e["outcome"] for e in reads] == ["denied", "success"]
    assert reads[-1]["purpose"] == "ETREAT"
    grants = [e for e in entries if e["tag"] == "access:break-glass:granted"]
    assert [e["outcome"] for e in grants] == ["failed", "denied", "success"]
    assert "collapsed" not in json.dumps(entries)  # the words stay sealed, out of the ledger
