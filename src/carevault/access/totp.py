"""TOTP second factor (RFC 6238) with replay protection.

pyotp alone accepts the same code again within its window; here the time step of
the last accepted code is stored and a code is accepted only for a later step.
"""

from __future__ import annotations

import hmac
import time

import pyotp

STEP_SECONDS = 30
DIGITS = 6


def new_secret() -> str:
    """A random 160-bit secret, base32 as authenticator apps expect."""
    return pyotp.random_base32(length=32)


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=account, issuer_name=issuer
    )


def code_at(secret: str, step: int) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).generate_otp(step)


def verify(
    secret: str, code: str, *, last_step: int | None, now: float | None = None, window: int = 1
) -> int | None:
    """The time step ``code`` belongs to, if it is valid and newer than ``last_step``.

    ``window`` steps either side absorb clock drift. A code for ``last_step`` or
    earlier is refused: that is a replay.
    """
    code = code.strip().replace(" ", "")
    # isdigit() alone also accepts non-ASCII digits (e.g. full-width), which
    # hmac.compare_digest refuses with a TypeError: a crash instead of a refusal.
    if len(code) != DIGITS or not (code.isascii() and code.isdigit()):
        return None
    current = int((time.time() if now is None else now) // STEP_SECONDS)
    for step in range(current - window, current + window + 1):
        if last_step is not None and step <= last_step:
            continue
        if hmac.compare_digest(code_at(secret, step), code):
            return step
    return None
