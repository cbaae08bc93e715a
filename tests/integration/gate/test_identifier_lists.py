"""A role that may not read HKIDs back does not learn them through identifier lists
(an adversary's finding).

The front desk registers a patient's HKID but may not read it back. A token search takes
a comma-separated OR-list, and ``identifier`` is exempt from the unreadable-criteria check
(gate/core.py _refuse_unreadable_criteria): a desk that knew only a patient's id halved a
list of candidate numbers with ``Patient?_id=X&identifier=a,b,c,...`` and read the HKID
off in log2(n) searches; billing and the privacy officer reached the whole group. Such
roles now search one identifier at a time, and conditional criteria and ``$register``
take one identifier, not a list.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from carevault.bootstrap import Services
from carevault.domain.hkid import check_digit
from tests.integration.access.group import HKID_SYSTEM, Group, build_group
from tests.support.client import FhirTestClient
from tests.support.staff import Staff


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _candidates(true_hkid: str, count: int) -> list[str]:
    """``count`` well-formed HKID numbers, the patient's among them."""
    numbers = [f"A{serial:06d}({check_digit('A', f'{serial:06d}')})" for serial in range(count)]
    numbers[count // 3] = true_hkid
    return numbers


def _matches(group: Group, who: Staff, patient_id: str, numbers: list[str]) -> bool:
    listed = ",".join(f"{HKID_SYSTEM}|{number}" for number in numbers)
    response = group.web.get(
        "/fhir/Patient",
        params={"_id": patient_id, "identifier": listed, "_summary": "count"},
        headers=who.headers,
    )
    if response.status_code != 200:
        return False  # refused: the search tells nothing
    return bool(response.json()["total"])


def _bisect(group: Group, who: Staff, patient_id: str, numbers: list[str]) -> str | None:
    while len(numbers) > 1:
        half = numbers[: len(numbers) // 2]
        numbers = half if _matches(group, who, patient_id, half) else numbers[len(half) :]
    return numbers[0] if _matches(group, who, patient_id, numbers) else None


def test_the_front_desk_cannot_bisect_a_patients_hkid_out_of_identifier_or_lists(
    group: Group,
) -> None:
    patient = group.tm_patient
    # The desk may read the patient, but not the HKID.
    shown = group.call(group.desk_tm, "GET", f"/fhir/Patient/{patient.id}").json()
    assert "identifier" not in shown

    learnt = _bisect(group, group.desk_tm, patient.id, _candidates(patient.hkid, 256))

    assert learnt != patient.hkid, "8 searches gave the desk an HKID it may not read"


def test_the_privacy_officer_cannot_bisect_another_clinics_patients_hkid(group: Group) -> None:
    patient = group.tw_patient
    learnt = _bisect(group, group.officer, patient.id, _candidates(patient.hkid, 256))
    assert learnt != patient.hkid


def test_one_conditional_create_tests_one_hkid_for_one_throttle_tick(group: Group) -> None:
    """Gate.refuse_unseen_matches counts one failed registration per refused conditional
    create (5 in 15 minutes), so that probing whether an HKID is known elsewhere in the
    group is as slow as fishing with registrations. An If-None-Exist whose identifier is
    an OR-list tests every number listed for that one tick: with 256 numbers a request,
    the 5 allowed refusals test 1,280 numbers, and bisection finds which is held."""
    listed = ",".join(
        f"{HKID_SYSTEM}|{number}" for number in _candidates(group.tw_patient.hkid, 256)
    )
    answer = group.web.post(
        "/fhir/Patient",
        content=(
            '{"resourceType":"Patient","name":[{"family":"Probe"}],'
            '"managingOrganization":{"reference":"Organization/clinic-tm"}}'
        ),
        headers={
            **group.desk_tm.headers,
            "content-type": "application/fhir+json",
            "if-none-exist": f"identifier={listed}",
        },
    )
    assert answer.status_code == 400, (
        f"{answer.status_code}: a conditional create tested 256 HKIDs for one throttle tick"
    )


def test_registration_on_proof_of_presence_takes_one_identifier_not_a_list(group: Group) -> None:
    """``$register`` passes the identifier the patient showed to the search parser
    (gate/registration._matching), which splits it on commas: a desk sends up to five
    numbers in the 64 characters allowed, with a birth date, and registers (opens to its
    clinic) whichever patient holds one of them, for a single counted failure."""
    guesses = [f"A{serial:06d}({check_digit('A', f'{serial:06d}')})" for serial in range(1, 5)]
    listed = ",".join([*guesses, group.tw_patient.hkid])
    assert len(listed) <= 64
    answer = group.web.post(
        "/fhir/Patient/$register",
        content=json.dumps(
            {
                "resourceType": "Parameters",
                "parameter": [
                    {
                        "name": "identifier",
                        "valueIdentifier": {"system": HKID_SYSTEM, "value": listed},
                    },
                    {"name": "birthDate", "valueDate": group.tw_patient.birth_date},
                ],
            }
        ),
        headers={**group.desk_tm.headers, "content-type": "application/fhir+json"},
    )
    assert answer.status_code in (400, 404, 422), (
        f"{answer.status_code}: registered a patient on a list of five guessed numbers"
    )


def test_the_front_desk_cannot_list_who_has_an_hkid_on_file(group: Group) -> None:
    """``identifier=<HKID system>|`` matches every patient with an HKID: a count of
    whom the desk may not know the number of, but would learn has one."""
    response = group.web.get(
        "/fhir/Patient",
        params={"_id": group.tm_patient.id, "identifier": f"{HKID_SYSTEM}|"},
        headers=group.desk_tm.headers,
    )
    assert response.status_code == 403, response.text
    assert "only by its number" in response.text
    # The number the patient shows still finds them.
    found = group.web.get(
        "/fhir/Patient",
        params={"identifier": f"{HKID_SYSTEM}|{group.tm_patient.hkid}"},
        headers=group.desk_tm.headers,
    )
    assert found.status_code == 200, found.text
    assert [e["resource"]["id"] for e in found.json()["entry"]] == [group.tm_patient.id]


@pytest.mark.parametrize(
    "shaping",
    [{"_summary": "count"}, {"_count": "0"}, {"_offset": "1"}],
    ids=["summary-count", "count-0", "past-the-match"],
)
def test_billing_does_not_test_hkids_for_membership_unrecorded(
    group: Group, shaping: dict[str, str]
) -> None:
    """Adversary round 42: billing (group-wide, may not read HKIDs) asked
    ``Patient?identifier=<an HKID>&_summary=count`` (or ``_count=0``, or an ``_offset``
    past the match) and learnt from ``total`` whether the number is a patient of the
    group, with no patient named in the ledger (the patient's access report never shows
    it) and nothing spent from the release budget: a leaked list of numbers checked for
    membership unseen. A search by a number the role may not read shows what it matched,
    or is refused."""
    from carevault.domain.roles import Role
    from carevault.ledger.events import Outcome, Tag
    from tests.support.staff import make_staff

    billing = make_staff(group.services, Role.BILLING, ["clinic-tm"])
    before = len(group.events())
    response = group.web.get(
        "/fhir/Patient",
        params={"identifier": f"{HKID_SYSTEM}|{group.tw_patient.hkid}", **shaping},
        headers=billing.headers,
    )
    assert response.status_code == 403, response.text
    assert "C668668" not in response.text
    refused = [e for e in group.events(Tag.FHIR_SEARCH)[-1:] if e.outcome is Outcome.DENIED]
    assert refused and len(group.events()) > before
    # The number still finds its patient, named in the ledger.
    found = group.web.get(
        "/fhir/Patient",
        params={"identifier": f"{HKID_SYSTEM}|{group.tw_patient.hkid}"},
        headers=billing.headers,
    )
    assert found.status_code == 200, found.text
    # Without a total (it would count what it does not show: rest/test_identifier_paging.py).
    assert "total" not in found.json()
    assert [e["resource"]["id"] for e in found.json()["entry"]] == [group.tw_patient.id]
    named = group.events(Tag.FHIR_SEARCH)[-1]
    assert named.outcome is Outcome.SUCCESS and named.patient_pseudonym is not None
