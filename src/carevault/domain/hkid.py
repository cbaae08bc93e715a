"""Hong Kong Identity Card numbers: the spellings people use, and the check digit.

An HKID number is one or two letters, six digits and a check digit (0-9 or A),
printed as ``A123456(3)``. People and systems also write ``a1234563``,
``A 123456 (3)``, ``A123456-3`` (a dash before the check digit), ``HKID A123456(3)``
(the card's name before it) or, from Chinese input methods, full-width
``Ａ１２３４５６（３）``; a number pasted from a web page may carry invisible format
characters (a zero-width space, Unicode category Cf, or another character that shows
as nothing), which NFKC keeps. ``normalise`` folds every such spelling (NFKC, invisible
characters dropped, case, spaces, brackets, the dash, the label) into ``A1234563``, the
form blind indexes are made of. The two spellings a record number could have too (a
dash before the last digit, a word before the number) count only with a check digit
that matches: ``M123456-2`` is a lab's accession, ``ICU2024003`` an admission number. A
number without its check digit (``A123456``) is not an HKID's shape: under a local
system it collides with record numbers; under the HKID system it is refused as no valid
HKID.

The check digit makes the weighted sum of all characters divisible by 11: a
single-letter prefix is padded on the left with a space worth 36, letters are worth
A=10 … Z=35, and the eight leading positions are weighted 9, 8, … 2 (the check digit
itself weighs 1, with A standing for 10). Published examples: ``A123456(3)``,
``G123456(A)``, ``AB123456(9)``, ``CA182361(1)``.
"""

from __future__ import annotations

import re
import unicodedata

#: The card's name written before the number, then a separator: ``HKID``, ``HKIC``,
#: ``ID``, ``HKID card no.:``, ``Identity Card No.``, ``Hong Kong ID``, and in Chinese
#: ``香港身份證號碼``, ``身份証号：`` and the like. Read before spaces are folded away, and an
#: English name must be followed by a space or ``.:#``: folded, any record number whose
#: letters begin ``ID`` or ``IC`` (an ICU admission number ``ICU2024003``) read as a
#: label and an HKID (review of stop 66).
_LABEL = re.compile(
    r"^\s*(?:"
    r"(?:HONG\s*KONG\s*|HK\s*)?(?:IDENTITY\s*CARD|I[DC])(?:\s*CARD)?(?:\s*(?:NO|NUMBER))?[\s.:#]+"
    r"|(?:香港)?身份[證证](?:號碼|号码|號|号)?[\s.:#]*"
    r")"
)
#: A dash before the check digit, as typed or as a word processor makes it. Not between
#: the letters and the digits: the group's record numbers are ``TM-0000042`` (a clinic's
#: letters, a dash, seven digits), which would read as an HKID.
_DASH = "[-\u2010-\u2015\u2212]"
_SHAPE = re.compile(rf"^([A-Z]{{1,2}})(\d{{6}})({_DASH})?(?:\(([0-9A])\)|([0-9A]))$")
#: Characters a renderer shows as nothing that are not format characters (Unicode's
#: Default_Ignorable_Code_Point beyond category Cf): the combining grapheme joiner,
#: Hangul fillers, Mongolian and other variation selectors. NFKC keeps them.
_IGNORABLE = re.compile(
    "[\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180d\u180f\u3164\ufe00-\ufe0f\uffa0"
    "\U000e0100-\U000e01ef]"
)
_SPACES = re.compile(r"\s+")
#: Six digits, a space between any two (``A 123 456 (3)``, once spaces are one each).
_SERIAL = "[0-9](?: ?[0-9]){5}"
#: Cyrillic and Greek capitals drawn as Latin ones (Unicode's confusables): NFKC keeps
#: them, and ``К987654(5)`` with a Cyrillic Ka reads as an HKID to anyone who sees it.
_LOOKALIKES = str.maketrans(
    "АВЕЅІЈКМНОРСТХУ" + "ΑΒΕΖΗΙΚΜΝΟΡΤΥΧ",
    "ABESIJKMHOPCTXY" + "ABEZHIKMNOPTYX",
)
#: An HKID anywhere in a text (``holds``), its check digit in brackets: round, square,
#: or the corner and lenticular ones Chinese input methods type (NFKC folds the
#: full-width round and square ones). Unambiguous, so whatever is around it, letters and
#: digits too (``HKIDK987654(5)``, ``K987654(5)01``); a dash may stand between the
#: letters and the digits (``K-987654(5)``).
_BRACKETED = re.compile(
    rf"([A-Z]{{1,2}}) ?(?:{_DASH} ?)?({_SERIAL}) ?[(\[\u3010\u300c\u300e\u3014]"
    r" ?([0-9A]) ?[)\]\u3011\u300d\u300f\u3015]"
)
#: An HKID anywhere in a text written without brackets: not inside a longer word or
#: number, the check digit right after the serial or after a dash, a slash, a dot or a
#: space, what surrounds it (``HKID=``, ``Member``, a full stop) left aside. No dash
#: between the letters and the digits: ``TM-0000042`` is a record number of the group's.
_PLAIN = re.compile(
    rf"(?<![A-Z0-9])([A-Z]{{1,2}}) ?({_SERIAL}) ?(?:{_DASH}|[/.])? ?([0-9A])(?![A-Z0-9])"
)
_SPACE_VALUE = 36
_WEIGHTS = (9, 8, 7, 6, 5, 4, 3, 2)


class InvalidHKID(ValueError):
    """The text is not shaped like an HKID number (the message never quotes it)."""


def _char_value(character: str) -> int:
    if character == " ":
        return _SPACE_VALUE
    if character.isdigit():
        return int(character)
    return ord(character) - ord("A") + 10


def check_digit(prefix: str, digits: str) -> str:
    """The check digit of ``prefix`` (one or two capital letters) and six ``digits``."""
    if not (1 <= len(prefix) <= 2 and prefix.isascii() and prefix.isalpha() and prefix.isupper()):
        raise InvalidHKID("the prefix must be one or two capital letters")
    if not (len(digits) == 6 and digits.isascii() and digits.isdigit()):
        raise InvalidHKID("the serial must be six digits")
    body = prefix.rjust(2) + digits
    total = sum(weight * _char_value(ch) for weight, ch in zip(_WEIGHTS, body, strict=True))
    check = (11 - total % 11) % 11
    return "A" if check == 10 else str(check)


def _clean(text: str) -> str:
    """NFKC (full-width letters, digits and brackets become ASCII), without what shows as
    nothing (format characters, category Cf: zero-width spaces and joiners, soft hyphens,
    direction marks; and the other default-ignorable ones), upper case."""
    if not text.isascii():
        text = _IGNORABLE.sub(
            "",
            "".join(
                ch for ch in unicodedata.normalize("NFKC", text) if unicodedata.category(ch) != "Cf"
            ),
        )
        return text.upper().translate(_LOOKALIKES)
    return text.upper()


def fold(text: str) -> str:
    """``_clean``, and no spaces."""
    return _SPACES.sub("", _clean(text))


def parts(text: str) -> tuple[str, str, str]:
    """Prefix, six digits and check character of any common spelling; InvalidHKID if the
    text is not shaped like an HKID number. The check digit is verified only where the
    spelling is one a record number could have too (the card's name before it, a dash
    before the check digit: ``ID 1234567``, ``M123456-2``, an accession number): there
    a wrong one says it is no HKID (review of stop 66); the plain shape is one whatever
    its check digit."""
    cleaned = _clean(text)
    label = _LABEL.match(cleaned)
    match = _SHAPE.match(_SPACES.sub("", cleaned[label.end() :] if label else cleaned))
    if match is None or not match.group(2).isascii():
        raise InvalidHKID("not shaped like an HKID number")
    prefix, digits, dash, bracketed, bare = match.groups()
    check = bracketed or bare
    if (label is not None or dash is not None) and check_digit(prefix, digits) != check:
        raise InvalidHKID("not shaped like an HKID number")
    return prefix, digits, check


def normalise(text: str) -> str | None:
    """The ``A1234563`` form of any spelling shaped like an HKID number, else None.

    A number written plainly is judged by its shape, not its check digit: a search for a
    mistyped number must still normalise the way the stored value it is compared with
    did. Written with a dash before the check digit or the card's name before it, it
    counts only with a check digit that matches (``parts``): record numbers are spelt
    so too.
    """
    try:
        return "".join(parts(text))
    except InvalidHKID:
        return None


def is_valid(text: str) -> bool:
    """Whether ``text`` is an HKID number in any common spelling whose check digit matches."""
    try:
        prefix, digits, check = parts(text)
    except InvalidHKID:
        return False
    return check_digit(prefix, digits) == check


#: A letter and six digits, perhaps spaced, perhaps a dash between them
#: (``A 123 456 (3)``, ``K-987654(5)``): what every HKID holds. Text in ASCII without
#: them holds none, and most identifiers (UUIDs, record numbers) are told so by this one
#: search instead of the folds below (``holds`` runs on every Identifier of every write
#: and bulk import).
_LETTER_AND_SERIAL = re.compile(r"[A-Za-z]\s*(?:-\s*)?[0-9](?:\s*[0-9]){5}")


def _may_hold(text: str) -> bool:
    return not text.isascii() or _LETTER_AND_SERIAL.search(text) is not None


def holds(text: str) -> bool:
    """Whether an HKID whose check digit matches is written anywhere in ``text``:
    ``K987654(5).``, ``K987654(5)-01``, ``Member K987654(5)``, ``HKID=K987654(5)``,
    ``K987654[5]``, ``K987654/5`` as well as the spellings ``is_valid`` takes
    (adversary round 85). One of the same letters and digits whose check digit does not
    match is no HKID, however written: a clinic's accession, claim and visit numbers
    (``VN1234567``) and an insurer's member numbers are spelt so (adversary round 85;
    review of stop 66)."""
    if not _may_hold(text):
        return False
    cleaned = _SPACES.sub(" ", _clean(text))
    # Bracketed, a two-letter prefix found may be a label's last letter and the number's
    # one (``HKIDK987654(5)``): both are tried.
    for prefix, serial, check in _BRACKETED.findall(cleaned):
        digits = serial.replace(" ", "")
        if check in (check_digit(prefix, digits), check_digit(prefix[-1], digits)):
            return True
    return any(
        check_digit(prefix, serial.replace(" ", "")) == check
        for prefix, serial, check in _PLAIN.findall(cleaned)
    )


def printed_as_one(text: str) -> bool:
    """Whether the whole of ``text`` is written as an HKID is printed: one or two
    letters, six digits and the check character in brackets (``A123456(4)``), whatever
    the check digit. As an Identifier's value, under any system, such a number mistyped
    is one still, and tells the real one; clinics do not print their own numbers so."""
    if not _may_hold(text):
        return False
    match = _SHAPE.match(fold(text))
    return match is not None and match.group(4) is not None
