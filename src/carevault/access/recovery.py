"""One-time recovery codes: the second factor when the authenticator is lost, and the
way past the per-username back-off that a crowd of addresses can hold up.

Each code is 16 characters from a 32-letter alphabet (80 random bits), shown once
when issued and stored only as its SHA-256. A code works once, with the account's
password; its use is recorded in the audit ledger by the caller. Issuing a new set
withdraws the old codes that were not used.
"""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import Engine, delete, func, insert, select, update

from carevault.access.tables import recovery_code
from carevault.clock import Clock, to_micros, utc_now
from carevault.db import read_transaction, write_transaction

#: No 0/O, 1/I: codes are read off paper.
ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
LENGTH = 16
DEFAULT_COUNT = 10


def new_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    return "-".join(raw[i : i + 4] for i in range(0, LENGTH, 4))


def normalise(text: str) -> str | None:
    """The code in ``text`` (any case, with or without dashes and spaces), or None if
    ``text`` is not shaped like a recovery code (a TOTP code is six digits)."""
    compact = text.replace("-", "").replace(" ", "").upper()
    if len(compact) != LENGTH or any(char not in ALPHABET for char in compact):
        return None
    return compact


def _hash(account_id: str, code: str) -> str:
    # Bound to the account, so the same code can never open another account's row.
    return hashlib.sha256(f"{account_id}|{code}".encode()).hexdigest()


class RecoveryCodes:
    def __init__(self, engine: Engine, clock: Clock = utc_now) -> None:
        self.engine = engine
        self.clock = clock

    def issue(self, account_id: str, count: int = DEFAULT_COUNT) -> list[str]:
        """A new set of codes for the account (shown once); unused old ones stop working."""
        codes = [new_code() for _ in range(count)]
        now_us = to_micros(self.clock())
        with write_transaction(self.engine) as connection:
            connection.execute(
                delete(recovery_code).where(
                    recovery_code.c.account_id == account_id, recovery_code.c.used_us.is_(None)
                )
            )
            connection.execute(
                insert(recovery_code),
                [
                    {
                        "code_hash": _hash(account_id, normalise(code) or ""),
                        "account_id": account_id,
                        "issued_us": now_us,
                        "used_us": None,
                        "used_from": None,
                    }
                    for code in codes
                ],
            )
        return codes

    def valid(self, account_id: str, code: str) -> bool:
        """Whether ``code`` (normalised) is an unused code of the account, without using it."""
        with read_transaction(self.engine) as connection:
            found = connection.execute(
                select(recovery_code.c.code_hash).where(
                    recovery_code.c.code_hash == _hash(account_id, code),
                    recovery_code.c.used_us.is_(None),
                )
            ).first()
        return found is not None

    def redeem(self, account_id: str, code: str, source: str | None) -> bool:
        """Use ``code`` up; False if it is not an unused code of the account (the guard on
        ``used_us`` makes the loser of two concurrent uses fail)."""
        with write_transaction(self.engine) as connection:
            used = connection.execute(
                update(recovery_code)
                .where(
                    recovery_code.c.code_hash == _hash(account_id, code),
                    recovery_code.c.account_id == account_id,
                    recovery_code.c.used_us.is_(None),
                )
                .values(used_us=to_micros(self.clock()), used_from=(source or "")[:64] or None)
            ).rowcount
        return used == 1

    def remaining(self, account_id: str) -> int:
        with read_transaction(self.engine) as connection:
            count = connection.execute(
                select(func.count())
                .select_from(recovery_code)
                .where(recovery_code.c.account_id == account_id, recovery_code.c.used_us.is_(None))
            ).scalar_one()
        return int(count)
