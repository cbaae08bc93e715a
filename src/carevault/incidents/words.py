"""An officer's words about an incident (its title, an amendment's note), sealed at rest.

An officer types what happened, and may name a patient ("Dr Lam looked up Chan Tai Man,
A123456(3)"): kept as typed, a thief with the database files or a backup read it
(adversary round 67). The words are stored as ``sealed:1:`` and the base64 of an
``Envelope`` ciphertext (AES-256-GCM) under a data key of their own (``incident-words``),
bound to the incident and to what they are (title, note), so words moved to another
incident or field fail to open. A value without the prefix was stored before: it reads
as it is. With encryption off (the demo's option; no key service) words are kept as typed,
as the vault keeps records.
"""

from __future__ import annotations

import base64

from carevault.keys.envelope import Envelope, RecordIntegrityError
from carevault.keys.service import KeyService

#: What a sealed value starts with; a stored value without it predates sealing.
PREFIX = "sealed:1:"
KEY_ID = "incident-words"
PRINCIPAL = "system:incidents"


def _aad(incident_id: int, field: str) -> bytes:
    return f"carevault-incident-words/1|{incident_id}|{field}".encode()


class Words:
    """Seals and opens the officer's words of incidents. Each first open or seal of a
    ``Words`` unwraps its key once, which the key service logs (principal
    ``system:incidents``, the purpose it is given)."""

    def __init__(self, keys: KeyService | None) -> None:
        self.keys = keys
        self._envelope = Envelope(encrypted=keys is not None)
        self._key: bytes | None = None

    def _data_key(self, purpose: str) -> bytes:
        assert self.keys is not None  # noqa: S101 - only called when encrypting
        if self._key is None:
            self._key = self.keys.ensure_data_key(
                KEY_ID, "audit", principal=PRINCIPAL, purpose=purpose
            )
        return self._key

    def seal(self, incident_id: int, field: str, text: str) -> str:
        if self.keys is None:
            return text
        sealed = self._envelope.seal(
            self._data_key("incident-words-seal"), _aad(incident_id, field), text.encode()
        )
        return PREFIX + base64.b64encode(sealed).decode("ascii")

    def open(self, incident_id: int, field: str, stored: str) -> str:
        if not stored.startswith(PREFIX):
            return stored
        if self.keys is None:
            raise RecordIntegrityError(
                f"incident {incident_id}'s {field} is sealed, and encryption is off"
            )
        return self._envelope.open(
            self._data_key("incident-words-open"),
            _aad(incident_id, field),
            base64.b64decode(stored[len(PREFIX) :]),
            where=f"incident {incident_id}'s {field}",
        ).decode()
