"""An officer's words about an incident (its title, an amendment's note, a kept scope
run's document, which holds the title), sealed at rest (``keys.words``): under a data key
of their own (``incident-words``), bound to the incident and to what they are (title,
note, ``scope-run-N``), so words moved to another incident or field fail to open."""

from __future__ import annotations

from carevault.keys.service import KeyService
from carevault.keys.words import PREFIX, SealedWords

__all__ = ["KEY_ID", "PREFIX", "PRINCIPAL", "Words"]

KEY_ID = "incident-words"
PRINCIPAL = "system:incidents"


class Words:
    """Seals and opens the officer's words of incidents. The first seal or open unwraps
    the key, which the key service logs (principal ``system:incidents``)."""

    def __init__(self, keys: KeyService | None) -> None:
        self._sealed = SealedWords(
            keys, KEY_ID, PRINCIPAL, "incident-words", "carevault-incident-words/1"
        )

    def seal(self, incident_id: int, field: str, text: str) -> str:
        return self._sealed.seal(f"{incident_id}|{field}", text)

    def open(self, incident_id: int, field: str, stored: str) -> str:
        return self._sealed.open(
            f"{incident_id}|{field}", stored, where=f"incident {incident_id}'s {field}"
        )
