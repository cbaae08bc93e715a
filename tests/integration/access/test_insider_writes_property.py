"""A property, checked by Hypothesis on random sequences: whatever staff of one clinic
write (creates, updates, deletes, transactions, bookings, care teams, referrals,
registrations without the patient present) about another clinic's patient, the data
categories they can read of that patient never grow. Every attempt is in the ledger.

Growth is allowed only through break-the-glass, a presence-proofed registration or a
referral by a clinician who cares for the patient; no rule here makes any of them, so
any growth is a hole.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from carevault.domain.categories import DataCategory
from carevault.domain.roles import Role
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate import AccessDenied, Caller
from tests.integration.access.group import (
    HKID_SYSTEM,
    TM,
    TODAY,
    TW,
    Group,
    care_team,
    encounter,
    observation,
    referral,
)
from tests.support.staff import Staff, make_staff

CLINICS = st.sampled_from([TM, TW])
PRACTITIONERS = st.sampled_from(["dr-tm", "dr-tw", "dr-other"])
DAYS = st.integers(min_value=-400, max_value=400)


def _reach(group: Group, who: Staff) -> dict[str, frozenset[DataCategory]]:
    """What ``who`` may read now of the other clinic's patient: per record, the categories
    the gate's policy grants (empty where it refuses)."""
    gate = group.services.gate
    assert gate.access is not None
    actor = gate.access.authenticate(who.token).actor
    caller = Caller(principal=actor.principal, actor=actor)
    patient = group.tw_patient
    granted: dict[str, frozenset[DataCategory]] = {}
    for type_name, resource_id in (
        ("Patient", patient.id),
        ("Observation", patient.observation),
    ):
        head = gate.vault.locate(type_name, resource_id).head
        try:
            decision = gate._decide_read(caller, RESOURCE_TYPES[type_name], head)
        except AccessDenied:
            granted[type_name] = frozenset()
        else:
            granted[type_name] = decision.granted
    return granted


class InsiderWrites(RuleBasedStateMachine):
    """Tuen Mun's front desk, physician and nurse writing about a Tsuen Wan patient."""

    group: Group
    insiders: list[Staff]
    baseline: dict[str, dict[str, frozenset[DataCategory]]]

    def __init__(self) -> None:
        super().__init__()
        self.entries = self.group.services.audit_ledger.store.head()[0]
        self.created: list[str] = []

    def _send(self, who: Staff, method: str, path: str, body: Any = None) -> Any:
        response = self.group.call(who, method, path, body)
        assert response.status_code < 500, response.text
        size = self.group.services.audit_ledger.store.head()[0]
        assert size > self.entries, f"{method} {path} left no ledger entry"
        self.entries = size
        if response.status_code == 201 and method == "POST" and path != "/fhir":
            self.created.append(f"{path.removeprefix('/fhir/')}/{response.json()['id']}")
        return response

    @rule(who=st.integers(0, 2), clinic=CLINICS, practitioner=PRACTITIONERS, days=DAYS)
    def record_a_visit(self, who: int, clinic: str, practitioner: str, days: int) -> None:
        visit = encounter(self.group.tw_patient.id, clinic, practitioner, TODAY + timedelta(days))
        self._send(self.insiders[who], "POST", "/fhir/Encounter", visit)

    @rule(who=st.integers(0, 2), clinic=CLINICS, practitioner=PRACTITIONERS, days=DAYS)
    def book_an_appointment(self, who: int, clinic: str, practitioner: str, days: int) -> None:
        day = (TODAY + timedelta(days)).isoformat()
        booking = {
            "resourceType": "Appointment",
            "status": "booked",
            "start": f"{day}T10:00:00+08:00",
            "end": f"{day}T10:15:00+08:00",
            "participant": [
                {
                    "actor": {"reference": f"Patient/{self.group.tw_patient.id}"},
                    "status": "accepted",
                },
                {"actor": {"reference": f"Organization/{clinic}"}, "status": "accepted"},
                {"actor": {"reference": f"Practitioner/{practitioner}"}, "status": "accepted"},
            ],
        }
        self._send(self.insiders[who], "POST", "/fhir/Appointment", booking)

    @rule(who=st.integers(0, 2), member=PRACTITIONERS, clinic=st.none() | CLINICS)
    def form_a_care_team(self, who: int, member: str, clinic: str | None) -> None:
        team = care_team(self.group.tw_patient.id, member, clinic)
        self._send(self.insiders[who], "POST", "/fhir/CareTeam", team)

    @rule(
        who=st.integers(0, 2),
        performer=st.sampled_from(["Practitioner/dr-tm", f"Organization/{TM}"]),
    )
    def refer(self, who: int, performer: str) -> None:
        self._send(
            self.insiders[who],
            "POST",
            "/fhir/ServiceRequest",
            referral(self.group.tw_patient.id, performer),
        )

    @rule(who=st.integers(0, 2), clinic=st.none() | CLINICS)
    def update_the_patient(self, who: int, clinic: str | None) -> None:
        patient = self.group.tw_patient.id
        body: dict[str, Any] = {"resourceType": "Patient", "id": patient, "name": [{"family": "X"}]}
        if clinic:
            body["managingOrganization"] = {"reference": f"Organization/{clinic}"}
        self._send(self.insiders[who], "PUT", f"/fhir/Patient/{patient}", body)

    @rule(who=st.integers(0, 2), to_own=st.booleans())
    def update_the_observation(self, who: int, to_own: bool) -> None:
        target = self.group.tm_patient.id if to_own else self.group.tw_patient.id
        observation_id = self.group.tw_patient.observation
        body = {**observation(target, "changed"), "id": observation_id}
        self._send(self.insiders[who], "PUT", f"/fhir/Observation/{observation_id}", body)

    @rule(who=st.integers(0, 2), data=st.data())
    def delete_something(self, who: int, data: st.DataObject) -> None:
        targets = [f"Observation/{self.group.tw_patient.observation}", *self.created]
        target = data.draw(st.sampled_from(targets))
        self._send(self.insiders[who], "DELETE", f"/fhir/{target}")

    @rule(who=st.integers(0, 2), clinic=CLINICS, practitioner=PRACTITIONERS, read=st.booleans())
    def send_a_transaction(self, who: int, clinic: str, practitioner: str, read: bool) -> None:
        patient = self.group.tw_patient.id
        entries: list[dict[str, Any]] = [
            {
                "resource": encounter(patient, clinic, practitioner),
                "request": {"method": "POST", "url": "Encounter"},
            },
            {
                "resource": care_team(patient, practitioner, clinic),
                "request": {"method": "POST", "url": "CareTeam"},
            },
        ]
        if read:
            entries.append({"request": {"method": "GET", "url": f"Observation?patient={patient}"}})
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        self._send(self.insiders[who], "POST", "/fhir", bundle)

    @rule(who=st.integers(0, 2), day=st.integers(1, 28))
    def register_without_the_patient(self, who: int, day: int) -> None:
        guess = {
            "resourceType": "Parameters",
            "parameter": [
                {
                    "name": "identifier",
                    "valueIdentifier": {"system": HKID_SYSTEM, "value": "C668668(9)"},
                },
                {"name": "birthDate", "valueDate": f"1982-10-{day:02d}"},
            ],
        }
        self._send(self.insiders[who], "POST", "/fhir/Patient/$register", guess)

    @invariant()
    def nothing_more_is_readable(self) -> None:
        for who in self.insiders:
            reach = _reach(self.group, who)
            before = self.baseline[who.account.username]
            for record, categories in reach.items():
                # The group carries over from one example to the next (building it for each
                # would cost a minute), so a failure can show at an example's start: the
                # ledger's last entries say what was written.
                assert categories <= before[record], (
                    who.account.username,
                    record,
                    sorted(categories - before[record]),
                    [
                        (e.tag.value, e.resource_type, e.outcome.value)
                        for e in self.group.events()[-6:]
                    ],
                )


@pytest.mark.slow
def test_what_an_insider_writes_never_widens_what_they_can_read(group: Group) -> None:
    nurse = make_staff(group.services, Role.NURSE, [TM], "dr-other")
    insiders = [group.desk_tm, group.doctor_tm, nurse]
    InsiderWrites.group = group
    InsiderWrites.insiders = insiders
    InsiderWrites.baseline = {who.account.username: _reach(group, who) for who in insiders}
    assert all(
        not categories
        for reach in InsiderWrites.baseline.values()
        for record, categories in reach.items()
        if record == "Observation"
    )
    run_state_machine_as_test(
        InsiderWrites,
        settings=settings(
            max_examples=12,
            stateful_step_count=8,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
