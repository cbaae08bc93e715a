"""Decrypting reads. Only the gate (and the vault's own search) may import this module.

An import-linter contract enforces it, so a route, a report or a script cannot
decrypt a record without passing the gate's decision and audit.
"""

from __future__ import annotations

from collections.abc import Sequence

from carevault.keys.envelope import RecordIntegrityError, record_aad, sealed_form
from carevault.vault.records import Head, Opened, Sealed
from carevault.vault.store import Vault


def open_sealed(
    vault: Vault, items: Sequence[Sealed], *, principal: str, purpose: str
) -> list[Opened]:
    """Decrypt ``items``; raises RecordIntegrityError if a ciphertext is not its row's.

    The data keys are fetched in one call, so a page of twenty patients costs at
    most one unwrap-log write.
    """
    keys = vault.data_keys(
        [item.key_id for item in items if item.sealed is not None],
        principal=principal,
        purpose=purpose,
    )
    opened: list[Opened] = []
    for item in items:
        if item.sealed is None:
            opened.append(Opened(item.head, None))
            continue
        head = item.head
        key_id = item.key_id or ""
        where = f"{head.reference} version {head.version_id}"
        body = vault.envelope.open(
            keys.get(key_id),
            _aad(vault, head, key_id, item.sealed, where),
            item.sealed,
            where=where,
        )
        opened.append(Opened(head, body))
    return opened


def _aad(vault: Vault, head: Head, key_id: str, sealed: bytes, where: str) -> bytes:
    """The associated data ``sealed`` must open under, as the row stands. A record
    sealed before adversary round 69 (form 1) names no patient nor clinic: its data
    key must at least be the patient's the row names, or someone who edited the row's
    pseudonym would have another patient's record served as this one's."""
    form = sealed_form(sealed)
    if form == 1 and key_id != vault.key_id_for(head.patient_pseudonym):
        raise RecordIntegrityError(
            f"{where} failed its integrity check: it is sealed for another patient than "
            "its row names"
        )
    return record_aad(
        head.resource_type,
        head.resource_id,
        head.version_id,
        key_id,
        head.patient_pseudonym,
        head.clinic_id,
        form=form,
    )
