"""A privacy officer's correction of a patient's identifiers, through the gate.

A front desk may add an identifier to a Patient but may neither read nor remove one (an
HKID is hidden from it): a mistyped HKID stayed on the record for good, held off its
real holder's records and, beside the patient's own, sent every ``$register`` of them
to the officer (docs/threat-model.md, stop 63). The officer lists the identifiers (a
read, in the ledger as one) and takes the wrong one off: a new version of the Patient,
written as any write is (encrypted, its blind indexes computed anew), with an entry
that names the officer, the fixed reason and the identifier's system, never its value.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection

from carevault.domain.categories import DataCategory
from carevault.domain.roles import Role
from carevault.fhir import jsonio
from carevault.fhir.codes import has_sensitive_code
from carevault.fhir.normalise import identifier_value
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate.core import AccessDenied, Caller, Gate
from carevault.gate.registration import RegistrationInvalid, fixed_reason, rewrite_patient
from carevault.ledger.events import Tag
from carevault.vault.records import Gone, Head, NotFound
from carevault.vault.writer import Operation

_PATIENT = RESOURCE_TYPES["Patient"]


class RemovalReason(StrEnum):
    """Why a privacy officer takes an identifier off a Patient (the fixed list: free
    text could name the patient)."""

    #: Typed wrong: the number is no one's, or someone else's by a slip.
    MISTYPED = "mistyped"
    #: Another person's number, typed onto this record (that person has their own).
    DUPLICATE_OF_ANOTHER_PERSON = "duplicate-of-another-person"


@dataclass(frozen=True)
class ListedIdentifier:
    """One identifier as the officer is shown it: its system, value and type."""

    system: str
    value: str
    type: str


def listed(resource: dict[str, Any]) -> list[ListedIdentifier]:
    """The identifiers of a Patient (as the officer's read shows it)."""
    found: list[ListedIdentifier] = []
    for item in resource.get("identifier") or []:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if not isinstance(kind, dict):
            kind = {}
        codings = [c for c in kind.get("coding") or [] if isinstance(c, dict) and c.get("code")]
        found.append(
            ListedIdentifier(
                system=str(item.get("system") or "-"),
                value=str(item.get("value") or "-"),
                type=str(codings[0]["code"]) if codings else str(kind.get("text") or "-"),
            )
        )
    return found


def without(resource: dict[str, Any], system: str, value: str) -> int:
    """Take every identifier of ``system`` whose value is ``value`` (as the index reads
    both: ``A123456(3)`` is ``A1234563``) off ``resource``; how many were taken. One
    typed with a sensitive code (an HIV clinic's) is never matched: the officer is not
    shown it, and a removal that found it would tell them it is there."""
    wanted = identifier_value(system, value)
    kept, taken = [], 0
    for item in resource.get("identifier") or []:
        if (
            isinstance(item, dict)
            and not has_sensitive_code(item)
            and item.get("system") == system
            and isinstance(item.get("value"), str)
            and identifier_value(system, item["value"]) == wanted
        ):
            taken += 1
        else:
            kept.append(item)
    if kept:
        resource["identifier"] = kept
    else:
        resource.pop("identifier", None)
    return taken


def identifiers(gate: Gate, caller: Caller, patient_id: str) -> list[ListedIdentifier]:
    """The Patient's identifiers, released to a privacy officer as a read is: the same
    policy decision, cut, containment and release budget, and an entry in the ledger
    (``fhir:resource:read``, the categories shown), durable before anything is returned.
    Their role reads no government ids (an HKID): this one release, for the correction
    of a record, shows them the record's too; never one typed with a sensitive code."""
    with gate._attempt(caller, Tag.FHIR_READ, "Patient", patient_id) as attempt:
        _officer_only(caller, "only a privacy officer lists a patient's identifiers")
        # Refused whole while PHI is offline: that mode's name-only answer is no place to
        # widen (``_contain_read``).
        gate._contain_search(_PATIENT)
        attempt.detail["released_for"] = "identifier-correction"
        located, decision = gate._locate_for_read(caller, attempt, _PATIENT, patient_id)
        widened = replace(
            decision,
            granted=decision.granted | {DataCategory.GOVERNMENT_ID},
            withheld=decision.withheld - {DataCategory.GOVERNMENT_ID},
        )
        shown, events, release = gate._shown(caller, attempt, _PATIENT, located, widened)
        gate._record(events, release)
    return listed(jsonio.load(shown.body or b"{}"))


def _officer_only(caller: Caller, refusal: str) -> None:
    actor = caller.actor
    if actor is None or actor.role is not Role.PRIVACY_OFFICER:
        raise AccessDenied(refusal)


def remove_identifier(
    gate: Gate, caller: Caller, patient_id: str, system: str, value: str, reason: str
) -> Head:
    """A privacy officer takes one identifier (``system`` and ``value``) off a Patient,
    for one of the fixed reasons; the Patient's new version. Refused, with nothing
    changed and the refusal in the ledger, for anyone else, a reason off the list, a
    patient deleted or unknown, or an identifier the record does not hold."""
    with gate._attempt(caller, Tag.PATIENT_IDENTIFIER_REMOVED, "Patient", patient_id) as attempt:
        _officer_only(caller, "only a privacy officer removes a patient's identifier")
        gate._contain_change([_PATIENT])
        why = fixed_reason(RemovalReason, reason)
        attempt.detail["why"] = why.value
        located = gate.vault.locate("Patient", patient_id)
        if located.head.deleted:
            raise Gone(f"Patient/{patient_id} was deleted")
        attempt.patient_pseudonym = located.head.patient_pseudonym

        def still_there(
            connection: Connection, operation: Operation, written: Head, stored: Head | None
        ) -> None:
            if stored is None or stored.deleted:
                raise NotFound(f"Patient/{patient_id} changed while it was being corrected")
            # As any write of a record of a locked clinic is refused (503).
            gate._refuse_locked(connection, [stored], gate._state().locked_clinics)

        def take_off(resource: dict[str, Any]) -> None:
            if not without(resource, system, value):
                # Neither the system nor the value is named: either may be what was
                # typed where the other goes (a value in clear in the ledger for good).
                raise RegistrationInvalid("the patient's record holds no such identifier")
            # A system the record holds: a URL the group writes, no one's data.
            attempt.detail["identifier_system"] = system

        result = rewrite_patient(
            gate,
            caller,
            attempt,
            located,
            take_off,
            purpose="correction",
            reason=f"identifier removed by the privacy officer: {why.value}",
            authorize=still_there,
        )
        return result.head
