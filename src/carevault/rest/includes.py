"""``_include`` and ``_revinclude``: each is run as a search of its own through the gate.

An included resource is therefore found, decided and recorded exactly as if the
caller had searched for it by id (``_include``) or by the reference that points at
the page (``_revinclude``): the caller's scopes, reach and the policy apply, the
ledger holds an entry per patient, and what the caller may not see is left out.
"""

from __future__ import annotations

from collections.abc import Sequence

from carevault.fhir import jsonio
from carevault.fhir.elements import reference_targets
from carevault.fhir.indexing import reference_term
from carevault.fhir.query import Include, PatientCondition, SearchQuery, TermCondition
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate import Caller, Gate
from carevault.vault.records import Opened

#: Ids per included search: a page holds at most ``max_count`` records, each naming a few.
_IDS_PER_SEARCH = 100


def included(
    gate: Gate,
    caller: Caller,
    query: SearchQuery,
    page: Sequence[Opened],
    *,
    max_count: int,
) -> tuple[list[Opened], bool]:
    """The resources the page's includes name, each once and not already on the page;
    and whether a reverse include was cut at ``max_count`` resources."""
    shown = {(item.head.resource_type, item.head.resource_id) for item in page}
    found: dict[tuple[str, str], Opened] = {}
    cut = False
    for include in query.includes:
        if include.reverse:
            results, more = _reverse(gate, caller, include, page, max_count)
            cut = cut or more
        else:
            results = _forward(gate, caller, include, page)
        for item in results:
            key = (item.head.resource_type, item.head.resource_id)
            if key not in shown:
                found.setdefault(key, item)
    return list(found.values()), cut


def _forward(gate: Gate, caller: Caller, include: Include, page: Sequence[Opened]) -> list[Opened]:
    wanted: list[str] = []
    for item in page:
        if item.body is None:
            continue
        for target, ident in reference_targets(jsonio.load(item.body), include.param.paths):
            if target == include.target and ident not in wanted:
                wanted.append(ident)
    target_type = RESOURCE_TYPES[include.target]
    results: list[Opened] = []
    for start in range(0, len(wanted), _IDS_PER_SEARCH):
        ids = tuple(wanted[start : start + _IDS_PER_SEARCH])
        search = SearchQuery(resource_type=target_type, ids=[ids], count=len(ids))
        search.applied.append(("_id", ",".join(ids)))
        results += gate.search(caller, search)[0]
    return results


def _reverse(
    gate: Gate, caller: Caller, include: Include, page: Sequence[Opened], max_count: int
) -> tuple[list[Opened], bool]:
    ids = tuple(item.head.resource_id for item in page if item.head.resource_type == include.target)
    if not ids:
        return [], False
    search = SearchQuery(resource_type=include.source, count=max_count)
    if include.param.patient:
        search.patients.append(PatientCondition(ids))
    else:
        alternatives = tuple((reference_term(include.target, ident),) for ident in ids)
        search.terms.append(TermCondition(include.param, alternatives))
    search.applied.append((include.param.name, ",".join(ids)))
    results, total = gate.search(caller, search)
    return results, total > len(results)
