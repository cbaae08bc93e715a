"""Whose records an attacker goes for, from the scenario's ``[what] patients`` list."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from carevault.sim.attack.spec import Scenario
from carevault.sim.facts import StaffMember
from carevault.sim.workload.hr import surname_of
from carevault.sim.workload.world import PatientCard

if TYPE_CHECKING:
    from carevault.sim.workload.run import Simulation


def _clinic_id(scenario: Scenario, run: Simulation, member: StaffMember | None) -> str:
    wanted = scenario.what.clinic
    if wanted == "own":
        if member is None:
            raise LookupError(f"{scenario.source}: [what] clinic: 'own' needs a staff account")
        return member.clinic_ids[0]
    for clinic in run.world.group.clinics:
        if wanted in (clinic.key, clinic.id):
            return clinic.id
    known = ", ".join(c.key for c in run.world.group.clinics)
    raise LookupError(f"{scenario.source}: [what] clinic: no clinic {wanted!r} (known: {known})")


def _anchor(scenario: Scenario, run: Simulation, member: StaffMember | None) -> PatientCard | None:
    if scenario.what.anchor == "vip":
        return run.lookalikes.vip
    if member is None:
        return None
    for username, _, card in run.lookalikes.coworkers:
        if username == member.username:
            return run.world.by_hkid(card.hkid)
    return None


def pick_targets(
    scenario: Scenario, run: Simulation, member: StaffMember | None
) -> list[PatientCard]:
    """The patients in the order the attacker takes them, each once."""
    rng = random.Random(f"targets:{scenario.name}:{run.seed}")
    world = run.world
    chosen: dict[str, PatientCard] = {}
    for pattern in scenario.what.patients:
        if pattern == "random" or pattern == "everyone":
            pool = list(world.patients)
            rng.shuffle(pool)
        elif pattern == "same-surname":
            if member is None:
                raise LookupError(f"{scenario.source}: [what] patients: same-surname needs staff")
            surname = surname_of(member, world).casefold()
            pool = [c for c in world.patients if c.family.casefold() == surname]
        elif pattern == "same-address":
            anchor = _anchor(scenario, run, member)
            pool = [] if anchor is None else [
                c for c in world.patients if c.building == anchor.building and c is not anchor
            ]  # fmt: skip
        elif pattern == "vip":
            pool = [run.lookalikes.vip] if run.lookalikes.vip is not None else []
        elif pattern == "coworkers":
            pool = [
                found
                for _, _, card in run.lookalikes.coworkers
                if (found := world.by_hkid(card.hkid)) is not None
            ]
        else:  # one-clinic
            clinic_id = _clinic_id(scenario, run, member)
            pool = [c for c in world.patients if c.home_clinic_id == clinic_id]
            rng.shuffle(pool)
        for card in pool:
            if card.patient_id:
                chosen.setdefault(card.patient_id, card)
    return list(chosen.values())
