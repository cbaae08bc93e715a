"""Distinct values for a stream of any length, without remembering the ones handed out."""

from __future__ import annotations

import random
from math import gcd


class Permutation:
    """A keyed affine permutation of ``range(size)``: index → a distinct, scattered slot.

    Patients are generated as a stream; a set of every HKID or phone number
    handed out would grow with the stream. A bijection needs constant memory.
    """

    def __init__(self, rng: random.Random, size: int) -> None:
        if size < 2:
            raise ValueError("a permutation needs at least two slots")
        self.size = size
        self._offset = rng.randrange(size)
        while True:
            multiplier = rng.randrange(1, size)
            if gcd(multiplier, size) == 1:
                break
        self._multiplier = multiplier

    def __call__(self, index: int) -> int:
        if not 0 <= index < self.size:
            raise ValueError(f"only {self.size} distinct values are available")
        return (index * self._multiplier + self._offset) % self.size
