"""Which records conditional criteria of identifiers find, in the search's own terms.

A transaction's conditional entries are each searched among the records stored before
the Bundle (``rest/transaction.py``), so whether one entry finds the record another one
writes is decided here, on the Bundle's text: the criteria's terms are made by the
function the search makes them with (``query.token_term``), and a resource's by the one
its index is made with (``indexing.param_terms``). ``identifier=K1234567`` and
``identifier=http://carevault.hk/sid/hkid|K123456(7)`` are two spellings of one search
for a record holding that HKID; a record created with it is found by both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from carevault.domain import hkid
from carevault.fhir import normalise
from carevault.fhir.indexing import any_term, param_terms, system_only_term
from carevault.fhir.query import SearchError, split_values, token_term
from carevault.fhir.registry import ResourceType


@dataclass(frozen=True)
class NamedIdentifiers:
    """What conditional criteria ask of a record by the identifiers they name."""

    #: The terms a record holds, every one, when the criteria find it. A Patient's HKID
    #: is asked without its system: a number shaped like an HKID is one person's under
    #: whatever system it is sent (``indexing.hkid_terms``), so a record carrying it
    #: under a local system is that person's record too.
    needs: frozenset[str]
    #: The terms a record holding the identifiers named holds: what the record found, or
    #: deleted, by these criteria carries.
    holds: frozenset[str]


def named_identifiers(
    rt: ResourceType, params: Sequence[tuple[str, str]]
) -> NamedIdentifiers | None:
    """What ``params`` (conditional criteria) ask of a record by their identifiers, each
    one value (``identifier=[system|]value``, repeated or not); None for criteria naming
    no identifier, or a list of them, or a modifier of one, which this does not judge.

    Other parameters beside the identifiers (``identifier=…&birthdate=…``, a common
    ``ifNoneExist``) only narrow what the identifiers find: a record they find holds the
    identifiers still, so the criteria are judged by them (review of stop 65: the two
    entries of such criteria spelt two ways made two patients of one HKID). A record
    carrying the identifiers that the other parameters would pass over (another birth
    date) is counted as found: the Bundle is refused rather than write two records of
    one HKID, as processing it in one order or the other could."""
    param = rt.param("identifier")
    if param is None:
        return None
    needs: set[str] = set()
    holds: set[str] = set()
    for name, value in params:
        if rt.param(name.partition(":")[0]) is not param:
            continue
        parts = [part for part in split_values(value) if part]
        if name != "identifier" or len(parts) != 1:
            return None
        text = parts[0]
        try:
            term = token_term(param, text)
        except SearchError:
            return None  # refused when the entry is searched, as alone
        if term is None:
            return None
        system, bar, code = text.partition("|")
        number = code if bar else text
        if rt.is_patient and hkid.normalise(number) is not None:
            term = any_term(normalise.identifier_any(number))
        needs.add(term)
        if not bar:
            holds.add(any_term(normalise.identifier_any(text)))
        elif not code:
            holds.add(system_only_term(system))
        else:
            named = {"value": code, **({"system": system} if system else {})}
            holds.update(param_terms(param, {"identifier": [named]}, UTC))
    if not needs:
        return None
    return NamedIdentifiers(frozenset(needs), frozenset(holds))


def carried_identifiers(rt: ResourceType, resource: dict[str, Any]) -> frozenset[str]:
    """The ``identifier`` terms ``resource`` will be found by once written."""
    param = rt.param("identifier")
    if param is None:
        return frozenset()
    return frozenset(param_terms(param, resource, UTC))
