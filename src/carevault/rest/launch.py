"""The patient picker of a SMART standalone patient launch (``launch/patient``).

The user who just signed in chooses the patient the app will be confined to. Every
look-up and the choice itself go through the gate as that user (their role, clinics,
care relationships, containment): the picker lists only patients they may see, each
listing is in the ledger like any search, and the choice is a read of the Patient
that the policy must allow. A patient they may not see cannot be chosen.
"""

from __future__ import annotations

from dataclasses import dataclass

from carevault.access.accounts import Account
from carevault.access.scopes import Interaction, ScopeGrant, Scopes
from carevault.access.sessions import LaunchPatient
from carevault.domain.policy import Actor
from carevault.fhir import jsonio
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate import Caller, DecryptionBudget, Gate
from carevault.rest.errors import translated
from carevault.rest.interactions import FhirInteractions, checked_id

#: The picker reads Patients and nothing else, whatever the app asked for.
_PICKER_SCOPES = Scopes(
    (ScopeGrant("user", "Patient", frozenset({Interaction.READ, Interaction.SEARCH})),),
    frozenset(),
)
PAGE = 20
_MAX_TEXT = 64


@dataclass(frozen=True)
class PatientChoice:
    """One line of the picker: enough to tell patients apart, nothing more."""

    patient_id: str
    name: str
    birth_date: str
    gender: str


def picker_caller(
    account: Account,
    client_id: str,
    source_address: str | None,
    user_agent: str | None,
    request_id: str | None = None,
) -> Caller:
    """The signed-in user, reading Patients for the app that asked (no session yet)."""
    return Caller(
        principal=f"staff:{account.username}",
        source_address=source_address,
        user_agent=user_agent,
        actor=Actor(
            principal=f"staff:{account.username}",
            role=account.role,
            clinic_ids=account.clinic_ids,
            practitioner_id=account.practitioner_id,
            account_id=account.account_id,
        ),
        client_id=client_id,
        request_id=request_id,
        scopes=_PICKER_SCOPES,
        budget=DecryptionBudget(PAGE * 5),
    )


def _display(body: bytes | None) -> tuple[str, str, str]:
    resource = jsonio.load(body or b"{}")
    names = resource.get("name") or []
    name = "?"
    if names:
        first = names[0]
        name = (
            first.get("text")
            or " ".join([*first.get("given", []), first.get("family", "")]).strip()
            or "?"
        )
    return name, resource.get("birthDate", ""), resource.get("gender", "")


class PatientPicker:
    def __init__(self, fhir: FhirInteractions, gate: Gate) -> None:
        self.fhir = fhir
        self.gate = gate

    def find(self, caller: Caller, text: str) -> list[PatientChoice]:
        """Patients the caller may see: by identifier (HKID, MRN) when the text holds a
        digit, else by name; with no text, the first page the caller may see."""
        text = text.strip()[:_MAX_TEXT]
        params: list[tuple[str, str]] = [("_count", str(PAGE))]
        if text:
            params.append(("identifier" if any(ch.isdigit() for ch in text) else "name", text))
        query = self.fhir.parse_search("Patient", params, strict=True)
        with translated():
            found, _total = self.gate.search(caller, query)
        return [
            PatientChoice(item.head.resource_id, *_display(item.body))
            for item in found
            if item.body is not None
        ]

    def choose(self, caller: Caller, patient_id: str) -> LaunchPatient:
        """The patient in context, if the policy lets the caller read them (a read
        through the gate, in the ledger); FhirError (403, 404, 410) if not."""
        with translated():
            opened = self.gate.read(caller, RESOURCE_TYPES["Patient"], checked_id(patient_id))
        pseudonym = opened.head.patient_pseudonym
        assert pseudonym is not None  # noqa: S101 - every Patient has one
        return LaunchPatient(opened.head.resource_id, pseudonym)
