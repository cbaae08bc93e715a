"""The day's signed-in staff: one session per person per day, opened at their first task."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date

from carevault.bootstrap import Services
from carevault.sim.facts import StaffMember
from carevault.sim.workload.desk import STAFF_SCOPE, Desk, Device, Reply
from carevault.sim.workload.roster import (
    BOOKING_ACCOUNT,
    BOOKING_APP,
    BOOKING_SCOPE,
    CLINIC_APP,
    LAB_ACCOUNT,
    LAB_APP,
    LAB_SCOPE,
    Roster,
    device_of,
)
from carevault.sim.workload.world import World


@dataclass
class Staffroom:
    services: Services
    world: World
    rng: random.Random
    duty: Roster
    desks: dict[str, Desk] = field(default_factory=dict)
    #: Requests made and refused today, for the run's report.
    requests: int = 0
    refused: int = 0

    #: Distinct patients each person opened, per day: (username, day) → patient ids.
    opened: dict[tuple[str, date], set[str]] = field(default_factory=dict)

    def new_day(self, duty: Roster) -> None:
        self.duty = duty
        self.desks.clear()

    def usual_patients(self, username: str) -> float:
        """How many distinct patients the person opens on a day they work (0 if never)."""
        days = [len(ids) for (name, _), ids in self.opened.items() if name == username]
        return sum(days) / len(days) if days else 0.0

    @property
    def day(self) -> date:
        return self.duty.day

    def device(self, member: StaffMember) -> Device:
        return device_of(self.world.group, member)

    def desk(self, member: StaffMember) -> Desk | None:
        """The member's desk, signed in today (None if the sign-in is refused)."""
        found = self.desks.get(member.username)
        if found is not None:
            return found
        device = self.device(member)
        if member.username == LAB_ACCOUNT:
            desk = Desk(self.services, device, client_id=LAB_APP, scope=LAB_SCOPE)
        elif member.username == BOOKING_ACCOUNT:
            desk = Desk(self.services, device, client_id=BOOKING_APP, scope=BOOKING_SCOPE)
        else:
            desk = Desk(self.services, device, client_id=CLINIC_APP, scope=STAFF_SCOPE,
                        username=member.username)  # fmt: skip
        desk.watchers.append(self._count)
        if not desk.sign_in():
            return None
        self.desks[member.username] = desk
        return desk

    def _count(self, desk: Desk, request: str, reply: Reply | None) -> None:
        if reply is None:
            self.requests += 1
            return
        if reply.status in (401, 403, 429, 503):
            self.refused += 1
        elif desk.account is not None and (patient := _patient_in(request)) is not None:
            self.opened.setdefault((desk.account.username, self.day), set()).add(patient)

    def pick(self, clinic_id: str, role: str) -> StaffMember | None:
        members = self.duty.of(clinic_id, role)
        return self.rng.choice(members) if members else None


def _patient_in(request: str) -> str | None:
    """The patient a request is about, from its path or its patient parameter."""
    for marker in ("Patient/", "patient="):
        if marker in request:
            rest = request.split(marker, 1)[1]
            return rest.split("/", 1)[0].split("&", 1)[0] or None
    return None
