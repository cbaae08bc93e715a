"""A name that could carry a phisher's call to action (a link, an @, a domain, a phone
number) is never put in a notice or letter; every real name is."""

from __future__ import annotations

import pytest

from carevault.notify.names import addressable, unsafe

PHISHING = [
    "Alice, see https://evil.example",
    "Alice www evil",
    "Alice at evil.com",
    "EVIL.COM",
    "Chan bit.ly/refund",
    "Chan evil\u200b.com",  # a zero-width space between the label and the dot
    "Chan evil\uff0ecom",  # a fullwidth full stop
    "陳大文 請登入 evil。com",  # an ideographic full stop
    "Chan xn--p1ai.xn--80asehdb",
    "refund@evil.example",
    "Chan ＠ evil",  # a fullwidth at sign
    "Call 98765432",
    "Call 9876 5432",
    "Chan ９８７６５",  # fullwidth digits
    "請致電九八七六五四三二",  # a phone number in Chinese numerals (adversary round 44)
    "陳大文 致電 九八七六 五四三二",
    "Chan 玖捌柒陸伍",  # the banker's numerals
    "mailto:help",
    "tel: 12",
    "Chan javascript:alert",
]
REAL = [
    "Alice Smith",
    "陳大文",
    "Mr. Tai Man Chan",
    "J. R. Hartley",
    "O'Neill-Wong Mei Ling",
    "Chan Tai Man 2nd",
    "Anne-Marie Dupont",
    "Ng Bounce",
    "陸萬千",  # a surname and given names that are numerals, but no phone number
    "伍千百",
]


@pytest.mark.parametrize("name", PHISHING)
def test_a_name_with_a_link_an_at_a_domain_or_five_digits_is_not_addressable(name: str) -> None:
    assert unsafe(name)
    assert addressable(name) == ""


@pytest.mark.parametrize("name", REAL)
def test_real_names_are_kept_as_they_are(name: str) -> None:
    assert addressable(name) == name


def test_four_digits_are_a_name_five_are_a_phone_number() -> None:
    assert addressable("Chan 1234") == "Chan 1234"
    assert addressable("Chan 12345") == ""
    assert addressable(None) == "" and addressable("") == ""
