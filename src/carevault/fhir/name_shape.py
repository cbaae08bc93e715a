"""The shape of a search by name, without its values: what the audit entry may say of
it. A search by first name only, or by initials, is how someone fishes for people they
know ("every Mei Ling", "K. Wong") rather than finding a patient in front of them."""

from __future__ import annotations

from collections.abc import Iterable

from carevault.fhir.normalise import name_words

NAME_PARAMS = frozenset({"name", "family", "given"})
#: Parameters that pin a patient down: with any of them a search is not vague.
PINNING = frozenset({"identifier", "phone", "email", "telecom", "birthdate", "_id", "family"})
INITIAL_CHARS = 2


def name_shape(applied: Iterable[tuple[str, str]]) -> str | None:
    """``"initials"`` when every word of every name value has at most two characters,
    ``"first-name"`` for ``given`` alone; None for anything else (no values kept)."""
    params: dict[str, list[str]] = {}
    for raw, value in applied:
        params.setdefault(raw.split(":", 1)[0], []).append(value)
    named = [v for name in NAME_PARAMS for v in params.get(name, [])]
    if not named:
        return None
    words = [word for value in named for word in name_words(value) if word]
    if words and all(len(word) <= INITIAL_CHARS for word in words):
        return "initials"
    if "given" in params and not PINNING & set(params) and "name" not in params:
        return "first-name"
    return None
