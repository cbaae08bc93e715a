"""Decrypting reads. Only the gate (and the vault's own search) may import this module.

An import-linter contract enforces it, so a route, a report or a script cannot
decrypt a record without passing the gate's decision and audit.
"""

from __future__ import annotations

from collections.abc import Sequence

from carevault.keys.envelope import record_aad
from carevault.vault.records import Opened, Sealed
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
        body = vault.envelope.open(
            keys.get(key_id),
            record_aad(head.resource_type, head.resource_id, head.version_id, key_id),
            item.sealed,
            where=f"{head.reference} version {head.version_id}",
        )
        opened.append(Opened(head, body))
    return opened
