"""Two entries of a batch or transaction Bundle that name one thing (FHIR R4).

Both refusals here are decided on the Bundle's own text, before any entry is looked up:
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
"""

from __future__ import annotations

from collections.abc import Iterable
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


def _refusal(where: str, message: str) -> FhirError:
    return FhirError(400, [Issue("invalid", f"{where}: {message}", expression=(where,))])
