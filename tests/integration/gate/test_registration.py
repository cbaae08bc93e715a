"""``$register`` and ``$transfer`` change where a patient belongs, and ``$break-glass``
opens a record: containment stops them as it stops any write, a clinic lock is neither
escaped nor widened by moving a patient, and a token's SMART scopes limit them as they
limit every other interaction (from an adversary's pass: none of this held)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from carevault.ledger.events import Outcome, Tag
from tests.integration.access.group import HKID_SYSTEM, TM, TW, Group, build_group
from tests.support.client import FHIR_JSON, FhirTestClient, transfer_body
from tests.support.staff import Staff, make_staff, open_token


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _contain(group: Group, mode: str, target: str | None = None) -> None:
    body = {"mode": mode, "target": target, "reason": "incident 42", "totp": group.officer.totp()}
    response = group.web.post("/admin/containment", json=body, headers=group.officer.headers)
    assert response.status_code == 201, response.text


def _presence(group: Group) -> dict[str, Any]:
    patient = group.tw_patient
    return {
        "resourceType": "Parameters",
        "parameter": [
            {
                "name": "identifier",
                "valueIdentifier": {"system": HKID_SYSTEM, "value": patient.hkid},
            },
            {"name": "birthDate", "valueDate": patient.birth_date},
        ],
    }


def _registered_at(group: Group, clinic: str) -> bool:
    access = group.services.access
    assert access is not None
    pseudonym = group.services.vault.patient_pseudonyms([group.tw_patient.id])[group.tw_patient.id]
    return clinic in access.registrations.clinics(pseudonym)


def _home_clinic(group: Group) -> str | None:
    return group.services.vault.locate("Patient", group.tw_patient.id).head.clinic_id


def _manager(group: Group) -> Staff:
    return make_staff(group.services, Role.CLINIC_MANAGER, [TM, TW])


def _narrow(group: Group, who: Staff, scope: str) -> dict[str, str]:
    """A token of ``who`` granted only ``scope``."""
    return {"authorization": f"Bearer {open_token(group.services, who.account, scope)}"}


def test_a_registration_works_when_nothing_is_contained(group: Group) -> None:
    response = group.call(group.desk_tm, "POST", "/fhir/Patient/$register", _presence(group))
    assert response.status_code == 200, response.text
    assert _registered_at(group, TM)


@pytest.mark.parametrize("mode", ["read-only", "phi-offline"])
def test_containment_refuses_a_registration(group: Group, mode: str) -> None:
    _contain(group, mode)
    response = group.call(group.desk_tm, "POST", "/fhir/Patient/$register", _presence(group))
    assert response.status_code == 503, response.text
    assert not _registered_at(group, TM)
    refused = group.events(Tag.PATIENT_REGISTERED)
    assert refused and refused[-1].outcome is not Outcome.SUCCESS


@pytest.mark.parametrize("locked", [TM, TW])
def test_a_clinic_lock_refuses_a_registration_into_or_out_of_it(group: Group, locked: str) -> None:
    # The patient's clinic locked: registering them elsewhere would let that clinic read
    # what the lock holds. The desk's own clinic locked: nothing is placed there.
    _contain(group, "clinic-lock", locked)
    response = group.call(group.desk_tm, "POST", "/fhir/Patient/$register", _presence(group))
    assert response.status_code == 503, response.text
    assert not _registered_at(group, TM)


@pytest.mark.parametrize("mode", ["read-only", "phi-offline"])
def test_containment_refuses_a_transfer(group: Group, mode: str) -> None:
    manager = _manager(group)
    _contain(group, mode)
    path = f"/fhir/Patient/{group.tw_patient.id}/$transfer"
    response = group.call(manager, "POST", path, transfer_body(TM))
    assert response.status_code == 503, response.text
    assert _home_clinic(group) == TW


@pytest.mark.parametrize("locked", [TM, TW])
def test_a_clinic_lock_is_not_escaped_by_a_transfer(group: Group, locked: str) -> None:
    manager = _manager(group)
    _contain(group, "clinic-lock", locked)
    path = f"/fhir/Patient/{group.tw_patient.id}/$transfer"
    response = group.call(manager, "POST", path, transfer_body(TM))
    assert response.status_code == 503, response.text
    assert _home_clinic(group) == TW
    # The patient stays out of the destination's reach.
    assert group.call(group.desk_tm, "GET", f"/fhir/Patient/{group.tw_patient.id}").status_code in (
        403,
        503,
    )


def test_a_transfer_works_when_nothing_is_contained(group: Group) -> None:
    path = f"/fhir/Patient/{group.tw_patient.id}/$transfer"
    response = group.call(_manager(group), "POST", path, transfer_body(TM))
    assert response.status_code == 200, response.text
    assert _home_clinic(group) == TM


def test_a_token_without_patient_writes_cannot_register(group: Group) -> None:
    headers = _narrow(group, group.desk_tm, "user/Slot.rs")
    response = group.web.post_json("/fhir/Patient/$register", _presence(group), **headers)
    assert response.status_code == 403, response.text
    assert "scopes" in response.text
    assert not _registered_at(group, TM)


def test_a_token_with_patient_writes_registers(group: Group) -> None:
    headers = _narrow(group, group.desk_tm, "user/Patient.rus")
    response = group.web.post_json("/fhir/Patient/$register", _presence(group), **headers)
    assert response.status_code == 200, response.text
    assert _registered_at(group, TM)


def test_a_token_without_patient_writes_cannot_transfer(group: Group) -> None:
    headers = _narrow(group, _manager(group), "user/Patient.rs")
    path = f"/fhir/Patient/{group.tw_patient.id}/$transfer"
    response = group.web.post_json(path, transfer_body(TM), **headers)
    assert response.status_code == 403, response.text
    assert _home_clinic(group) == TW


def test_a_token_without_patient_reads_cannot_break_the_glass(group: Group) -> None:
    headers = {**_narrow(group, group.doctor_tm, "user/Slot.rs"), **FHIR_JSON}
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "reason", "valueCode": "emergency-treatment"},
            {"name": "text", "valueString": "collapsed at the MTR station"},
        ],
    }
    path = f"/fhir/Patient/{group.tw_patient.id}/$break-glass"
    response = group.web.post(path, json=body, headers=headers)
    assert response.status_code == 403, response.text
    assert not group.events(Tag.ACCESS_BREAK_GLASS) or all(
        event.outcome is not Outcome.SUCCESS for event in group.events(Tag.ACCESS_BREAK_GLASS)
    )
