"""Adversary round 40: search values spelt so that a guard reads them otherwise than the
search does (SQLite and PostgreSQL).

FHIR search values may escape a character with a backslash (``\\,``, ``\\|``, ``\\$``);
the parser (``fhir/query.py: split_values``) drops the backslash before any character.
The guard that refuses a token search for a sensitive code to a role that may not read
sensitive records (``gate/core.py: _refuse_sensitive_codes``) read the raw value
instead: ``Encounter?type=8640600\\8`` was "not a sensitive code" to it, and the search
for ``86406008`` (HIV infection) to the index. A front desk listed its patients' HIV
visits and billing its patients' HIV-programme coverages, whose codes their reads cut.
The guard now reads each value as the parser does (``split_values``) and judges every
reading of it at each ``|`` (``_names_sensitive_code``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import quote

import pytest

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from tests.integration.access.group import (
    EXTENDED_HEALTHCARE,
    HIV_PROGRAMME,
    TM,
    TODAY,
    Group,
    booked_today,
    build_group,
    coverage,
    created,
    encounter,
)
from tests.support.client import FhirTestClient
from tests.support.staff import Staff, make_staff

#: SNOMED CT 86406008, HIV infection: a visit typed so, a booking for it.
HIV_TYPE = {"coding": [{"system": "http://snomed.info/sct", "code": "86406008"}]}
#: ICD-10 F32.9 (depression) under a system spelt with a bar in it: still ICD-10 to the
#: sensitive lists (every ``icd-10…`` spelling is), and indexed as ``sys|<system>|F32.9``.
BARRED_ICD10 = "http://hl7.org/fhir/sid/icd-10|hk"
DEPRESSION_TYPE = {"coding": [{"system": BARRED_ICD10, "code": "F32.9"}]}


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _refused(group: Group, who: Staff, query: str) -> None:
    """The search is refused as one for a sensitive code (403), whatever it matches."""
    type_name, _, params = query.partition("?")
    name, _, value = params.partition("=")
    response = group.call(who, "GET", f"/fhir/{type_name}?{name}={quote(value, safe='')}")
    assert response.status_code == 403, (query, response.status_code, response.text[:300])
    assert "sensitive code" in response.json()["issue"][0]["diagnostics"]


def test_an_escaped_sensitive_code_is_refused_as_the_code_it_searches_for(
    group: Group, api: FhirTestClient
) -> None:
    """Hole (round 40): ``type=8640600\\8`` searched for 86406008 and was let through.
    The desk is shown neither visit's type; which of them matches must not tell it."""
    patient = group.tm_patient.id
    created(api, {**encounter(patient, TM), "type": [HIV_TYPE]})
    created(api, encounter(patient, TM, day=TODAY - timedelta(days=3)))
    created(api, booked_today(patient, TM, serviceType=[HIV_TYPE]))

    for query in (
        "Encounter?type=8640600\\8",
        "Encounter?type=\\86406008",
        "Encounter?type=http://snomed.info/sct|8640600\\8",
        "Encounter?code=http://snomed.info/sct\\|86406008",
        "Appointment?service-type=86406\\008",
        "Encounter?type=8640600\\8,http://snomed.info/sct|1",
    ):
        _refused(group, group.desk_tm, query)


def test_billing_may_not_find_an_hiv_programme_by_an_escaped_code(
    group: Group, api: FhirTestClient
) -> None:
    billing = make_staff(group.services, Role.BILLING, [TM])
    patient = group.tm_patient.id
    created(api, coverage(patient, HIV_PROGRAMME))
    created(api, coverage(patient, EXTENDED_HEALTHCARE))

    for query in (
        "Coverage?type=HIVAID\\S",
        "Coverage?type=http://terminology.hl7.org/CodeSystem/v3-ActCode|\\HIVAIDS",
        "Coverage?type=MENT\\PRG",
    ):
        _refused(group, billing, query)
    # Ordinary codes, escaped or not, are searched as ever.
    for value in ("EHCPOL", "EHC\\POL"):
        plain = group.call(billing, "GET", f"/fhir/Coverage?type={quote(value, safe='')}")
        assert plain.status_code == 200, plain.text
        assert plain.json()["total"] == 1


def test_a_code_under_a_system_with_a_bar_is_judged_at_every_bar(
    group: Group, api: FhirTestClient
) -> None:
    """Held (and kept so by the fix): the index cannot tell ``a|b`` + ``c`` from ``a`` +
    ``b|c`` (both are ``sys|a|b|c``), so the guard refuses a value if any reading of it
    names a sensitive code."""
    patient = group.tm_patient.id
    visit = created(api, {**encounter(patient, TM), "type": [DEPRESSION_TYPE]})
    doctor = group.call(
        group.doctor_tm, "GET", f"/fhir/Encounter?type={quote(BARRED_ICD10 + '|F32.9', safe='')}"
    )
    assert [e["resource"]["id"] for e in doctor.json()["entry"]] == [visit]
    _refused(group, group.desk_tm, f"Encounter?type={BARRED_ICD10}|F32.9")
    _refused(group, group.desk_tm, f"Encounter?type={BARRED_ICD10}|F32\\.9")


#: Systems an HKID number is sent under besides CareVault's own: a legacy source's local
#: OID, and CareVault's own spelt otherwise. Each holds an HKID (``is_government_id``:
#: shaped like one, whatever the system), so a front desk's read cuts it.
LEGACY_HKID_SYSTEMS = ("urn:oid:2.16.344.1.1", "HTTP://carevault.hk/sid/hkid")


@pytest.mark.parametrize("system", LEGACY_HKID_SYSTEMS)
def test_the_desk_may_not_list_who_has_an_hkid_under_another_system(
    group: Group, api: FhirTestClient, system: str
) -> None:
    """``identifier=http://carevault.hk/sid/hkid|`` is refused to a front desk: it listed
    which patients have an HKID on file, which its reads withhold. The same search under
    the system a legacy import used, or under the HKID system spelt in capitals, listed
    them all the same (adversary round 40): a system alone is refused whatever it is, and
    the number the patient shows still finds them."""
    made = api.post_json(
        "/fhir/Patient",
        {
            "resourceType": "Patient",
            "name": [{"family": "Ng"}],
            "identifier": [{"system": system, "value": "K123456(2)"}],
            "managingOrganization": {"reference": f"Organization/{TM}"},
        },
    )
    assert made.status_code == 201, made.text
    shown = group.call(group.desk_tm, "GET", f"/fhir/Patient/{made.json()['id']}").json()
    assert "identifier" not in shown  # the read withholds it

    listed = group.call(group.desk_tm, "GET", f"/fhir/Patient?identifier={quote(system)}|")

    assert listed.status_code == 403, (listed.status_code, listed.json().get("total"))
    assert "only by its number" in listed.text
    number = quote(f"{system}|K123456(2)", safe="")
    found = group.call(group.desk_tm, "GET", f"/fhir/Patient?identifier={number}")
    assert found.status_code == 200, found.text
    assert [e["resource"]["id"] for e in found.json()["entry"]] == [made.json()["id"]]
