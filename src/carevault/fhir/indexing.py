"""Search terms of a resource: what its search parameters index, normalised.

A term is a string such as ``any|8480-6`` or ``sys|http://loinc.org|8480-6``; the
vault turns each into a blind-index token (or keeps it clear where DESIGN.md
allows). Query parsing builds terms with the same functions, so both sides agree.
"""

from __future__ import annotations

import hashlib
from datetime import tzinfo
from functools import lru_cache
from typing import Any

from carevault.domain import hkid, sensitive
from carevault.domain.categories import HEALTH_CATEGORIES, DataCategory
from carevault.fhir import dates, normalise
from carevault.fhir.categories import main_category
from carevault.fhir.elements import parse_reference, values_at
from carevault.fhir.registry import ParamKind, ResourceType, SearchParam


def any_term(value: str) -> str:
    return f"any|{value}"


def system_term(system: str | None, value: str) -> str:
    return f"sys|{system}|{value}" if system else f"nosys|{value}"


def hkid_terms(resource: dict[str, Any]) -> list[str]:
    """The ``identifier`` terms, without system, of a Patient's HKID numbers, as its
    index holds them: every identifier shaped like an HKID, whatever system it is sent
    under (legacy sources and hand-typed records send one bare or under a local OID).
    Records that share one are the same person (the scope counts them once; a second
    record of a person splits their history)."""
    found: list[str] = []
    for identifier in resource.get("identifier") or []:
        value = identifier.get("value") if isinstance(identifier, dict) else None
        if isinstance(value, str) and hkid.normalise(value) is not None:
            found.append(any_term(normalise.identifier_any(value)))
    return found


#: The medical record number ``Patient/$register`` takes as proof beside the HKID.
MRN_SYSTEM = "http://carevault.hk/sid/mrn"


def proof_terms(resource: dict[str, Any]) -> list[str]:
    """The ``identifier`` terms of what ``Patient/$register`` takes as proof of who a
    patient is: the HKID numbers (``hkid_terms``) and the group's medical record numbers
    (``MRN_SYSTEM``, as indexed under that system). A second record holding one of
    another patient's makes every registration by it ambiguous (adversary round 79)."""
    return hkid_terms(resource) + mrn_terms(resource)


def mrn_terms(resource: dict[str, Any]) -> list[str]:
    """The ``identifier`` terms of a Patient's medical record numbers (``MRN_SYSTEM``)."""
    found: list[str] = []
    for identifier in resource.get("identifier") or []:
        if not isinstance(identifier, dict) or identifier.get("system") != MRN_SYSTEM:
            continue
        value = identifier.get("value")
        text = normalise.identifier_value(MRN_SYSTEM, value) if isinstance(value, str) else ""
        if text:
            found.append(system_term(MRN_SYSTEM, text))
    return found


def system_only_term(system: str) -> str:
    """Any code or identifier value of ``system`` (a search ``system|``)."""
    return f"sysany|{system}"


def reference_term(resource_type: str, resource_id: str) -> str:
    return f"ref|{resource_type}/{resource_id}"


def _coding_terms(system: Any, code: Any) -> list[str]:
    if not isinstance(code, str) or not code.strip():
        return []
    value = normalise.code(code)
    known = system if isinstance(system, str) and system else None
    terms = [any_term(value), system_term(known, value)]
    if known:
        terms.append(system_only_term(known))
    return terms


def _token_terms(param: SearchParam, value: Any) -> list[str]:
    if isinstance(value, str):  # a code: its system is the element's, implicit
        plain = _coding_terms(None, value)[:1]
        if plain and param.implicit_system:
            plain.append(system_only_term(param.implicit_system))
        return plain
    if not isinstance(value, dict):
        return []
    if param.telecom_system is not None:
        if value.get("system") != param.telecom_system or not isinstance(value.get("value"), str):
            return []
        raw = value["value"]
        text = normalise.phone(raw) if param.telecom_system == "phone" else normalise.email(raw)
        return [any_term(text)] if text else []
    if "coding" in value:  # CodeableConcept
        terms: list[str] = []
        for coding in value.get("coding") or []:
            if isinstance(coding, dict):
                terms.extend(_coding_terms(coding.get("system"), coding.get("code")))
        return terms
    if "code" in value:  # Coding
        return _coding_terms(value.get("system"), value.get("code"))
    if isinstance(value.get("value"), str):  # Identifier
        system = value.get("system") if isinstance(value.get("system"), str) else None
        text = normalise.identifier_value(system, value["value"])
        if not text:
            return []
        terms = [any_term(normalise.identifier_any(value["value"])), system_term(system, text)]
        if system:
            terms.append(system_only_term(system))
        return terms
    return []


def _string_terms(param: SearchParam, value: Any) -> list[str]:
    texts: list[str] = []
    if isinstance(value, str):
        texts.append(value)
    elif isinstance(value, dict):
        parts = param.name_parts or ("text", "family", "given", "prefix", "suffix")
        for part in parts:
            found = value.get(part)
            if isinstance(found, str):
                texts.append(found)
            elif isinstance(found, list):
                texts.extend(item for item in found if isinstance(item, str))
    terms: list[str] = []
    for text in texts:
        for word in normalise.name_words(text):
            terms.extend(normalise.prefixes(word))
    return terms


def _reference_terms(param: SearchParam, value: Any) -> list[str]:
    parsed = parse_reference(value)
    if parsed is None or (param.targets and parsed[0] not in param.targets):
        return []
    return [reference_term(*parsed)]


def param_terms(param: SearchParam, resource: dict[str, Any], zone: tzinfo) -> set[str]:
    terms: set[str] = set()
    kind = param.kind
    for path in param.paths:
        values = values_at(resource, path)
        if not values:
            continue
        if kind is ParamKind.TOKEN:
            for value in values:
                terms.update(_token_terms(param, value))
        elif kind is ParamKind.STRING:
            for value in values:
                terms.update(_string_terms(param, value))
        elif kind is ParamKind.REFERENCE:
            for value in values:
                terms.update(_reference_terms(param, value))
        else:
            for value in values:
                terms.update(_date_terms(value, zone))
    return terms


def _date_terms(value: Any, zone: tzinfo) -> tuple[str, ...]:
    if isinstance(value, str):
        return _date_text_terms(value, zone)
    if isinstance(value, dict):
        start, end = value.get("start"), value.get("end")
        if isinstance(start, str | None) and isinstance(end, str | None):
            return _period_terms(start, end, zone) if start or end else ()
    found = dates.value_range(value, zone)
    return () if found is None else tuple(dates.tokens(found, zone))


# The same dates come back record after record (the observations of one visit share
# its time): their terms are worked out once.
@lru_cache(maxsize=1 << 16)
def _date_text_terms(text: str, zone: tzinfo) -> tuple[str, ...]:
    found = dates.value_range(text, zone)
    return () if found is None else tuple(dates.tokens(found, zone))


@lru_cache(maxsize=1 << 16)
def _period_terms(start: str | None, end: str | None, zone: tzinfo) -> tuple[str, ...]:
    period = {key: text for key, text in (("start", start), ("end", end)) if text is not None}
    found = dates.value_range(period, zone)
    return () if found is None else tuple(dates.tokens(found, zone))


def index_terms(
    resource_type: ResourceType, resource: dict[str, Any], zone: tzinfo
) -> list[tuple[SearchParam, str]]:
    """Every (parameter, term) the resource is found by; patient links are not terms."""
    found: list[tuple[SearchParam, str]] = []
    for param in _token_params(resource_type):
        found.extend((param, term) for term in sorted(param_terms(param, resource, zone)))
    return found


def index_term_rows(
    resource_type: ResourceType, resource: dict[str, Any], zone: tzinfo
) -> tuple[tuple[str, str, bool], ...]:
    """``index_terms`` as (parameter name, term, kept in the clear), what the vault
    makes tokens of: built directly, since every record written asks (a bulk load's
    thousands a second), and most parameters of a record have no value."""
    found: list[tuple[str, str, bool]] = []
    for param in _token_params(resource_type):
        terms = param_terms(param, resource, zone)
        if terms:
            name, clear = param.name, param.clear
            found.extend([(name, term, clear) for term in sorted(terms)])
    return tuple(found)


#: ``_token_params`` of each resource type, by name.
_TOKEN_PARAMS: dict[str, tuple[SearchParam, ...]] = {}


def _token_params(resource_type: ResourceType) -> tuple[SearchParam, ...]:
    """The parameters a resource of ``resource_type`` has search tokens of. Not its patient
    links (the head's pseudonym), and not the dates of a resource that is not patient
    data: those are kept in the clear (``clear_dates``), and every search and sort on them
    reads the clear rows, never a date token (``vault/search.py``). A slot's three date
    tokens were half its index rows (slots are most of a clinic group's records)."""
    found = _TOKEN_PARAMS.get(resource_type.name)
    if found is None:
        found = _TOKEN_PARAMS[resource_type.name] = tuple(
            param
            for param in resource_type.params
            if not param.patient
            and not (param.kind is ParamKind.DATE and not resource_type.is_patient_data)
        )
    return found


def clear_dates(
    resource_type: ResourceType, resource: dict[str, Any], zone: tzinfo
) -> list[tuple[str, dates.DateRange]]:
    """(parameter, range) of each date value of a resource that is not patient data:
    DESIGN.md keeps these in the clear, so ranges and sorts on them run in SQL."""
    if resource_type.is_patient_data:
        return []
    found: list[tuple[str, dates.DateRange]] = []
    for param in resource_type.params:
        if param.kind is not ParamKind.DATE:
            continue
        for path in param.paths:
            for value in values_at(resource, path):
                parsed = dates.value_range(value, zone)
                if parsed is not None:
                    found.append((param.name, parsed))
    return found


#: The pseudo-parameter of the sensitivity marker. No client can name it: a search
#: parameter that is not in the registry is refused before it reaches the vault.
SENSITIVITY = "_sensitivity"


def _rules_digest() -> str:
    """A digest of what makes a record sensitive (domain/sensitive.py). It is part of
    the marker, so a version that classifies differently does not trust the markers an
    earlier one wrote: their records count as unmarked (opened and checked) until
    ``carevault reindex`` marks them again. Fail closed, never stale."""
    rules = repr(
        (
            sorted((system, sorted(codes)) for system, codes in sensitive.SENSITIVE_CODES.items()),
            sensitive.SENSITIVE_ICD10_PREFIXES,
            sorted(sensitive.RESTRICTED_LABELS),
            sorted(sensitive.SYSTEM_ALIASES.items()),
            sensitive.SENSITIVE_ICD10_PCS_SECTIONS,
            sensitive.RULES_VERSION,
        )
    )
    return hashlib.sha256(rules.encode()).hexdigest()[:16]


_RULES = _rules_digest()
ORDINARY_TERM = f"ordinary|{_RULES}"
SENSITIVE_TERM = f"sensitive|{_RULES}"


def sensitivity_term(resource_type: ResourceType, resource: dict[str, Any]) -> str | None:
    """The marker of a health record: whether it is sensitive_clinical (withheld whole
    from roles that may not see sensitive records) or ordinary; None for other types,
    which are never withheld for sensitivity. Decided by ``main_category``, the same
    function the gate's check on an opened record uses, so SQL and the check agree."""
    if resource_type.category not in HEALTH_CATEGORIES:
        return None
    if main_category(resource_type, resource) is DataCategory.SENSITIVE_CLINICAL:
        return SENSITIVE_TERM
    return ORDINARY_TERM
