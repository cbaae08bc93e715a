"""A small clinic of patients written through the gate, an attacker's real reads through
the gate, and the scope document built from those reads' ledger entries (as the
incident module does), plus a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import asyncio
import mailbox
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import Message
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from carevault.bootstrap import Services
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate import Caller
from carevault.incidents import Actor, declare_case, scope_document
from carevault.ledger.events import AuditEvent, Tag
from carevault.sim.loader import SEED_CALLER
from carevault.vault.writer import Put

HKID_SYSTEM = "http://carevault.hk/sid/hkid"
BCP47 = "urn:ietf:bcp:47"
ATTACKER = Caller(principal="staff:mallory", purpose="TREAT", source_address="203.0.113.66")


@dataclass(frozen=True)
class Person:
    key: str
    family: str
    given: str
    language: str = "en"
    email: str | None = None
    phone: str | None = None
    address: tuple[str, ...] = ("Flat 3, 12 Nathan Road", "Yau Ma Tei")
    birth: str = "1980-05-01"
    deceased: bool = False
    guardian: dict[str, Any] | None = None
    hkid: str | None = None
    clinical: bool = False
    text_name: str | None = None


def patient_resource(person: Person, patient_id: str) -> dict[str, Any]:
    telecom = []
    if person.phone:
        telecom.append({"system": "phone", "value": person.phone, "use": "mobile"})
    if person.email:
        telecom.append({"system": "email", "value": person.email})
    name: dict[str, Any] = {"family": person.family, "given": [person.given]}
    if person.text_name:
        name["text"] = person.text_name
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": patient_id,
        "name": [name],
        "birthDate": person.birth,
        "gender": "female",
        "communication": [
            {
                "language": {"coding": [{"system": BCP47, "code": person.language}]},
                "preferred": True,
            }
        ],  # fmt: skip
    }
    if telecom:
        resource["telecom"] = telecom
    if person.address:
        resource["address"] = [{"line": list(person.address[:-1]), "district": person.address[-1]}]
    if person.deceased:
        resource["deceasedBoolean"] = True
    if person.guardian:
        resource["contact"] = [person.guardian]
    if person.hkid:
        resource["identifier"] = [{"system": HKID_SYSTEM, "value": person.hkid}]
    return resource


def condition(patient_id: str) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": f"c-{patient_id}",
        "subject": {"reference": f"Patient/{patient_id}"},
        "code": {"text": "Type 2 diabetes mellitus"},
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },  # fmt: skip
    }


def write_people(services: Services, people: list[Person]) -> dict[str, str]:
    """Write every person through the gate; their Patient ids by key."""
    ids = {p.key: f"p{secrets.token_hex(6)}" for p in people}
    operations = []
    for person in people:
        resource = patient_resource(person, ids[person.key])
        operations.append(Put(RESOURCE_TYPES["Patient"], ids[person.key], resource))
        if person.clinical:
            item = condition(ids[person.key])
            operations.append(Put(RESOURCE_TYPES["Condition"], item["id"], item))
    services.gate.write(SEED_CALLER, operations)
    return ids


def attack(services: Services, people: list[Person], ids: dict[str, str]) -> None:
    """The attacker's reads, through the gate like any other (each one a ledger entry)."""
    for person in people:
        services.gate.read(ATTACKER, RESOURCE_TYPES["Patient"], ids[person.key])
        if person.clinical:
            services.gate.read(ATTACKER, RESOURCE_TYPES["Condition"], f"c-{ids[person.key]}")


def declared_from_abroad(services: Services) -> tuple[int, dict[str, Any]]:
    """An incident for the attacker's address (``ATTACKER``) over the last hour: its id
    and its scope document."""
    now = datetime.now(UTC)
    case = {
        "title": "A reception login used from abroad",
        "since": (now - timedelta(hours=1)).isoformat(),
        "until": (now + timedelta(minutes=1)).isoformat(),
        "addresses": [ATTACKER.source_address],
    }
    incident = declare_case(services, Actor("staff:officer.test"), case).incident_id
    return incident, scope_document(services, incident)


def scope_from_ledger(
    services: Services, incident_id: str, principal: str = ATTACKER.principal
) -> dict[str, Any]:
    """The scope document of an incident whose compromised account is ``principal``,
    from the ledger: every successful read by it, grouped by patient."""
    pseudonyms: dict[str, str] = {}
    tiers: dict[str, dict[str, Any]] = {}
    entries = list(services.audit_ledger.store.entries())
    for _, data in entries:
        event = AuditEvent.from_canonical(data)
        patient_read = event.tag is Tag.FHIR_READ and event.resource_type == "Patient"
        if patient_read and event.resource_id and event.patient_pseudonym:
            pseudonyms[event.patient_pseudonym] = event.resource_id
    for seq, data in entries:
        event = AuditEvent.from_canonical(data)
        if event.principal != principal or event.tag is not Tag.FHIR_READ:
            continue
        if event.outcome != "success" or not event.patient_pseudonym:
            continue
        patient = pseudonyms[event.patient_pseudonym]
        at = datetime.fromtimestamp(event.at_us / 1e6, UTC).isoformat()
        item = tiers.setdefault(
            patient,
            {"patient": patient, "categories": [], "clinics": [], "first": at, "last": at,
             "evidence": []},
        )  # fmt: skip
        item["categories"] = sorted(set(item["categories"]) | set(event.categories))
        item["last"] = at
        item["evidence"].append(seq)
    now = datetime.now(UTC).isoformat()
    return {
        "incident": {
            "id": incident_id,
            "title": "A reception account was used by someone else",
            "status": "open",
            "declared_at": now,
            "since": None,
            "until": now,
            "compromised": {
                "accounts": [principal],
                "clients": [],
                "addresses": [],
                "clinics": [],
                "database": False,
                "host": False,
                "key_service": False,
            },
        },  # fmt: skip
        "tiers": {
            "confirmed": list(tiers.values()),
            "decrypted": [],
            "at_rest_only": [],
            "potentially": [],
        },  # fmt: skip
        "counts": {"confirmed": len(tiers)},
    }


@dataclass
class MailSink:
    """What the test SMTP server accepted, and the addresses it refuses (550)."""

    journal: Path
    refuse: set[str] = field(default_factory=set)
    messages: list[tuple[list[str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook names
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        content = bytes(envelope.original_content or envelope.content)
        with self.lock:
            box = mailbox.Maildir(str(self.journal), create=True)
            box.add(content)
            self.messages.append((list(envelope.rcpt_tos), content))
        await asyncio.sleep(0)
        return "250 2.0.0 accepted"

    def parsed(self) -> list[tuple[list[str], Message, bytes]]:
        with self.lock:
            return [
                (to, message_from_bytes(data, policy=policy.default), data)
                for to, data in self.messages
            ]


def smtp_server(journal: Path, port: int = 0) -> tuple[Controller, MailSink]:
    sink = MailSink(journal)
    controller = Controller(sink, hostname="127.0.0.1", port=port or _free_port())
    controller.start()
    return controller, sink


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
