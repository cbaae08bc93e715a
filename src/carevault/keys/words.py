"""People's words sealed at rest: what an officer types (an incident's title, an erasure's
reason) may name a patient, and where it is kept (a table, the audit ledger, which is in
the clear and kept for good) a thief with the database files or a backup would read it
(adversary round 67).

A value is stored as ``sealed:1:`` and the base64 of an ``Envelope`` ciphertext
(AES-256-GCM) under a data key of its own, bound (AAD) to what the caller names it by, so
words moved to another row, field or patient fail to open. A value without the prefix
was stored before sealing: it reads as it is. With encryption off (the demo's option; no
key service) words are kept as typed, as the vault keeps records.
"""

from __future__ import annotations

import base64

from carevault.keys.envelope import Envelope, RecordIntegrityError
from carevault.keys.service import KeyService

#: What a sealed value starts with; a stored value without it predates sealing.
PREFIX = "sealed:1:"


class SealedWords:
    """Seals and opens one kind of words: under the data key ``key_id``, unwrapped for
    ``principal`` (the key service logs each unwrap, with the purpose ``<purpose>-seal``
    or ``<purpose>-open``), bound to ``context`` and what each value is named by. The key
    is unwrapped once for the object's life."""

    def __init__(
        self, keys: KeyService | None, key_id: str, principal: str, purpose: str, context: str
    ) -> None:
        self.keys = keys
        self._key_id = key_id
        self._principal = principal
        self._purpose = purpose
        self._context = context
        self._envelope = Envelope(encrypted=keys is not None)
        self._key: bytes | None = None

    def _data_key(self, use: str) -> bytes:
        assert self.keys is not None  # noqa: S101 - only called when encrypting
        if self._key is None:
            self._key = self.keys.ensure_data_key(
                self._key_id, "audit", principal=self._principal, purpose=f"{self._purpose}-{use}"
            )
        return self._key

    def _aad(self, binding: str) -> bytes:
        return f"{self._context}|{binding}".encode()

    def seal(self, binding: str, text: str) -> str:
        """``text`` as stored, bound to ``binding`` (as typed with encryption off)."""
        if self.keys is None:
            return text
        sealed = self._envelope.seal(self._data_key("seal"), self._aad(binding), text.encode())
        return PREFIX + base64.b64encode(sealed).decode("ascii")

    def open(self, binding: str, stored: str, *, where: str) -> str:
        """The words ``stored`` holds (a value stored before sealing: as it is);
        ``RecordIntegrityError`` for words bound elsewhere or altered, or sealed words
        with encryption off (refused rather than shown as ciphertext)."""
        if not stored.startswith(PREFIX):
            return stored
        if self.keys is None:
            raise RecordIntegrityError(f"{where} is sealed, and encryption is off")
        return self._envelope.open(
            self._data_key("open"),
            self._aad(binding),
            base64.b64decode(stored[len(PREFIX) :]),
            where=where,
        ).decode()
