"""Ground truth: every record an attacker was given, taken from what the gate returned.

For each request the attacker makes, the recorder notes the audit ledger's size before
and after, reads the entries appended in between that belong to the attacker's session,
and takes the records from the reply itself: the resources in the body (references),
their patients, and the data categories present in what was shown (after the gate's
subsetting). Nothing is inferred from what was asked for. A key unwrap that bypasses
the gate is recorded from the unwrap ledger the same way. The incident-scope work
compares its confirmed tier with this file, so it is exact by construction; the tests
re-read the ledger at the recorded positions to check it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from carevault.bootstrap import Services
from carevault.clock import fhir_instant, to_micros
from carevault.db import read_transaction
from carevault.fhir.categories import element_categories
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.ledger.events import AuditEvent
from carevault.sim.workload.desk import Desk, Reply
from carevault.vault.tables import resource_head


@dataclass
class Given:
    """What one patient's records the attacker received."""

    patient_id: str
    pseudonym: str
    references: set[str] = field(default_factory=set)
    categories: set[str] = field(default_factory=set)
    ledger_categories: set[str] = field(default_factory=set)
    positions: list[int] = field(default_factory=list)
    first_at_us: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "patient_id": self.patient_id,
            "pseudonym": self.pseudonym,
            "references": sorted(self.references),
            "categories": sorted(self.categories),
            "ledger_categories": sorted(self.ledger_categories),
            "ledger_positions": sorted(self.positions),
            "first_given_at": fhir_instant_us(self.first_at_us),
        }


def fhir_instant_us(micros: int) -> str:
    from carevault.clock import from_micros

    return fhir_instant(from_micros(micros))


@dataclass
class Access:
    at_us: int
    wall_seconds: float
    request: str
    status: int
    positions: list[int]
    given: list[str]

    def as_json(self) -> dict[str, Any]:
        return {
            "at": fhir_instant_us(self.at_us),
            "wall_seconds": round(self.wall_seconds, 3),
            "request": self.request,
            "status": self.status,
            "ledger_positions": self.positions,
            "given": self.given,
        }


class GroundTruth:
    """The truth of one scenario, filled as its requests (or unwraps) are made."""

    def __init__(self, services: Services, name: str, wall_start: float) -> None:
        self.services = services
        self.name = name
        self.wall_start = wall_start
        self.patients: dict[str, Given] = {}
        self.accesses: list[Access] = []
        self.unwraps: list[dict[str, Any]] = []
        self.principals: set[str] = set()
        self.sessions: set[str] = set()
        self.account: str | None = None
        self.role: str | None = None
        self.client: str | None = None
        self.source_address: str | None = None
        self._size = 0
        self._ids: dict[str, str] = {}

    # --- gate accesses -----------------------------------------------------------------------

    def watch(self, desk: Desk) -> None:
        desk.watchers.append(self._observe)
        self.principals.add(desk.principal)
        self.account = desk.account.username if desk.account else None
        self.role = str(desk.account.role) if desk.account else "integration"
        self.client = desk.client_id
        self.source_address = desk.device.source_address

    def _observe(self, desk: Desk, request: str, reply: Reply | None) -> None:
        store = self.services.audit_ledger.store
        if reply is None:
            self._size = store.head()[0]
            return
        end = store.head()[0]
        if desk.session_id:
            self.sessions.add(desk.session_id)
        mine = [
            (seq, AuditEvent.from_canonical(data, seq=seq))
            for seq, data in store.entries(self._size, end)
        ]
        mine = [
            (seq, event)
            for seq, event in mine
            if (event.session_id is not None and event.session_id in self.sessions)
            or event.principal in self.principals
        ]
        now_us = to_micros(self.services.clock())
        given = self._given(reply, mine, now_us)
        self.accesses.append(
            Access(
                now_us,
                time.perf_counter() - self.wall_start,
                request,
                reply.status,
                [seq for seq, _ in mine],
                given,
            )
        )

    def _given(self, reply: Reply, mine: list[tuple[int, AuditEvent]], now_us: int) -> list[str]:
        resources = reply.resources()
        if not resources:
            return []
        keys = [(str(r["resourceType"]), str(r["id"])) for r in resources]
        pseudonyms = self._pseudonyms(keys)
        positions: dict[str, list[int]] = {}
        recorded: dict[str, set[str]] = {}
        for seq, event in mine:
            if event.patient_pseudonym is not None:
                positions.setdefault(event.patient_pseudonym, []).append(seq)
                recorded.setdefault(event.patient_pseudonym, set()).update(event.categories)
        references = []
        for resource, key in zip(resources, keys, strict=True):
            pseudonym = pseudonyms.get(key)
            if pseudonym is None:
                continue  # directory resources ($everything's practitioners): no one's data
            reference = f"{key[0]}/{key[1]}"
            references.append(reference)
            entry = self.patients.get(pseudonym)
            if entry is None:
                entry = Given(self._patient_id(pseudonym), pseudonym, first_at_us=now_us)
                self.patients[pseudonym] = entry
            entry.references.add(reference)
            entry.categories.update(element_categories(RESOURCE_TYPES[key[0]], resource))
            entry.ledger_categories.update(recorded.get(pseudonym, ()))
            for seq in positions.get(pseudonym, []):
                if seq not in entry.positions:
                    entry.positions.append(seq)
        return references

    def _pseudonyms(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """Clear metadata only: which patient each returned resource belongs to."""
        found: dict[tuple[str, str], str] = {}
        with read_transaction(self.services.engine) as connection:
            for kind, ident in keys:
                pseudonym = connection.execute(
                    select(resource_head.c.patient_pseudonym).where(
                        resource_head.c.resource_type == kind,
                        resource_head.c.resource_id == ident,
                    )
                ).scalar()
                if pseudonym is not None:
                    found[(kind, ident)] = str(pseudonym)
        return found

    def _patient_id(self, pseudonym: str) -> str:
        if pseudonym not in self._ids:
            with read_transaction(self.services.engine) as connection:
                found = connection.execute(
                    select(resource_head.c.resource_id).where(
                        resource_head.c.patient_pseudonym == pseudonym,
                        resource_head.c.resource_type == "Patient",
                    )
                ).scalar()
            self._ids[pseudonym] = str(found)
        return self._ids[pseudonym]

    # --- key unwraps outside the gate ----------------------------------------------------------

    def unwrapped(self, principal: str, patient_id: str, pseudonym: str, before: int) -> None:
        """Record the unwrap-ledger entries of ``principal`` appended since ``before``."""
        import json

        store = self.services.unwrap_ledger.store
        self.principals.add(principal)
        for seq, data in store.entries(before, store.head()[0]):
            document = json.loads(data)
            if document.get("principal") == principal and document.get("key_id") == pseudonym:
                self.unwraps.append(
                    {
                        "at": fhir_instant_us(int(document["at_us"])),
                        "wall_seconds": round(time.perf_counter() - self.wall_start, 3),
                        "unwrap_position": seq,
                        "key_id": pseudonym,
                        "patient_id": patient_id,
                        "pseudonym": pseudonym,
                    }
                )

    # --- the file ------------------------------------------------------------------------------

    def as_json(self) -> dict[str, Any]:
        released = [a for a in self.accesses if a.given]
        refused = [a for a in self.accesses if a.status in (401, 403, 429, 503)]
        return {
            "account": self.account,
            "role": self.role,
            "client": self.client,
            "source_address": self.source_address,
            "principals": sorted(self.principals),
            "sessions": sorted(self.sessions),
            "requests": len(self.accesses),
            "refused": len(refused),
            "first_access": fhir_instant_us(self.accesses[0].at_us) if self.accesses else None,
            "last_access": fhir_instant_us(self.accesses[-1].at_us) if self.accesses else None,
            "last_release": fhir_instant_us(released[-1].at_us) if released else None,
            "patients": [
                given.as_json()
                for given in sorted(self.patients.values(), key=lambda g: g.first_at_us)
            ],
            "accesses": [access.as_json() for access in self.accesses],
            "unwraps": self.unwraps,
        }
