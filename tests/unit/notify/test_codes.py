"""Verification codes: typeable, stable per notice, checked by digest only."""

from __future__ import annotations

import math

from carevault.notify.codes import ALPHABET, LENGTH, SPACE, CodeKeys, normalise

KEYS = CodeKeys(b"k" * 32)


def test_the_alphabet_has_no_look_alikes() -> None:
    assert not set(ALPHABET) & set("0OQ1IL2Z5S8BG")
    assert len(set(ALPHABET)) == len(ALPHABET) == 23


def test_guessing_one_of_100000_codes_at_the_global_limit_takes_over_a_year() -> None:
    issued, per_second = 100_000, 20.0
    expected_seconds = SPACE / issued / per_second
    assert expected_seconds > 365 * 24 * 3600
    # The chance of any success within a year stays below 1 %.
    assert 1 - math.exp(-per_second * 365 * 24 * 3600 * issued / SPACE) < 0.01


def test_a_code_is_stable_per_notice_and_typed_loosely() -> None:
    code = KEYS.code_for("notice-1", "email")
    assert code == KEYS.code_for("notice-1", "email") != KEYS.code_for("notice-2", "email")
    assert KEYS.issued_digest("notice-1", "email") == KEYS.digest(code.lower())
    # Bound to the channel: the same notice's text message carries another code.
    assert code != KEYS.code_for("notice-1", "sms") != KEYS.code_for("notice-1", "letter")
    assert len(code.replace("-", "")) == LENGTH
    assert KEYS.digest(code.lower().replace("-", " ")) == KEYS.digest(code)
    assert KEYS.digest("not a code") is None and normalise("X" * 1000) is None
    assert CodeKeys(b"j" * 32).digest(code) != KEYS.digest(code)


def _full_width(text: str) -> str:
    """``text`` as a Traditional Chinese IME in full-width mode types it."""
    return "".join(chr(ord(char) + 0xFEE0) if "!" <= char <= "~" else char for char in text)


def test_a_code_typed_full_width_or_with_other_separators_is_the_same_code() -> None:
    code = KEYS.code_for("notice-1", "email")
    plain = normalise(code)
    assert plain is not None
    assert normalise(_full_width(code)) == plain  # ＫＭＸ７－３ＨＰＡ－...
    assert normalise(_full_width(code.lower()).replace("－", "\u3000")) == plain
    for separator in (" ", "-", "\u2010", "\u2013", "\u2014", "\u2212", "_", ".", "\u30fb",
                      "\u00b7", "\t", "\u00a0"):  # fmt: skip
        assert normalise(code.replace("-", separator)) == plain, repr(separator)
    assert KEYS.digest(_full_width(code)) == KEYS.issued_digest("notice-1", "email")
    # Still twelve characters of the alphabet and nothing else.
    assert normalise(_full_width(code) + "Ｘ") is None
    assert normalise(code.replace("-", "/")) is None
