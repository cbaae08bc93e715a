"""Normalising values before they become blind-index tokens.

The same function runs on stored values and on search values, so a search
matches whatever spelling the stored value had.
"""

from __future__ import annotations

import re
import unicodedata

from carevault.domain import hkid

HKID_SYSTEM = "http://carevault.hk/sid/hkid"

_SPACES = re.compile(r"\s+")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)

#: Prefixes longer than this are not indexed: search values are cut to it.
MAX_PREFIX = 16


def fold(text: str) -> str:
    """Case- and accent-insensitive form, as FHIR string search asks."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return stripped.casefold()


def is_cjk(character: str) -> bool:
    return "CJK" in unicodedata.name(character, "")


def name_words(text: str) -> list[str]:
    """Words of a name; a run of Chinese characters is split into characters.

    "Chan Tai-man" → chan, tai, man; "陳大文" → 陳大文, 陳, 大, 文 (the whole name too,
    so a search for the full Chinese name matches).
    """
    words: list[str] = []
    for word in _WORD.findall(fold(text)):
        if any(is_cjk(ch) for ch in word):
            words.append(word)
            words.extend(ch for ch in word if is_cjk(ch))
        else:
            words.append(word)
    return words


def prefixes(word: str) -> list[str]:
    """Every prefix of ``word`` up to MAX_PREFIX characters (FHIR string search is starts-with)."""
    return [word[:length] for length in range(1, min(len(word), MAX_PREFIX) + 1)]


def search_prefix(text: str) -> list[str]:
    """The tokens a string search value must all match: one per word, cut to MAX_PREFIX."""
    return [word[:MAX_PREFIX] for word in name_words(text) if word]


def identifier_value(system: str | None, value: str) -> str:
    """An identifier value as indexed under its system.

    Compatibility forms are folded first (NFKC: full-width ``Ａ１２３`` is ``A123``, an
    ideographic space a space), so a number typed with a Chinese input method finds the
    same patient; HKID numbers then take the ``A1234567`` form.
    """
    value = unicodedata.normalize("NFKC", value).strip()
    if system == HKID_SYSTEM:
        return hkid.normalise(value) or _SPACES.sub("", value).upper()
    return value


def identifier_any(value: str) -> str:
    """An identifier value as indexed without its system.

    Anything shaped like an HKID number takes the HKID form, so ``A123456(7)``,
    ``a1234567``, ``A 123456 (7)`` and ``Ａ１２３４５６（７）`` all find the same patient.
    """
    return hkid.normalise(value) or unicodedata.normalize("NFKC", value).strip()


def phone(value: str) -> str:
    """Digits only; a Hong Kong number with its +852 country code is kept as 8 digits."""
    digits = "".join(ch for ch in value if ch.isdigit())
    if len(digits) == 11 and digits.startswith("852"):
        return digits[3:]
    return digits


def email(value: str) -> str:
    return value.strip().casefold()


def code(value: str) -> str:
    return value.strip()
