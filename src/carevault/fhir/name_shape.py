"""The shape of a search by name, without its values: what the audit entry may say of
it. A search by first name only, or by initials, is how someone fishes for people they
know ("every Mei Ling", "K. Wong") rather than finding a patient in front of them."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from carevault.fhir.normalise import is_cjk, name_words

NAME_PARAMS = frozenset({"name", "family", "given"})
#: Parameters that pin a patient down whatever their value: with any of them a search is
#: not vague. ``family``, ``name`` and ``birthdate`` pin only with a value that narrows
#: (``_pins``).
PINNING = frozenset({"identifier", "phone", "email", "telecom", "_id"})
INITIAL_CHARS = 2
#: A birth date that names one day (``1980-01-02``, ``eq1980-01-02``): what a patient at
#: the counter tells. A range or a prefix other than ``eq`` (``ge1900-01-01``) may hold
#: everyone, and a year most of a family.
_ONE_DAY = re.compile(r"^(eq)?\d{4}-\d{2}-\d{2}$")


def name_shape(applied: Iterable[tuple[str, str]]) -> str | None:
    """``"initials"`` when every word of every name value has at most two characters,
    ``"first-name"`` for ``given`` with nothing that pins the patient down (``_pins``);
    None for anything else (no values kept)."""
    params: dict[str, list[str]] = {}
    for raw, value in applied:
        params.setdefault(raw.split(":", 1)[0], []).append(value)
    named = [v for name in NAME_PARAMS for v in params.get(name, [])]
    if not named:
        return None
    words = [word for value in named for word in name_words(value) if word]
    if words and all(len(word) <= INITIAL_CHARS for word in words):
        return "initials"
    if "given" in params and not _pins(params):
        return "first-name"
    return None


def _pins(params: Mapping[str, Sequence[str]]) -> bool:
    """Whether criteria beside ``given`` narrow it to someone: an identifier, a contact
    point or an id; a birth date naming one day; a family name more than an initial; a
    ``name`` word that is neither an initial nor one of the given names (the family name
    typed in the one box). Adversary round 59: a vacuous bound (``birthdate=ge1900-01-01``),
    a family initial (``family=C``) or the given name again (``name=Mei``) beside
    ``given=Mei Ling`` found every Mei Ling, and the search was taken as pinned."""
    if PINNING & set(params):
        return True
    if any(_ONE_DAY.match(value.strip()) for value in params.get("birthdate", ())):
        return True
    if any(_whole(word) for value in params.get("family", ()) for word in name_words(value)):
        return True
    given = [word for value in params.get("given", ()) for word in name_words(value) if word]
    return any(
        _whole(word) and not _same_name(word, given)
        for value in params.get("name", ())
        for word in name_words(value)
    )


def _whole(word: str) -> bool:
    """A word that is more than an initial: two letters (Ho, Ng are surnames) or a
    Chinese character (陳 is one)."""
    return len(word) >= 2 or (len(word) == 1 and is_cjk(word))


def _same_name(word: str, given: Sequence[str]) -> bool:
    """Whether ``word`` searched as a name would find the given names anyway: one of them,
    or a prefix of one, or one of them (more than an initial) is its prefix."""
    return any(name.startswith(word) or (_whole(name) and word.startswith(name)) for name in given)
