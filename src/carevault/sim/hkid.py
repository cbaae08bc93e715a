"""Hong Kong Identity Card numbers: check digit, validation, normalisation, generation.

An HKID number is one or two letters, six digits and a check digit (0-9 or A),
printed as ``A123456(3)``. The check digit makes the weighted sum of all
characters divisible by 11: a single-letter prefix is padded on the left with a
space worth 36, letters are worth A=10 … Z=35, and the eight leading positions
are weighted 9, 8, … 2 (the check digit itself weighs 1, with A standing for 10).
Published examples: ``A123456(3)``, ``G123456(A)``, ``AB123456(9)``, ``CA182361(1)``.
"""

from __future__ import annotations

import random
import re
from bisect import bisect_right

from carevault.sim.unique import Permutation

_SHAPE = re.compile(r"^([A-Z]{1,2})(\d{6})(?:\(([0-9A])\)|([0-9A]))$")
_WHITESPACE = re.compile(r"\s+")
_SPACE_VALUE = 36
_WEIGHTS = (9, 8, 7, 6, 5, 4, 3, 2)

#: Single-letter prefixes in use for residents today, weighted roughly by how
#: many living holders carry them (K, P, R, Y and Z are the common recent ones).
#: Two-letter prefixes (e.g. XA, WX) are rare and kept for generated variety.
PREFIX_WEIGHTS: dict[str, int] = {
    "A": 2, "B": 1, "C": 3, "D": 3, "E": 3, "G": 3, "H": 2, "K": 4, "M": 2,
    "P": 4, "R": 4, "S": 1, "V": 2, "Y": 4, "Z": 5, "XA": 1, "WX": 1,
}  # fmt: skip


class InvalidHKID(ValueError):
    """The text is not shaped like an HKID number."""


def _char_value(character: str) -> int:
    if character == " ":
        return _SPACE_VALUE
    if character.isdigit():
        return int(character)
    return ord(character) - ord("A") + 10


def check_digit(prefix: str, digits: str) -> str:
    """The check digit of ``prefix`` (one or two capital letters) and six ``digits``."""
    if not (1 <= len(prefix) <= 2 and prefix.isalpha() and prefix.isupper()):
        raise InvalidHKID(f"prefix must be one or two capital letters: {prefix!r}")
    if not (len(digits) == 6 and digits.isdigit()):
        raise InvalidHKID(f"serial must be six digits: {digits!r}")
    body = prefix.rjust(2) + digits
    total = sum(weight * _char_value(ch) for weight, ch in zip(_WEIGHTS, body, strict=True))
    check = (11 - total % 11) % 11
    return "A" if check == 10 else str(check)


def _parse(text: str) -> tuple[str, str, str]:
    match = _SHAPE.match(_WHITESPACE.sub("", text).upper())
    if match is None:
        raise InvalidHKID(f"not an HKID number: {text!r}")
    prefix, digits, bracketed, bare = match.groups()
    return prefix, digits, bracketed or bare


def normalise(text: str) -> str:
    """The ``A1234563`` form of any common spelling (case, spaces, brackets ignored).

    Only the shape is checked, not the check digit: a search for a mistyped number
    must still normalise the same way as the stored value it is compared with.
    """
    return "".join(_parse(text))


def canonical(text: str) -> str:
    """The printed ``A123456(3)`` form of any common spelling."""
    prefix, digits, check = _parse(text)
    return f"{prefix}{digits}({check})"


def is_valid(text: str) -> bool:
    """Whether ``text`` is a well-formed HKID number whose check digit matches."""
    try:
        prefix, digits, check = _parse(text)
    except InvalidHKID:
        return False
    return check_digit(prefix, digits) == check


def from_parts(prefix: str, serial: int) -> str:
    """The canonical number with ``prefix`` and the six-digit ``serial``."""
    digits = f"{serial:06d}"
    return f"{prefix}{digits}({check_digit(prefix, digits)})"


def generate(rng: random.Random) -> str:
    """A random, valid number in canonical form, with a realistic prefix."""
    prefixes = list(PREFIX_WEIGHTS)
    prefix = rng.choices(prefixes, weights=list(PREFIX_WEIGHTS.values()))[0]
    return from_parts(prefix, rng.randrange(1_000_000))


class UniqueNumbers:
    """Hands out distinct HKID numbers for index 0, 1, 2 … in constant memory.

    Each prefix owns a block of serials proportional to its weight; a keyed
    permutation maps an index to one slot of one block.
    """

    _BLOCK = 50_000

    def __init__(self, rng: random.Random) -> None:
        self._starts: list[int] = []
        self._prefixes: list[str] = []
        position = 0
        for prefix, weight in PREFIX_WEIGHTS.items():
            self._starts.append(position)
            self._prefixes.append(prefix)
            position += weight * self._BLOCK
        self._slots = Permutation(rng, position)
        # Scatters a block over all million serials: odd and not a multiple of 5,
        # so multiplying by it is a bijection modulo 10**6.
        self._spread = rng.randrange(1, 100_000) * 10 + 7

    @property
    def capacity(self) -> int:
        return self._slots.size

    def number(self, index: int) -> str:
        slot = self._slots(index)
        block = bisect_right(self._starts, slot) - 1
        serial = ((slot - self._starts[block]) * self._spread) % 1_000_000
        return from_parts(self._prefixes[block], serial)
