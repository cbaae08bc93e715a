"""The synthetic clinic group: clinics, staff, practitioners and the week's timetable."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta

import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhirclient.models.fhirelementfactory import FHIRElementFactory

from carevault.domain.roles import Role
from carevault.sim import ClinicGroup, build_group
from carevault.sim.codes import SPECIALITIES
from tests.unit.sim.conftest import GROUP_SEED, TODAY, references

ALL_SPECIALITIES = set(SPECIALITIES)


def test_same_seed_gives_the_same_group_and_another_seed_a_different_one(
    group: ClinicGroup,
) -> None:
    again = build_group(GROUP_SEED, TODAY)
    assert json.dumps(list(again.resources())) == json.dumps(list(group.resources()))
    assert again.staff == group.staff
    other = build_group(GROUP_SEED + 1, TODAY)
    assert other.group["id"] != group.group["id"]
    assert [m.username for m in other.staff] != [m.username for m in group.staff]


def test_eight_clinics_in_real_districts_are_part_of_the_group(group: ClinicGroup) -> None:
    assert len(group.clinics) == 8
    assert {c.region for c in group.clinics} == {"Hong Kong", "Kowloon", "New Territories"}
    for clinic in group.clinics:
        assert clinic.organization["partOf"] == {"reference": f"Organization/{group.group['id']}"}
        assert clinic.location["managingOrganization"] == {"reference": f"Organization/{clinic.id}"}
        assert clinic.organization["address"][0]["district"] == clinic.district
        assert clinic.organization["telecom"][0]["value"].startswith("+852 2")
        assert clinic.name_zh and clinic.offers("general_practice")


def test_every_speciality_is_offered_and_mental_health_at_two_clinics_at_most(
    group: ClinicGroup,
) -> None:
    offered = Counter(s for c in group.clinics for s in c.specialities)
    assert set(offered) == ALL_SPECIALITIES
    assert offered["mental_health"] <= 2


def test_staff_mix_is_realistic(group: ClinicGroup) -> None:
    assert 180 <= len(group.staff) <= 220
    assert {m.role for m in group.staff} == {role.value for role in Role}
    for clinic in group.clinics:
        home = Counter(m.role for m in group.staff if m.clinic_ids[0] == clinic.id)
        assert 6 <= home["physician"] <= 10
        assert 7 <= home["nurse"] <= 10
        assert 1 <= home["pharmacist"] <= 2
        assert 3 <= home["front_desk"] <= 4
        assert home["clinic_manager"] == 1
        for speciality in clinic.specialities:
            assert group.physicians(clinic.id, speciality), (clinic.key, speciality)
    roles = Counter(m.role for m in group.staff)
    assert 3 <= roles["billing"] <= 4 and roles["privacy_officer"] == 2


def test_usernames_are_unique_lower_case_and_service_accounts_are_not_people(
    group: ClinicGroup,
) -> None:
    usernames = [m.username for m in group.staff]
    assert len(set(usernames)) == len(usernames)
    assert all(u == u.lower() and " " not in u for u in usernames)
    assert all(u.startswith("dr.") for u in usernames if group.member(u).role == "physician")
    integration = [m for m in group.staff if m.role == "integration"]
    assert integration and all(m.practitioner_id is None for m in integration)
    assert all(m.username.startswith("svc.") for m in integration)
    with pytest.raises(KeyError):
        group.member("nobody")


def test_reach_of_each_role(group: ClinicGroup) -> None:
    everywhere = {c.id for c in group.clinics}
    for member in group.staff:
        if member.role in ("billing", "privacy_officer", "integration"):
            assert set(member.clinic_ids) == everywhere
        else:
            assert 1 <= len(member.clinic_ids) <= 3
        clinician = member.role in ("physician", "nurse", "pharmacist")
        assert (member.practitioner_id is not None) == clinician
        assert (member.speciality is not None) == (member.role in ("physician", "nurse"))
        if member.speciality is not None:
            assert all(group.clinic(c).offers(member.speciality) for c in member.clinic_ids)
    floaters = [
        m for m in group.staff if m.role in ("physician", "nurse") and len(m.clinic_ids) > 1
    ]
    assert floaters, "a few clinicians cover more than one clinic"


def test_practitioners_and_roles_match_the_staff(group: ClinicGroup) -> None:
    practitioners = {p["id"]: p for p in group.practitioners}
    clinicians = [m for m in group.staff if m.practitioner_id]
    assert set(practitioners) == {m.practitioner_id for m in clinicians}
    for member in clinicians:
        resource = practitioners[member.practitioner_id]
        assert {"system": "http://carevault.hk/sid/staff-username", "value": member.username,
                "use": "usual"} in resource["identifier"]  # fmt: skip
        reference = f"Practitioner/{member.practitioner_id}"
        roles = [r for r in group.practitioner_roles if r["practitioner"]["reference"] == reference]
        assert {r["organization"]["reference"] for r in roles} == {
            f"Organization/{c}" for c in member.clinic_ids
        }
    registrations = [p["identifier"][0]["value"] for p in group.practitioners]
    assert len(set(registrations)) == len(registrations)
    doctors = [p for p in group.practitioners if p["identifier"][0]["value"].startswith("M")]
    assert all(p["name"][0]["prefix"] == ["Dr"] for p in doctors)


def test_physicians_have_a_schedule_per_clinic_and_slots_for_the_coming_week(
    group: ClinicGroup,
) -> None:
    physicians = [m for m in group.staff if m.role == "physician"]
    assert len(group.schedules) == sum(len(m.clinic_ids) for m in physicians)
    schedules = {s["id"]: s for s in group.schedules}
    horizon = {TODAY + timedelta(days=n) for n in range(7)}
    for slot, bookable in zip(group.slots, group.bookable_slots, strict=True):
        assert slot["id"] == bookable.slot_id
        assert bookable.start.date() in horizon and bookable.start < bookable.end
        assert slot["status"] == ("busy" if bookable.busy else "free")
        actors = [a["reference"] for a in schedules[slot["schedule"]["reference"][9:]]["actor"]]
        assert actors == [f"Practitioner/{bookable.practitioner_id}",
                          f"Location/{bookable.location_id}"]  # fmt: skip
    days = {b.start.date() for b in group.bookable_slots}
    assert TODAY in days
    statuses = Counter(s["status"] for s in group.slots)
    assert statuses["busy"] and statuses["free"]
    sunday = next(d for d in horizon if d.weekday() == 6)
    sunday_slots = [b for b in group.bookable_slots if b.start.date() == sunday]
    assert {b.speciality for b in sunday_slots} == {"general_practice"}
    assert all(b.start.hour < 13 for b in sunday_slots)


def test_resources_come_in_dependency_order_and_every_reference_resolves(
    group: ClinicGroup,
) -> None:
    seen: set[str] = set()
    for resource in group.resources():
        for reference in references(resource):
            assert reference in seen, (resource["resourceType"], reference)
        key = f"{resource['resourceType']}/{resource['id']}"
        assert key not in seen
        seen.add(key)
        assert "meta" not in resource


def test_every_group_resource_validates_with_both_fhir_libraries(group: ClinicGroup) -> None:
    for resource in group.resources():
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
        FHIRElementFactory.instantiate(resource["resourceType"], resource)


def test_clinic_for_prefers_home_and_else_the_nearest_clinic(group: ClinicGroup) -> None:
    central = next(c for c in group.clinics if c.key == "central")
    assert group.clinic_for(central.id, "general_practice") is central
    eye = group.clinic_for(central.id, "ophthalmology")
    assert eye.key == "causeway-bay"  # across the harbour is further than next door
    with pytest.raises(LookupError):
        group.clinic_for(central.id, "cardiology")
    assert group.members(central.id, "privacy_officer")
    assert group.clinic(central.id) is central


def test_build_group_defaults_to_the_calendar_date() -> None:
    assert build_group(1).today >= TODAY
