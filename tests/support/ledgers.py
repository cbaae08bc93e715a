"""What the ledgers hold, read back in tests."""

from __future__ import annotations

from carevault.bootstrap import Services
from carevault.ledger.events import AuditEvent


def audit_events(services: Services) -> list[AuditEvent]:
    """Every audit ledger entry, in ledger order."""
    store = services.audit_ledger.store
    return [AuditEvent.from_canonical(data) for _, data in store.entries()]


def unwraps(services: Services) -> int:
    """How many entries the key-unwrap ledger holds."""
    return services.unwrap_ledger.store.head()[0]


def patient_pseudonym(services: Services, patient_id: str) -> str:
    """The pseudonym the ledger names the patient ``patient_id`` by."""
    return str(services.vault.locate("Patient", patient_id).head.patient_pseudonym)
