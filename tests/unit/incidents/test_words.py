"""``incidents.words`` without a key service (encryption off, the demo's option): words are
kept as typed, and a sealed value is refused rather than shown as its ciphertext."""

from __future__ import annotations

import pytest

from carevault.incidents.words import PREFIX, Words
from carevault.keys.envelope import RecordIntegrityError


def test_with_encryption_off_words_are_kept_and_read_as_typed() -> None:
    words = Words(None)
    assert words.seal(1, "title", "Dr Lam looked up Chan") == "Dr Lam looked up Chan"
    assert words.open(1, "title", "Dr Lam looked up Chan") == "Dr Lam looked up Chan"


def test_with_encryption_off_a_sealed_title_is_refused() -> None:
    with pytest.raises(RecordIntegrityError):
        Words(None).open(1, "title", PREFIX + "AQID")
