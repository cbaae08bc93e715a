"""Two entries of a batch or transaction Bundle that name one thing (FHIR R4).

The refusals here are decided on the Bundle's own text, before any entry is looked up:
what they answer cannot depend on which records exist, nor on which the caller may see.

- ``fullUrl``: R4 Bundle invariant bdl-7, "FullUrl must be unique in a bundle, or else
  entries with the same fullUrl must have different meta.versionId (except in history
  bundles)". In a request the ``fullUrl`` is how the Bundle's references name an entry,
  and a reference carries no version to choose between two; the server assigns versions
  itself, replacing any ``meta.versionId`` sent with a write. So a repeated ``fullUrl`` is
  refused in a batch or transaction whatever the versions.
- Conditional criteria: two entries of a transaction with the same criteria on one type
  (``request.ifNoneExist``, ``PUT`` or ``DELETE`` on ``[type]?[criteria]``) come to one
  record, whether it exists or each would create it: R4 http.html#trules, "If any
  resource identities (including resolved identities from conditional update/delete)
  overlap in steps 1-3, then the transaction SHALL fail".
- One identifier, spelt two ways: an entry of a transaction whose criteria are
  identifiers alone, and another entry whose record they would find, as the search
  reads both (``fhir/identity.py``): the identifiers the other's criteria name, or
  those its resource carries. Each entry is searched among the records stored before
  the Bundle, so neither saw the record the other wrote, and ``PUT
  Patient?identifier=<system>|<HKID>`` beside ``POST Patient`` (``ifNoneExist:
  identifier=<HKID>``, or none and the HKID in the resource) made two patients holding
  one HKID. Processed one after the other, the later entry would find the earlier's
  record: their identities overlap, whichever comes first, and the transaction fails
  (resolving both to one record would let the order of processing choose which entry's
  resource stands, and R4 says the order of the entries does not matter). A conditional
  delete is processed first (R4: DELETE, then POST, then PUT) and finds only what was
  stored before: a record created by the Bundle with the identifier it deleted is its
  successor, not an overlap.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl

from carevault.fhir.outcome import FhirError, Issue

#: Conditional criteria as compared: the type, and the parameters in any order.
CriteriaKey = tuple[str, frozenset[tuple[str, str]]]


def criteria_key(type_name: str, criteria: str) -> CriteriaKey:
    """``criteria`` (``a=1&b=2``) of ``type_name`` as two entries are compared: the same
    parameters in another order, or one repeated, search the same."""
    return type_name, frozenset(parse_qsl(criteria, keep_blank_values=True))


def refuse_repeated_full_urls(full_urls: Iterable[tuple[int, str | None]]) -> None:
    """400 naming the second of two entries (index, ``fullUrl``) with one ``fullUrl``."""
    first: dict[str, int] = {}
    for index, full_url in full_urls:
        if full_url is None:
            continue
        earlier = first.setdefault(full_url, index)
        if earlier != index:
            raise _refusal(
                f"Bundle.entry[{index}].fullUrl",
                f"Bundle.entry[{earlier}] has this fullUrl too; a fullUrl names one entry "
                "of a Bundle (bdl-7)",
            )


def refuse_repeated_criteria(criteria: Iterable[tuple[int, str, CriteriaKey]]) -> None:
    """400 naming the second of two entries (index, the element holding its criteria,
    ``criteria_key``) whose conditional criteria are the same."""
    first: dict[CriteriaKey, int] = {}
    for index, element, key in criteria:
        earlier = first.setdefault(key, index)
        if earlier != index:
            raise _refusal(
                f"Bundle.entry[{index}].{element}",
                f"Bundle.entry[{earlier}] has the same conditional criteria; both come to "
                f"one {key[0]}, which a transaction writes once",
            )


@dataclass(frozen=True)
class Identity:
    """What one entry of a transaction comes to by identifier (``fhir/identity.py``)."""

    index: int
    type_name: str
    #: Where its criteria are (``request.url``, ``request.ifNoneExist``); None for none.
    element: str | None = None
    #: A conditional delete: processed before every create and update.
    deletes: bool = False
    #: The terms a record holds when its criteria find it; empty unless they are
    #: identifiers alone.
    needs: frozenset[str] = frozenset()
    #: The terms of the identifiers its criteria name.
    named: frozenset[str] = frozenset()
    #: The identifier terms of the resource it writes.
    carried: frozenset[str] = frozenset()


def refuse_one_identity(identities: Sequence[Identity]) -> None:
    """400 naming the first entry (by its criteria) whose criteria find the record that
    another entry of the same type names or writes; a deletion's criteria are not held
    to what the others write (it is processed before them)."""
    holders: defaultdict[tuple[str, str], list[Identity]] = defaultdict(list)
    for entry in identities:
        for term in entry.named | entry.carried:
            holders[entry.type_name, term].append(entry)
    for entry in identities:
        if not entry.needs:
            continue
        term = min(entry.needs)
        for other in holders[entry.type_name, term]:
            if other.index == entry.index:
                continue
            held = other.named if entry.deletes else other.named | other.carried
            if entry.needs <= held:
                where = f"Bundle.entry[{entry.index}].{entry.element}"
                raise _refusal(
                    where,
                    f"these criteria find the {entry.type_name} written by "
                    f"Bundle.entry[{other.index}] too (by an identifier, however it is "
                    f"spelt); a transaction writes each {entry.type_name} once: send one "
                    "entry for it, or a batch, whose entries each find what the one "
                    "before wrote",
                )


def _refusal(where: str, message: str) -> FhirError:
    return FhirError(400, [Issue("invalid", f"{where}: {message}", expression=(where,))])
