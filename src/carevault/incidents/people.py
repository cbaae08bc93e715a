"""People, not records: Patient records with the same HKID blind index are one person.

The blind index of an HKID is the token the vault stores for the Patient's identifier
(``identifier`` search, the HKID system's term). To compute it the scope needs the HKID
of each affected record, so it reads those Patient records through the gate, as the
system with a purpose of its own: every such read is in the audit ledger, and the number
itself never leaves this function (only the token is compared). Only the notifiable tiers
(confirmed, decrypted) are deduplicated this way; the others count records.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

from carevault.containment.state import ContainmentActive
from carevault.fhir.indexing import system_term
from carevault.fhir.normalise import identifier_value
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate import Caller
from carevault.gate.core import AccessDenied
from carevault.vault.records import Gone, NotFound

if TYPE_CHECKING:
    from carevault.bootstrap import Services

HKID_SYSTEM = "http://carevault.hk/sid/hkid"
READER = Caller(principal="system:incident-scope", purpose="HOPERAT")


def _hkid_token(services: Services, patient_id: str) -> bytes | None:
    try:
        opened = services.gate.read(READER, RESOURCE_TYPES["Patient"], patient_id)
    except (Gone, NotFound, AccessDenied, LookupError):
        return None  # erased, deleted or not there: counted on its own
    if opened.body is None:
        return None
    for identifier in json.loads(opened.body).get("identifier") or []:
        value = identifier.get("value") if isinstance(identifier, dict) else None
        if identifier.get("system") == HKID_SYSTEM and isinstance(value, str) and value:
            term = system_term(HKID_SYSTEM, identifier_value(HKID_SYSTEM, value))
            return services.vault.token("Patient", "identifier", term)
    return None


def persons(services: Services, patient_ids: Mapping[str, str]) -> dict[str, str]:
    """Each Patient id's person: the smallest Patient id sharing its HKID blind index."""
    by_token: dict[bytes, list[str]] = {}
    found = {patient_id: patient_id for patient_id in patient_ids.values()}
    for patient_id in sorted(found):
        try:
            token = _hkid_token(services, patient_id)
        except ContainmentActive:
            # Patient data is offline or keys are locked down: the scope still runs, and
            # counts records as people until the containment is released.
            break
        if token is not None:
            by_token.setdefault(token, []).append(patient_id)
    for same in by_token.values():
        for patient_id in same:
            found[patient_id] = min(same)
    return found
