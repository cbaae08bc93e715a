"""Password hashing (argon2id) and the rules staff passwords must meet."""

from __future__ import annotations

import pytest

from carevault.access.passwords import Passwords, WeakPassword, check_strength, same

GOOD = "correct horse battery staple"


@pytest.fixture(scope="module")
def passwords() -> Passwords:
    # The weakest parameters settings allow: these tests are about behaviour, not cost.
    return Passwords(memory_kib=8192, time_cost=1)


def test_hashes_are_salted_argon2id_with_the_configured_cost(passwords: Passwords) -> None:
    first, second = passwords.hash(GOOD), passwords.hash(GOOD)

    assert first.startswith("$argon2id$v=19$m=8192,t=1,p=2$")
    assert first != second  # salted
    assert GOOD not in first


def test_only_the_right_password_verifies(passwords: Passwords) -> None:
    stored = passwords.hash(GOOD)

    assert passwords.verify(stored, GOOD)
    assert not passwords.verify(stored, GOOD.upper())
    assert not passwords.verify(stored, GOOD + " ")
    assert not passwords.verify(stored, "")


def test_an_unknown_user_verifies_against_nothing_not_even_the_decoy(
    passwords: Passwords,
) -> None:
    """No stored hash: checked against a decoy (to take the same time) and always false."""
    assert not passwords.verify(None, GOOD)
    assert not passwords.verify(None, "decoy password that matches nothing")


@pytest.mark.parametrize("stored", ["", "not a hash", "$argon2id$v=19$m=8192,t=1,p=2$garbage"])
def test_a_damaged_hash_verifies_nothing(passwords: Passwords, stored: str) -> None:
    assert not passwords.verify(stored, GOOD)


def test_hashes_made_with_weaker_settings_need_rehashing(passwords: Passwords) -> None:
    stronger = Passwords(memory_kib=16384, time_cost=2)

    assert stronger.needs_rehash(passwords.hash(GOOD))
    assert not passwords.needs_rehash(passwords.hash(GOOD))
    assert stronger.verify(passwords.hash(GOOD), GOOD)  # still verifies until rehashed


@pytest.mark.parametrize(
    ("password", "username", "rule"),
    [
        ("short pass", "wong", "at least 12 characters"),
        ("my name is Nurse.Wong", "nurse.wong", "must not contain the username"),
        ("Password1234", "wong", "too easy to guess"),
        ("hongkong1234", "wong", "too easy to guess"),
        ("abababababababab", "wong", "too easy to guess"),
    ],
)
def test_weak_passwords_are_refused_with_the_rule_they_break(
    password: str, username: str, rule: str
) -> None:
    with pytest.raises(WeakPassword, match=rule):
        check_strength(password, username)


@pytest.mark.parametrize("password", [GOOD, "Tsim Sha Tsui 2031!", "九龍城寨的晚上真的很安靜"])
def test_long_varied_passwords_are_accepted(password: str) -> None:
    check_strength(password, "nurse.wong")


def test_same_compares_exactly() -> None:
    assert same("abc", "abc")
    assert not same("abc", "abd")
    assert not same("abc", "abc ")
