"""An attack scenario played on the run's timeline, as the person (or program) behind it.

The attacker signs in (a stolen or leaver's password works, a new account is created
first, an integration uses its client secret), then takes patients from the target
list at the scenario's pace during its hours, by id, by search, by ``$everything`` or by
paging. It stops for good when it can no longer sign in (the account was suspended or
the client revoked); a refused request (a release budget, PHI offline) only costs it
that request. Everything it is given goes into its ``GroundTruth``.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from datetime import date, time, timedelta
from typing import TYPE_CHECKING

from carevault.domain.roles import Role
from carevault.keys.cache import DataKeyCache
from carevault.keys.service import KeyService
from carevault.ledger.unwrap import LedgerUnwrapRecorder
from carevault.sim.attack.spec import USUAL, Scenario
from carevault.sim.attack.targets import pick_targets
from carevault.sim.attack.truth import GroundTruth
from carevault.sim.elements import at
from carevault.sim.facts import StaffMember
from carevault.sim.workload.desk import STAFF_SCOPE, Desk, Device, Watcher
from carevault.sim.workload.roster import (
    BOOKING_APP,
    BOOKING_SCOPE,
    CLINIC_APP,
    LAB_APP,
    LAB_SCOPE,
    device_of,
)
from carevault.sim.workload.timeline import Activity
from carevault.sim.workload.world import PatientCard, World

if TYPE_CHECKING:
    from carevault.sim.workload.run import Simulation

_CLIENT_SCOPES = {LAB_APP: LAB_SCOPE, BOOKING_APP: BOOKING_SCOPE}


def _stable(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


class Attacker:
    def __init__(
        self, scenario: Scenario, wall_start: float, watchers: Sequence[Watcher] = ()
    ) -> None:
        self.scenario = scenario
        #: Also told of each request (e.g. a test acting as a detector's response).
        self.watchers = list(watchers)
        self.name = scenario.name
        self.wall_start = wall_start
        self.member: StaffMember | None = None
        self.desk: Desk | None = None
        self.truth: GroundTruth | None = None
        self.targets: list[PatientCard] = []
        self.stopped = False
        self._taken = 0
        self._days: set[date] = set()

    # --- the run's hooks ------------------------------------------------------------------

    def absent(self, world: World) -> frozenset[str]:
        """A leaver's account is chosen before the run: its owner does no work in it."""
        if self.scenario.who.account == "terminated":
            self.member = self._pick_member(world, None)
            return frozenset({self.member.username})
        return frozenset()

    def _pick_member(self, world: World, vip_clinic: str | None) -> StaffMember:
        """The scenario's member of staff: the same for the same name; one who works at the
        VIP's clinic when the VIP is a target (the insider knows of the visit)."""
        who = self.scenario.who
        if who.username is not None:
            return world.group.member(who.username)
        candidates = sorted(
            (m for m in world.group.staff if m.role == who.role), key=lambda m: m.username
        )
        if vip_clinic is not None:
            candidates = [m for m in candidates if vip_clinic in m.clinic_ids] or candidates
        if not candidates:
            raise LookupError(f"{self.scenario.source}: [who] role: no staff of role {who.role}")
        return candidates[_stable(self.name) % len(candidates)]

    def schedule(self, run: Simulation, day: date) -> None:
        if self.truth is None:
            self.truth = GroundTruth(run.services, self.name, self.wall_start)
        if self.stopped or not self._active(run, day):
            return
        begin = at(day, time(self.scenario.when.from_hour, 0))
        begin += timedelta(minutes=_stable(f"{self.name}:{day}") % 20)
        run.timeline.start(begin, self._day(run, day))

    def _active(self, run: Simulation, day: date) -> bool:
        when = self.scenario.when
        number = (day - run.start).days + 1
        return number in when.days or day in when.dates

    # --- a day of it -------------------------------------------------------------------------

    def _day(self, run: Simulation, day: date) -> Activity:
        assert self.truth is not None  # noqa: S101 - set by schedule
        scenario, what = self.scenario, self.scenario.what
        if scenario.kind == "key-unwrap":
            yield from self._unwrap(run, day)
            return
        if self.desk is None:
            self.desk = self._open_desk(run)
            self.truth.watch(self.desk)
            self.desk.watchers.extend(self.watchers)
            self.targets = pick_targets(scenario, run, self.member)
        if not self.desk.sign_in():
            self.stopped = True
            return
        end = at(day, time(0, 0)) + timedelta(hours=scenario.when.to_hour)
        per_day = self._daily_quota(run)
        interval = 3600.0 / what.per_hour
        done_today = 0
        rng = random.Random(f"{self.name}:{day}")
        while done_today < per_day and run.clock.now < end and not self.stopped:
            if what.total is not None and self._taken >= what.total:
                return
            if what.method == "paging":
                gained = self._page()
            else:
                if self._taken >= len(self.targets):
                    return
                card = self.targets[self._taken]
                gained = self._take(card)
            if gained < 0:
                # Refused at sign-in: the account or client is gone.
                self.stopped = True
                return
            self._taken += 1
            done_today += max(gained, 1)
            yield interval * max(gained, 1) * rng.uniform(0.7, 1.3)

    def _daily_quota(self, run: Simulation) -> int:
        what, how = self.scenario.what, self.scenario.how
        if how.usual_volume_fraction is None or self.member is None:
            return what.per_day
        usual = run.room.usual_patients(self.member.username)
        return max(1, min(what.per_day, round(usual * how.usual_volume_fraction)))

    def _take(self, card: PatientCard) -> int:
        """Read one target patient; how many patients the request gave (−1: signed out)."""
        desk, what = self.desk, self.scenario.what
        assert desk is not None  # noqa: S101
        if what.method == "everything":
            reply = desk.everything(card.patient_id)
        elif what.method == "search":
            reply = desk.search(
                "Patient", [("family", card.family), ("_count", str(what.page_size))]
            )
        else:
            reply = desk.read("Patient", card.patient_id)
            for kind in what.resources:
                if reply.status == 401:
                    break
                desk.search(kind, [("patient", card.patient_id)])
        if reply.status == 401 and desk.session_id is not None and not desk.sign_in():
            return -1
        return len({r.get("id") for r in reply.resources() if r.get("resourceType") == "Patient"})

    def _page(self) -> int:
        desk, what = self.desk, self.scenario.what
        assert desk is not None  # noqa: S101
        reply = desk.search(
            "Patient",
            [("_count", str(what.page_size)), ("_offset", str(self._taken * what.page_size))],
        )
        if reply.status == 401 and not desk.sign_in():
            return -1
        if reply.ok and not reply.resources():
            self.stopped = True  # past the last page: the whole list is taken
        return len(reply.resources())

    # --- who the attacker is ----------------------------------------------------------------

    def _device(self, run: Simulation, usual: Device | None) -> Device:
        where = self.scenario.where
        address = where.source_address
        agent = where.user_agent
        if usual is None:
            usual = Device("203.0.113.10", "python-requests/2.32.3")
        return Device(
            usual.source_address if address == USUAL else address,
            usual.user_agent if agent == USUAL else agent,
        )

    def _open_desk(self, run: Simulation) -> Desk:
        who = self.scenario.who
        services = run.services
        if who.account == "integration":
            client = str(who.client)
            usual = None
            for username, app in (("svc.lab-results", LAB_APP), ("svc.booking-portal",
                                                                  BOOKING_APP)):  # fmt: skip
                if app == client:
                    usual = device_of(run.world.group, run.world.group.member(username))
            scope = _CLIENT_SCOPES.get(client, "system/Patient.rs")
            return Desk(services, self._device(run, usual), client_id=client, scope=scope)
        if who.account == "new":
            self.member = self._new_account(run)
        elif who.account in ("stolen", "existing"):
            vip = run.lookalikes.vip
            wants_vip = "vip" in self.scenario.what.patients and vip is not None
            self.member = self._pick_member(
                run.world, vip.home_clinic_id if wants_vip and vip else None
            )
        assert self.member is not None  # noqa: S101 - chosen in absent() or just created
        usual = device_of(run.world.group, self.member)
        return Desk(services, self._device(run, usual), client_id=CLINIC_APP,
                    scope=STAFF_SCOPE, username=self.member.username)  # fmt: skip

    def _new_account(self, run: Simulation) -> StaffMember:
        """An account someone with admin rights created for the occasion."""
        role = str(self.scenario.who.role)
        clinic = run.world.group.clinics[_stable(self.name) % len(run.world.group.clinics)]
        username = f"temp.{self.name}"[:60]
        if run.services.accounts.find(username) is None:
            password = hashlib.sha256(f"{self.name}:{run.seed}".encode()).hexdigest()
            run.services.admin.add_staff(
                "cli:itadmin", username, f"Temporary {role}", Role(role), [clinic.id], password
            )
        return StaffMember(username, f"Temporary {role}", role, (clinic.id,))

    # --- outside the gate ----------------------------------------------------------------------

    def _unwrap(self, run: Simulation, day: date) -> Activity:
        """Data keys unwrapped through the key service directly, as a process on the host
        with the key service's credentials would: no gate, no audit entry; only the unwrap
        log sees it. Its own key service, so no key comes from the server's cache."""
        assert self.truth is not None  # noqa: S101
        services, what = run.services, self.scenario.what
        if services.keys is None:
            self.stopped = True
            return
        principal = self.scenario.who.principal or "system:maintenance"
        recorder = LedgerUnwrapRecorder(services.unwrap_ledger.writer)
        own = KeyService(services.key_engine, services.keys.provider, DataKeyCache(0, 0),
                         recorder, run.clock)  # fmt: skip
        own.locked = services.keys.locked
        if not self.targets:
            self.targets = pick_targets(self.scenario, run, None)
        end = at(day, time(0, 0)) + timedelta(hours=self.scenario.when.to_hour)
        done = 0
        pseudonyms = services.vault.patient_pseudonyms([c.patient_id for c in self.targets])
        while done < what.per_day and run.clock.now < end and self._taken < len(self.targets):
            card = self.targets[self._taken]
            self._taken += 1
            pseudonym = pseudonyms.get(card.patient_id)
            if pseudonym is None:
                continue
            before = services.unwrap_ledger.store.head()[0]
            try:
                own.data_keys([pseudonym], principal=principal, purpose="maintenance")
            except Exception:  # noqa: BLE001 - key lockdown or a shredded key: nothing taken
                self.stopped = True
                return
            self.truth.unwrapped(principal, card.patient_id, pseudonym, before)
            done += 1
            yield 3600.0 / what.per_hour
