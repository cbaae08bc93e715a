"""Updates of records of care inside Bundles are judged on what is stored (SQLite and
PostgreSQL). An insider doctor of Tuen Mun takes a record of care of Tsuen Wan's
patient, of every type that opens care (Encounter, Appointment, CareTeam,
ServiceRequest), and overwrites it in a transaction or a batch: with one of their own
patient at their own clinic naming themself (to take the record over), or with the
other clinic's patient kept and their own clinic and name put in (to open that patient
to themself). Every entry is refused, nothing is written, and no care is opened."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from carevault.ledger.events import Outcome
from tests.integration.access.group import (
    TM,
    TW,
    Group,
    booked_today,
    care_team,
    encounter,
    referral,
)
from tests.support.client import FhirTestClient

#: A record of care of ``patient`` at ``clinic`` naming ``practitioner``, by type.
CARE: dict[str, Callable[[str, str, str], dict[str, Any]]] = {
    "Encounter": lambda patient, clinic, practitioner: encounter(patient, clinic, practitioner),
    "Appointment": booked_today,
    "CareTeam": lambda patient, clinic, practitioner: care_team(patient, practitioner, clinic),
    "ServiceRequest": lambda patient, clinic, practitioner: referral(
        patient, f"Organization/{clinic}"
    ),
}


@pytest.mark.parametrize("kind", sorted(CARE))
def test_a_bundle_cannot_take_over_or_reopen_another_clinics_record_of_care(
    group: Group, api: FhirTestClient, kind: str
) -> None:
    make = CARE[kind]
    stored = api.post_json(f"/fhir/{kind}", make(group.tw_patient.id, TW, "dr-tw"))
    assert stored.status_code == 201, stored.text
    record = stored.json()["id"]
    sent = [
        make(group.tm_patient.id, TM, "dr-tm"),  # taken over as one's own patient's
        make(group.tw_patient.id, TM, "dr-tm"),  # the other's patient, at one's own clinic
    ]
    for body in sent:
        for kind_of_bundle in ("transaction", "batch"):
            bundle = {
                "resourceType": "Bundle",
                "type": kind_of_bundle,
                "entry": [
                    {
                        "resource": {**body, "id": record},
                        "request": {"method": "PUT", "url": f"{kind}/{record}"},
                    }
                ],
            }
            response = group.call(group.doctor_tm, "POST", "/fhir", bundle)
            if kind_of_bundle == "transaction":
                assert response.status_code in (403, 404), response.text
            else:
                assert response.status_code == 200, response.text
                (entry,) = response.json()["entry"]
                assert entry["response"]["status"][:3] in ("403", "404"), entry

    kept = api.get(f"/fhir/{kind}/{record}").json()
    assert kept["meta"]["versionId"] == "1"
    assert group.tw_patient.id in str(kept) and "dr-tm" not in str(kept)
    denied = [e for e in group.events() if e.outcome is Outcome.DENIED]
    assert len(denied) >= len(sent) * 2
    # No care opened for the insider: the other clinic's patient stays closed.
    observation = f"/fhir/Observation/{group.tw_patient.observation}"
    assert group.call(group.doctor_tm, "GET", observation).status_code == 403
