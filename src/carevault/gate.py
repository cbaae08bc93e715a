"""The gate: the one path through which patient data is read and written.

Every read and write of a resource passes here. The vault's decrypting reads
are called from this module only (an import-linter contract holds it to that).
The order of work is fixed and visible in each method: locate (clear metadata)
→ decide → open or write → return.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from carevault.fhir.query import SearchQuery
from carevault.fhir.registry import RESOURCE_TYPES, ResourceType
from carevault.vault.opening import open_sealed
from carevault.vault.records import Gone, Opened, Sealed, WriteResult
from carevault.vault.search import find
from carevault.vault.store import Vault
from carevault.vault.writer import Operation, apply_writes


@dataclass(frozen=True)
class Caller:
    """Who is asking, from where, and why (a FHIR PurposeOfUse code)."""

    principal: str
    purpose: str = "TREAT"
    source_address: str | None = None
    user_agent: str | None = None


class Gate:
    def __init__(self, vault: Vault, *, candidate_limit: int) -> None:
        self.vault = vault
        self.candidate_limit = candidate_limit

    def _open(self, caller: Caller, items: Sequence[Sealed]) -> list[Opened]:
        return open_sealed(self.vault, items, principal=caller.principal, purpose=caller.purpose)

    def read(self, caller: Caller, resource_type: ResourceType, resource_id: str) -> Opened:
        located = self.vault.locate(resource_type.name, resource_id)
        if located.head.deleted:
            raise Gone(f"{resource_type.name}/{resource_id} was deleted")
        return self._open(caller, [located])[0]

    def vread(
        self, caller: Caller, resource_type: ResourceType, resource_id: str, version_id: int
    ) -> Opened:
        located = self.vault.locate_version(resource_type.name, resource_id, version_id)
        if located.head.deleted:
            raise Gone(f"{resource_type.name}/{resource_id} version {version_id} is a deletion")
        return self._open(caller, [located])[0]

    def history(
        self, caller: Caller, resource_type: ResourceType, resource_id: str
    ) -> list[Opened]:
        return self._open(caller, self.vault.locate_history(resource_type.name, resource_id))

    def search(self, caller: Caller, query: SearchQuery) -> tuple[list[Opened], int]:
        found, total = find(
            self.vault,
            query,
            principal=caller.principal,
            purpose=caller.purpose,
            restrict=None,
            candidate_limit=self.candidate_limit,
        )
        sealed = [item for item in found if isinstance(item, Sealed)]
        opened = {item.head.row_id: item for item in self._open(caller, sealed)}
        opened.update((item.head.row_id, item) for item in found if isinstance(item, Opened))
        return [opened[item.head.row_id] for item in found], total

    def everything(self, caller: Caller, patient_id: str) -> list[Opened]:
        """The patient, every live resource of theirs, and what those refer to outside it."""
        patient = self.read(caller, RESOURCE_TYPES["Patient"], patient_id)
        assert patient.head.patient_pseudonym is not None  # noqa: S101 - every Patient has one
        compartment = self.vault.locate_compartment(patient.head.patient_pseudonym)
        opened = self._open(
            caller, [item for item in compartment if item.head.row_id != patient.head.row_id]
        )
        return [patient, *opened]

    def include(self, caller: Caller, references: Sequence[tuple[str, str]]) -> list[Opened]:
        """Resources referred to by others already returned (not patient data)."""
        located = [
            item
            for item in self.vault.locate_many(references)
            if item.head.patient_pseudonym is None
        ]
        return self._open(caller, located)

    def write(self, caller: Caller, operations: Sequence[Operation]) -> list[WriteResult]:
        return apply_writes(
            self.vault, operations, principal=caller.principal, purpose=caller.purpose
        )
