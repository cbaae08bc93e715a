"""Password hashing with argon2id, and the password rules staff passwords must meet."""

from __future__ import annotations

import hmac

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 12

#: A few of the passwords every breach list starts with; a real deployment adds its own list.
_COMMON = frozenset(
    {
        "password1234",
        "123456789012",
        "qwertyuiop12",
        "letmein12345",
        "welcome12345",
        "administrator",
        "passw0rd1234",
        "iloveyou1234",
        "hongkong1234",
        "carevault123",
    }
)


class WeakPassword(ValueError):
    """The new password does not meet the rules; the message says which."""


class Passwords:
    """argon2id hashing. Parameters come from settings (OWASP: at least 19 MiB, t=2)."""

    def __init__(self, memory_kib: int = 65_536, time_cost: int = 3, parallelism: int = 2) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        self._decoy: str | None = None

    def warm(self) -> None:
        """Make the decoy hash now (a server does this at start), not at the first sign-in
        with an unknown username, whose answer would then take twice as long."""
        self.decoy()

    def decoy(self) -> str:
        """Verified against when the account does not exist, so that the time taken does
        not tell an attacker whether a username is real. Made on first use: a CLI command
        that never verifies a password does not pay for it."""
        if self._decoy is None:
            self._decoy = self._hasher.hash("decoy password that matches nothing")
        return self._decoy

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(stored or self.decoy(), password) and stored is not None
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        return self._hasher.check_needs_rehash(stored)


def check_strength(password: str, username: str) -> None:
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_LENGTH} characters")
    lowered = password.casefold()
    if username and username.casefold() in lowered:
        raise WeakPassword("a password must not contain the username")
    if lowered in _COMMON or len(set(password)) < 5:
        raise WeakPassword("this password is too easy to guess")


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
