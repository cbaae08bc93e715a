"""What HR tells the privacy office of each member of staff, for the snooping detectors:
their surname, and for staff registered as patients their home address and HKID
number (``carevault alerts identify``). Kept by CareVault only as keyed blind tokens.
And what the privacy office marks itself: the group's public figure as VIP
(``carevault alerts flag ID --kind vip``), as it would anyone whose record draws
curiosity."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from carevault.sim.facts import StaffMember
from carevault.sim.workload.world import World

if TYPE_CHECKING:
    from carevault.sim.workload.run import Simulation

BY = "cli:hr"
BY_OFFICE = "cli:privacy-office"


def surname_of(member: StaffMember, world: World) -> str:
    """The member's surname: the word of their name that most patients carry as theirs."""
    families = Counter(card.family.casefold() for card in world.patients)
    words = member.display_name.replace("Dr ", "").split()
    return max(words, key=lambda word: families.get(word.casefold(), 0))


def record_staff(run: Simulation) -> None:
    detection = run.services.detection
    if detection is None:
        return
    registered = {username: resource for username, resource, _ in run.lookalikes.coworkers}
    for member in run.world.group.staff:
        if member.role == "integration":
            continue
        own = registered.get(member.username)
        lines: list[str] = []
        hkid: str | None = None
        if own is not None:
            lines = [str(line) for line in own["address"][0]["line"]]
            hkid = str(own["identifier"][0]["value"])
        detection.kinship.identify(
            f"staff:{member.username}", BY,
            surname=surname_of(member, run.world), address_lines=lines, hkid=hkid,
        )  # fmt: skip


def flag_public_figure(run: Simulation) -> None:
    """Mark the run's public figure VIP, before the month starts: the ``vip`` detector
    then judges anyone who opens the record with no care relationship to explain it."""
    detection, vip = run.services.detection, run.lookalikes.vip
    if detection is None or vip is None:
        return
    pseudonym = detection.desk.pseudonym_of(vip.patient_id)
    if pseudonym is not None and pseudonym not in detection.flags.current().vips:
        detection.flags.set("vip", pseudonym, BY_OFFICE)
