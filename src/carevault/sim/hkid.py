"""Hong Kong Identity Card numbers for the synthetic population: valid numbers, generated.

The rules (spellings, normalisation, the check digit) live in ``carevault.domain.hkid``,
which the server validates every written HKID number with; this module makes numbers
that pass them.
"""

from __future__ import annotations

import random
from bisect import bisect_right

from carevault.domain import hkid as rules
from carevault.domain.hkid import InvalidHKID, check_digit, is_valid
from carevault.sim.unique import Permutation

__all__ = ["InvalidHKID", "canonical", "check_digit", "generate", "is_valid", "normalise"]

#: Single-letter prefixes in use for residents today, weighted roughly by how
#: many living holders carry them (K, P, R, Y and Z are the common recent ones).
#: Two-letter prefixes (e.g. XA, WX) are rare and kept for generated variety.
PREFIX_WEIGHTS: dict[str, int] = {
    "A": 2, "B": 1, "C": 3, "D": 3, "E": 3, "G": 3, "H": 2, "K": 4, "M": 2,
    "P": 4, "R": 4, "S": 1, "V": 2, "Y": 4, "Z": 5, "XA": 1, "WX": 1,
}  # fmt: skip


def normalise(text: str) -> str:
    """The ``A1234563`` form of any common spelling; InvalidHKID if it is not one."""
    return "".join(rules.parts(text))


def canonical(text: str) -> str:
    """The printed ``A123456(3)`` form of any common spelling."""
    prefix, digits, check = rules.parts(text)
    return f"{prefix}{digits}({check})"


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
