"""Who works on a day, where, and from which workstation.

The rules follow the group's published timetable (``carevault.sim.schedule``): physicians
work Monday to Saturday but for one weekday off, floaters alternate between their
clinics day by day, and on Sundays and public holidays one general practitioner per
clinic keeps a morning rota. Everyone else works weekdays; a few cover Saturday
mornings and the rota. Each person always uses the same workstation (address and user
agent), so a detector can learn it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date

from carevault.sim.facts import StaffMember
from carevault.sim.group import ClinicGroup
from carevault.sim.workload.calendar import DayKind, day_kind
from carevault.sim.workload.desk import Device

#: The clinic software every member of staff signs in with.
CLINIC_APP = "clinic-desk"
LAB_APP = "lab-interface"
BOOKING_APP = "booking-portal"
LAB_ACCOUNT = "svc.lab-results"
BOOKING_ACCOUNT = "svc.booking-portal"
LAB_SCOPE = "system/Patient.rs system/Observation.cru system/DiagnosticReport.cru"
BOOKING_SCOPE = "system/Patient.rs system/Appointment.crus system/Slot.rus system/Schedule.rs"


def _stable(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


def day_off(member: StaffMember) -> int:
    """The weekday (0 = Monday) a physician does not work."""
    return _stable(f"day-off:{member.username}") % 5


def works_at(member: StaffMember, day: date) -> str | None:
    """The clinic a clinician works at on ``day`` (floaters alternate), if any."""
    if member.role == "physician" and day.weekday() == day_off(member):
        return None
    return member.clinic_ids[day.toordinal() % len(member.clinic_ids)]


@dataclass(frozen=True)
class Roster:
    """Who is on duty on one day, by clinic and role."""

    day: date
    kind: DayKind
    on_duty: dict[tuple[str, str], list[StaffMember]]

    def of(self, clinic_id: str, role: str) -> list[StaffMember]:
        return self.on_duty.get((clinic_id, role), [])

    def physicians(self, clinic_id: str, speciality: str) -> list[StaffMember]:
        return [m for m in self.of(clinic_id, "physician") if m.speciality == speciality]


def _rota_gp(group: ClinicGroup, clinic_id: str, day: date) -> StaffMember | None:
    gps = [
        m
        for m in group.members(clinic_id, "physician")
        if m.speciality == "general_practice" and len(m.clinic_ids) == 1
    ]
    return gps[day.toordinal() % len(gps)] if gps else None


def roster(group: ClinicGroup, day: date, absent: frozenset[str] = frozenset()) -> Roster:
    """Who works on ``day``; ``absent`` usernames (on leave, or gone) do not."""
    kind = day_kind(day)
    on_duty: dict[tuple[str, str], list[StaffMember]] = {}

    def add(clinic_id: str, member: StaffMember) -> None:
        if member.username not in absent:
            on_duty.setdefault((clinic_id, member.role), []).append(member)

    for clinic in group.clinics:
        if kind is DayKind.ROTA:
            gp = _rota_gp(group, clinic.id, day)
            if gp is not None:
                add(clinic.id, gp)
            for role in ("nurse", "front_desk", "pharmacist"):
                rota = group.members(clinic.id, role)
                if rota:
                    add(clinic.id, rota[day.toordinal() % len(rota)])
            continue
        for member in group.members(clinic.id, "physician"):
            if works_at(member, day) == clinic.id:
                add(clinic.id, member)
        for role in ("nurse", "front_desk", "pharmacist", "clinic_manager"):
            members: list[StaffMember] = [
                m for m in group.members(clinic.id, role) if works_at(m, day) == clinic.id
            ]
            if kind is DayKind.SATURDAY:
                members = [m for m in members if _stable(f"sat:{m.username}:{day}") % 2 == 0]
                if role == "clinic_manager":
                    members = []
            for member in members:
                add(clinic.id, member)
    if kind is DayKind.WEEKDAY:
        for member in group.staff:
            if member.role == "billing":
                add("", member)
    return Roster(day, kind, on_duty)


def device_of(group: ClinicGroup, member: StaffMember) -> Device:
    """The person's usual workstation (integrations: their server)."""
    if member.username == LAB_ACCOUNT:
        return Device("10.50.0.10", "LabBridge/5.1 (HL7v2-to-FHIR; lab.kapoktree.example)")
    if member.username == BOOKING_ACCOUNT:
        return Device("10.50.0.20", "KapokBooking/2.3 (+https://booking.kapoktree.example)")
    number = _stable(f"ws:{member.username}") % 200 + 20
    if member.role in ("billing", "privacy_officer"):
        return Device(
            f"10.40.0.{number}",
            f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) CareVaultDesk/4.2 ws-head-{number}",
        )
    index = next(i for i, c in enumerate(group.clinics) if c.id == member.clinic_ids[0])
    key = group.clinics[index].key
    return Device(
        f"10.{20 + index}.1.{number}",
        f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) CareVaultDesk/4.2 ws-{key}-{number}",
    )
