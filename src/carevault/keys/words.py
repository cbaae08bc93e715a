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
from collections.abc import Mapping

from carevault.keys.envelope import Envelope, RecordIntegrityError
from carevault.keys.provider import KeyProviderError
from carevault.keys.service import OFFICER_WORDS_KEY_ID, DataKeyError, KeyService

#: What a sealed value starts with; a stored value without it predates sealing.
PREFIX = "sealed:1:"
#: What a page or a listing shows for words whose seal does not open (moved from another
#: row, altered, or the key service out of reach), in place of the words.
UNOPENED = "(the officer's words are sealed and could not be opened here: {why})"
#: What is kept in place of words the key service could not seal (``SealedWords.kept``).
WITHHELD = "(the officer's words were not kept: the key service could not seal them: {why})"


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

    def kept(self, binding: str, text: str) -> str:
        """``seal`` for words that must not stop what they explain: a measure an officer
        starts, an alert handled, an account suspended while the key service (an HSM) is
        out of reach goes ahead, and its words are not kept (``WITHHELD`` in their place,
        naming why), never kept in the clear."""
        try:
            return self.seal(binding, text)
        except (KeyProviderError, DataKeyError) as error:
            return WITHHELD.format(why=type(error).__name__)

    def shown(self, binding: str, stored: str, *, where: str) -> str:
        """``open`` for a page or a listing: words that do not open are shown as
        ``UNOPENED`` says, naming why (never the stored value), rather than failing the
        whole page; the gate and anything that acts on the words use ``open``."""
        try:
            return self.open(binding, stored, where=where)
        except RecordIntegrityError:
            return UNOPENED.format(why="their seal does not match where they are kept")
        except (KeyProviderError, DataKeyError) as error:
            return UNOPENED.format(why=type(error).__name__)


def officer_words(keys: KeyService | None, principal: str, context: str) -> SealedWords:
    """What privacy officers type about containment, staff and alerts (a reason to
    suspend an account, to lift a measure, to dismiss an alert): often a person's name
    ("read Mrs Chan's chart"), so sealed at rest under ``officer-words``, which key
    lockdown spares (``keys.service.LOCKDOWN_EXEMPT``). ``context`` names the kind of
    words, so that words of one kind do not open as another."""
    return SealedWords(keys, OFFICER_WORDS_KEY_ID, principal, "officer-words", context)


def entry_words(
    words: SealedWords | None, binding: str, text: str, fixed: str
) -> tuple[str, dict[str, str]]:
    """What a ledger entry keeps of the words ``text``: (its reason, what its detail
    adds). Sealed: ``fixed`` names them and the detail carries them (``reason_sealed``,
    bound to ``binding``); with encryption off, no words or no ``words``: ``text`` is the
    reason, as before words were sealed; the key service out of reach: ``WITHHELD``."""
    if words is None or not text:
        return text, {}
    stored = words.kept(binding, text)
    if not stored.startswith(PREFIX):
        # As typed with encryption off; ``WITHHELD`` if the key service failed.
        return stored, {}
    return fixed, {"reason_sealed": stored}


def entry_reason(
    words: SealedWords | None, binding: str, reason: str, detail: Mapping[str, object]
) -> str:
    """The words of an entry ``entry_words`` made (its reason and detail), opened as
    ``SealedWords.shown`` shows them; an entry without sealed words gives its reason."""
    sealed = detail.get("reason_sealed")
    if not isinstance(sealed, str) or words is None:
        return reason
    return words.shown(binding, sealed, where="a ledger entry's words")
