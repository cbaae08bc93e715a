"""Sensitive codes however their system is spelt, and identifiers a role's view cuts
(the review after adversary rounds 46 and 47)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from tests.integration.access.group import TM, Group, build_group
from tests.support.client import FhirTestClient
from tests.support.staff import make_staff

HIV_DISEASE = "86406008"
HIV_TYPE = {"coding": [{"system": "http://snomed.info/sct", "code": HIV_DISEASE}]}


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


@pytest.mark.parametrize(
    ("system", "code"),
    [
        ("SNOMEDCT_US", HIV_DISEASE),  # UMLS's (and many US EHRs') name for SNOMED CT
        ("snomed.info/sct", HIV_DISEASE),  # the URI without its scheme
        ("LN", "19080-1"),  # HL7 v2's name for LOINC (an HIV test of the lists)
        ("I10", "B20"),  # HL7 v2's name for ICD-10
    ],
)
def test_a_sensitive_code_under_another_common_spelling_of_its_system_is_withheld(
    group: Group, system: str, code: str
) -> None:
    """Round 46 added names (``SNOMED``, ``LOINC``, ``ICD-10``) one by one; a spelling not
    listed was an unknown system, and its code was shown to a pharmacist."""
    pharmacist = make_staff(group.services, Role.PHARMACIST, [TM])
    body = {
        "resourceType": "Condition",
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": f"Patient/{group.tm_patient.id}"},
    }
    made = group.call(group.doctor_tm, "POST", "/fhir/Condition", body)
    assert made.status_code == 201, made.text
    read = group.call(pharmacist, "GET", f"/fhir/Condition/{made.json()['id']}")
    assert read.status_code == 404, read.text


def test_a_desk_does_not_find_a_patient_by_a_number_its_reads_cut(
    group: Group, api: FhirTestClient
) -> None:
    """A desk's reads cut a patient's HIV clinic number (typed with SNOMED's HIV disease);
    a search by that number found the patient, telling the desk that this patient holds
    it. A search by the patient's HKID, which the desk's reads cut too, still finds them:
    a desk registers by HKID."""
    path = f"/fhir/Patient/{group.tm_patient.id}"
    stored = api.get(path).json()
    number = {
        "system": "urn:tm:hiv-clinic",
        "value": "HIVC-0042",
        "type": {"coding": [{"system": "http://snomed.info/sct", "code": HIV_DISEASE}]},
    }
    put = api.put_json(path, {**stored, "identifier": [*stored["identifier"], number]})
    assert put.status_code == 200, put.text
    assert "HIVC-0042" not in group.call(group.desk_tm, "GET", path).text

    found = group.call(group.desk_tm, "GET", "/fhir/Patient?identifier=urn:tm:hiv-clinic|HIVC-0042")
    assert found.status_code in (200, 403), found.text
    assert group.tm_patient.id not in found.text
    by_hkid = group.call(
        group.desk_tm, "GET", f"/fhir/Patient?identifier={quote(group.tm_patient.hkid)}"
    )
    assert by_hkid.status_code == 200, by_hkid.text
    assert [e["resource"]["id"] for e in by_hkid.json()["entry"]] == [group.tm_patient.id]


def test_a_desk_may_not_tag_a_patient_with_a_sensitive_code(
    group: Group, api: FhirTestClient
) -> None:
    """A desk sending a sensitive code in a patient's meta is refused (``_sent_unseen``
    judges the meta's codes)."""
    path = f"/fhir/Patient/{group.tm_patient.id}"
    view = group.call(group.desk_tm, "GET", path).json()
    meta = {**view.get("meta", {}), "tag": [{"system": "http://snomed.info/sct",
                                             "code": HIV_DISEASE}]}  # fmt: skip
    tagged = group.call(group.desk_tm, "PUT", path, {**view, "meta": meta})
    assert tagged.status_code == 403, tagged.text


def test_a_desk_does_not_register_a_patient_by_a_number_its_reads_cut(
    group: Group, api: FhirTestClient
) -> None:
    """``$register`` by a number the desk's reads cut (a record number typed with SNOMED's
    HIV disease) and the birth date is no match: "registered" would link the number to
    the patient, as the search would have."""
    from carevault.gate.registration import MRN_SYSTEM

    path = f"/fhir/Patient/{group.tw_patient.id}"
    stored = api.get(path).json()
    number = {"system": MRN_SYSTEM, "value": "HIVC-0042", "type": HIV_TYPE}
    assert api.put_json(path, {**stored, "identifier": [*stored["identifier"], number]}).is_success
    presence = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "identifier", "valueIdentifier": {"system": MRN_SYSTEM, "value": "HIVC-0042"}},
            {"name": "birthDate", "valueDate": group.tw_patient.birth_date},
        ],
    }
    answer = group.call(group.desk_tm, "POST", "/fhir/Patient/$register", presence)
    assert answer.status_code == 404, answer.text
    assert group.tw_patient.id not in answer.text
