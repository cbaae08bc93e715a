"""TOTP (RFC 6238) with a window for clock drift and replay protection."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable

import pytest

from carevault.access import totp

#: RFC 6238 Appendix B (SHA-1): the ASCII secret "12345678901234567890"; our codes are the
#: last six digits of its eight-digit values.
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()
RFC_VECTORS = [(59, "287082"), (1111111109, "081804"), (1234567890, "005924")]
NOW = 1_700_000_000.0
STEP = int(NOW // totp.STEP_SECONDS)


@pytest.mark.parametrize(("at", "code"), RFC_VECTORS)
def test_codes_are_the_rfc_6238_ones(at: int, code: str) -> None:
    step = at // totp.STEP_SECONDS

    assert totp.code_at(RFC_SECRET, step) == code
    assert totp.verify(RFC_SECRET, code, last_step=None, now=at) == step


def test_new_secrets_are_160_bit_base32_and_random() -> None:
    secrets = {totp.new_secret() for _ in range(20)}

    assert len(secrets) == 20
    for secret in secrets:
        assert re.fullmatch(r"[A-Z2-7]{32}", secret)
        assert len(base64.b32decode(secret)) == 20


def test_the_provisioning_uri_names_the_account_and_issuer() -> None:
    uri = totp.provisioning_uri(RFC_SECRET, "nurse.wong", "CareVault")

    assert uri.startswith("otpauth://totp/CareVault:nurse.wong?")
    assert f"secret={RFC_SECRET}" in uri
    assert "issuer=CareVault" in uri


@pytest.mark.parametrize(
    ("offset", "accepted"), [(-2, False), (-1, True), (0, True), (1, True), (2, False)]
)
def test_a_code_one_step_either_side_of_now_is_accepted(offset: int, accepted: bool) -> None:
    code = totp.code_at(RFC_SECRET, STEP + offset)

    found = totp.verify(RFC_SECRET, code, last_step=None, now=NOW)

    assert found == (STEP + offset if accepted else None)


def test_a_window_of_zero_accepts_only_the_current_step() -> None:
    assert (
        totp.verify(RFC_SECRET, totp.code_at(RFC_SECRET, STEP), last_step=None, now=NOW, window=0)
        == STEP
    )
    assert (
        totp.verify(
            RFC_SECRET, totp.code_at(RFC_SECRET, STEP - 1), last_step=None, now=NOW, window=0
        )
        is None
    )


def test_a_code_for_the_last_accepted_step_or_earlier_is_a_replay() -> None:
    current = totp.code_at(RFC_SECRET, STEP)
    previous = totp.code_at(RFC_SECRET, STEP - 1)
    following = totp.code_at(RFC_SECRET, STEP + 1)

    assert totp.verify(RFC_SECRET, current, last_step=STEP, now=NOW) is None
    assert totp.verify(RFC_SECRET, previous, last_step=STEP, now=NOW) is None
    assert totp.verify(RFC_SECRET, current, last_step=STEP - 1, now=NOW) == STEP
    assert totp.verify(RFC_SECRET, following, last_step=STEP, now=NOW) == STEP + 1


def test_spaces_around_and_inside_a_code_are_ignored() -> None:
    code = totp.code_at(RFC_SECRET, STEP)

    assert totp.verify(RFC_SECRET, f" {code[:3]} {code[3:]} ", last_step=None, now=NOW) == STEP


def _full_width(code: str) -> str:
    return code.translate({ord("0") + n: 0xFF10 + n for n in range(10)})


def _arabic_indic(code: str) -> str:
    return code.translate({ord("0") + n: 0x0660 + n for n in range(10)})


@pytest.mark.parametrize(
    "mangle",
    [
        lambda code: code[:-1],
        lambda code: code + "0",
        lambda code: "abcdef",
        lambda code: "",
        lambda code: code[:-1] + "x",
        _full_width,  # digits to isdigit(), but not to the HMAC: refused, not a crash
        _arabic_indic,
    ],
)
def test_anything_but_six_ascii_digits_is_refused(mangle: Callable[[str], str]) -> None:
    code = totp.code_at(RFC_SECRET, STEP)

    assert totp.verify(RFC_SECRET, mangle(code), last_step=None, now=NOW) is None


def test_a_code_of_another_secret_is_refused() -> None:
    other = base64.b32encode(b"another secret 12345").decode()

    assert totp.verify(RFC_SECRET, totp.code_at(other, STEP), last_step=None, now=NOW) is None
