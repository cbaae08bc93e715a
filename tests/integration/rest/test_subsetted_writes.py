"""A client that saves back what it read: the SUBSETTED label marks the caller's view of a
record, never the record. A front desk's read leaves out the HKID and says so; the
desk's client (fhirpy's ``save()``, any read-modify-write) sends that view back with its
label, and the record must keep its HKID and carry no label. On SQLite and PostgreSQL."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from carevault.bootstrap import Services
from tests.integration.access.group import HKID_SYSTEM, Group, build_group
from tests.support.client import FhirTestClient

SUBSETTED_CODE = "SUBSETTED"


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _labels(resource: dict[str, Any]) -> list[str]:
    return [label.get("code", "") for label in resource.get("meta", {}).get("security", [])]


def _save_back(group: Group, how: str, view: dict[str, Any]) -> int:
    """The desk's view of its patient sent back with a new given name, as ``how`` sends
    it; the response's status."""
    patient = view["id"]
    changed = copy.deepcopy(view)
    changed["name"][0]["given"] = ["Changed"]
    if how == "put":
        response = group.call(group.desk_tm, "PUT", f"/fhir/Patient/{patient}", changed)
        return int(response.status_code)
    if how == "conditional-put":
        response = group.call(group.desk_tm, "PUT", f"/fhir/Patient?_id={patient}", changed)
        return int(response.status_code)
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": changed, "request": {"method": "PUT", "url": f"Patient/{patient}"}}],
    }
    response = group.call(group.desk_tm, "POST", "/fhir", bundle)
    assert response.status_code == 200, response.text
    return int(response.json()["entry"][0]["response"]["status"].split()[0])


@pytest.mark.parametrize("how", ["put", "conditional-put", "transaction"])
def test_a_view_saved_back_keeps_what_was_left_out_and_stores_no_label(
    group: Group, api: FhirTestClient, how: str
) -> None:
    """Hole: the label went into the stored record. Everyone who read it afterwards, a
    doctor or the system with every right, was told their complete record was a subset
    (a client that honours the label will not save it, and may take data as missing),
    and the desk's next view carried the label twice."""
    patient = group.tm_patient.id
    view = group.call(group.desk_tm, "GET", f"/fhir/Patient/{patient}").json()
    assert _labels(view) == [SUBSETTED_CODE] and "identifier" not in view

    assert _save_back(group, how, view) == 200

    stored = api.get(f"/fhir/Patient/{patient}").json()
    assert stored["name"][0]["given"] == ["Changed"]
    assert stored["identifier"] == [{"system": HKID_SYSTEM, "value": group.tm_patient.hkid}]
    assert _labels(stored) == []
    doctor = group.call(group.doctor_tm, "GET", f"/fhir/Patient/{patient}").json()
    assert _labels(doctor) == []
    again = group.call(group.desk_tm, "GET", f"/fhir/Patient/{patient}").json()
    assert _labels(again) == [SUBSETTED_CODE]


def test_other_security_labels_sent_are_kept(group: Group, api: FhirTestClient) -> None:
    """Only the view's own label is left out: a label the writer sets stays."""
    patient = group.tm_patient.id
    view = group.call(group.desk_tm, "GET", f"/fhir/Patient/{patient}").json()
    restricted = {
        "system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
        "code": "R",
    }
    view["meta"]["security"].append(restricted)
    assert _save_back(group, "put", view) == 200
    stored = api.get(f"/fhir/Patient/{patient}").json()
    assert stored["meta"]["security"] == [restricted]
