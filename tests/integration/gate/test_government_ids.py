"""An HKID stored without the HKID system is withheld as one (an adversary's finding: it
was read back by every role).

``fhir/categories._identifier_categories`` makes a Patient identifier a government id
only when its ``system`` is one of ``GOVERNMENT_ID_SYSTEMS``; any other identifier is
identity, which the front desk, billing (group-wide) and the privacy officer (group-wide)
read. An HKID that came without that exact system (no system at all, as many legacy
sources and hand-typed registrations send it; or typed ``NNHKG`` under an OID) is
therefore shown in full to all of them, although the rest of CareVault knows it for an
HKID: search folds any HKID-shaped value into the HKID form (``normalise.identifier_any``)
and finds the patient by it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from tests.integration.access.group import HKID_SYSTEM, TM, Group, build_group, encounter
from tests.support.client import FhirTestClient
from tests.support.staff import make_staff

HKID = "K987654(5)"

SHAPES: dict[str, dict[str, Any]] = {
    "no-system": {"value": HKID},
    "typed-under-an-oid": {
        "type": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "NNHKG"}]
        },
        "system": "urn:oid:2.16.344.1",
        "value": HKID,
    },
}


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.BILLING, Role.PRIVACY_OFFICER])
def test_an_hkid_without_the_hkid_system_is_still_withheld_from_who_may_not_read_hkids(
    group: Group, api: FhirTestClient, shape: str, role: Role
) -> None:
    # Written by the system, as a bulk load or an import of a legacy chart writes it.
    created = api.post_json(
        "/fhir/Patient",
        {
            "resourceType": "Patient",
            "identifier": [SHAPES[shape]],
            "name": [{"family": "Wong", "given": ["Tai Man"]}],
            "managingOrganization": {"reference": f"Organization/{TM}"},
        },
    )
    assert created.status_code == 201, created.text
    reader = make_staff(group.services, role, [TM])

    shown = group.call(reader, "GET", f"/fhir/Patient/{created.json()['id']}")

    assert shown.status_code == 200, shown.text
    assert "987654" not in shown.text, f"{role} read an HKID back: {shown.json().get('identifier')}"


@pytest.mark.parametrize("where", ["reference", "practitioner"])
def test_an_hkid_outside_patient_identifier_is_refused(
    group: Group, api: FhirTestClient, where: str
) -> None:
    """A Reference may carry the patient's identifier beside the literal reference (HL7
    v2 feeds put PID-3 there), and a Practitioner (readable by anyone) may carry a staff
    member's HKID: a government number is kept only in ``Patient.identifier``, where
    each reader's role decides whether it is shown, so anywhere else it is refused."""
    patient = group.tm_patient
    if where == "reference":
        path, body = (
            "/fhir/Encounter",
            {
                **encounter(patient.id, TM),
                "subject": {
                    "reference": f"Patient/{patient.id}",
                    "identifier": {"system": HKID_SYSTEM, "value": patient.hkid},
                },
            },
        )
    else:
        path, body = (
            "/fhir/Practitioner",
            {
                "resourceType": "Practitioner",
                "identifier": [{"value": patient.hkid}],
                "name": [{"family": "Ho"}],
            },
        )
    before = api.get(f"{path}?_summary=count").json()["total"]

    refused = api.post_json(path, body)

    assert refused.status_code == 422, refused.text
    assert "Patient.identifier" in refused.text
    assert patient.hkid not in refused.text
    assert api.get(f"{path}?_summary=count").json()["total"] == before
