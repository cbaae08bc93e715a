"""Whether a name taken from a record may be put in a notice or a letter (pure).

A name is data someone typed (a front desk, a patient portal, an integration): a
"name" such as ``Call 98765432`` or ``visit evil.com`` would turn a genuine notice,
DKIM-signed and verifiable at /verify, into a phisher's message. So a name holding a
link, an ``@``, a dotted domain or five digits or more is not shown: the notice says
"Dear patient" (「病人：」) instead. Digits are counted in every script, Chinese
numerals included. Every channel (email, SMS, printed letters) and the
console's access letter go through ``addressable``; nothing else decides.
"""

from __future__ import annotations

import re
import unicodedata

#: Dots that browsers and mail clients accept between labels of a domain name
#: (full stop, fullwidth and ideographic full stops, halfwidth ideographic full stop).
_DOTS = str.maketrans({"\uff0e": ".", "\u3002": ".", "\uff61": ".", "\u2024": "."})
_LINK = re.compile(
    r"://|\bwww\b|\b(?:https?|ftp|mailto|tel|sms|smsto|callto|whatsapp|javascript|data|file)\s*:",
    re.IGNORECASE,
)
#: A label, a dot, then two or more letters (a top-level domain): ``evil.com``,
#: ``bit.ly``, ``xn--p1ai``. ``Mr. Chan`` (a dot then a space) is not one.
_DOMAIN = re.compile(r"[^\W_]\s*\.(?:[^\W\d_]{2,}|xn--)", re.IGNORECASE)
#: Most digits a name may hold: five make a phone number's worth of a call to action.
MOST_DIGITS = 4


def _folded(name: str) -> str:
    """NFKC (fullwidth ``＠`` and digits become ASCII), the dots of other scripts as ``.``,
    and characters that draw nothing dropped (so ``evil\u200b.com`` is ``evil.com``)."""
    text = unicodedata.normalize("NFKC", name).translate(_DOTS)
    return "".join(char for char in text if unicodedata.category(char) not in ("Cf", "Cc"))


def unsafe(name: str) -> bool:
    """True if ``name`` holds a link, an ``@``, a dotted domain or 5+ digits."""
    text = _folded(name)
    if "@" in text or _LINK.search(text) or _DOMAIN.search(text):
        return True
    return sum(1 for char in text if _digit(char)) > MOST_DIGITS


#: The values a digit of a phone number has, however it is written.
_DIGIT_VALUES = frozenset(float(value) for value in range(10))


def _digit(char: str) -> bool:
    """A digit of any script, or a Chinese numeral of a digit's value (〇 一 … 九, 零, 兩
    and the banker's 壹 … 玖): ``請致電九八七六五四三二`` is a phone number to call.
    Numerals of tens and more (十 百 千 萬) are left to names, as they are no digits."""
    return char.isdigit() or (char.isnumeric() and unicodedata.numeric(char, -1.0) in _DIGIT_VALUES)


def addressable(name: str | None) -> str:
    """``name`` if it may be put in a notice or letter; otherwise "" (the templates then
    say "Dear patient" / 「病人：」)."""
    if not name or unsafe(name):
        return ""
    return name
