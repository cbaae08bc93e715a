"""Where a resource holds a sensitive code (``domain/sensitive.py``): anywhere in an
element (the whole walk: every element of a Coverage), or in what a claim's lines say
was done (a targeted walk).

A claim or an explanation of benefit bills for what was done: a line (``item``, with its
``detail`` and ``subDetail``, or an ``addItem``) coded "HIV viral load" tells billing what
the claim's diagnoses, cut from it, would. Walking a whole ExplanationOfBenefit for codes
cost four times the rest of telling its categories, over the 40 µs a record allowed
(``bench/element_categories``: 47 µs against 12; its lines' adjudications are most of
it), so a claim is walked but for its adjudications, which say how the insurer paid,
never what for. Every other element of a line (an extension nested in its amount, a
supporting information's coded value) and of the claim (its own extensions, its
insurance's) is walked: a clinic's profile may code anything in an extension.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from carevault.domain.sensitive import is_sensitive_code, is_sensitive_medicine

#: What a walk descends into. Built once: ``isinstance(value, dict | list)`` built the
#: union at every value it asked about, a fifth of a walk's cost.
_NESTED: tuple[type, ...] = (dict, list)


def has_sensitive_code(node: Any, skip: str | None = None) -> bool:
    """Whether a coding anywhere in ``node`` (a ``code``, with or without a ``system``:
    a code sent with none is judged against every list) is sensitive; it stops at the
    first one and builds no list, since every health record written is asked (twice in
    a bulk load). ``skip``: an element not walked, wherever it is (a claim's
    ``adjudication``)."""
    return _has_code(node, is_sensitive_code, skip)


def _has_code(node: Any, judge: Callable[[str | None, str], bool], skip: str | None) -> bool:
    """Whether ``judge(system, code)`` holds for a coding anywhere in ``node`` but in the
    elements named ``skip``; stops at the first."""
    if isinstance(node, dict):
        code = node.get("code")
        if isinstance(code, str):
            system = node.get("system")
            if judge(system if isinstance(system, str) else None, code):
                return True
        for name, value in node.items():
            if isinstance(value, _NESTED) and name != skip and _has_code(value, judge, skip):
                return True
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, _NESTED) and _has_code(item, judge, skip):
                return True
    return False


#: Financial types every element of which is judged for sensitive codes, as a visit's
#: are (``categories.CODED_TYPES``): a Coverage's type names the programme or policy
#: that pays (v3 ActCode ``HIVAIDS``, ``MENTPRG``, ``SUBPOL``: ``domain/sensitive.py``),
#: and a clinic's profile may code one in a class's type, a cost's exception or an
#: extension. A Coverage is a handful of elements with no lines or adjudications, so
#: the whole walk costs little: Synthea's 1.2 -> 2.2 µs a record (``bench/
#: element_categories``), a fuller one (coded classes, a cost, an identifier) 3.1 ->
#: 9.6 µs, where its type, class and extensions alone would save about a third.
COVERAGE_TYPES = frozenset({"Coverage"})

#: The types whose lines are judged (``claim_line_sensitive``).
CLAIM_TYPES = frozenset({"Claim", "ExplanationOfBenefit"})

#: The elements of a claim judged line by line: what it bills for (``addItem``: what an
#: insurer added to an ExplanationOfBenefit) and its supporting information (a reason
#: for the visit, a condition, coded).
CLAIM_LINES = frozenset({"item", "addItem", "supportingInfo"})

#: What a claim's walk leaves out: how the insurer paid (an adjudication's category,
#: reason and amount), never what for.
UNPAID = "adjudication"


def claim_line_sensitive(line: Any) -> bool:
    """Whether a line of a claim (``CLAIM_LINES``: an item with its details and
    sub-details, an insurer's added line, a supporting information entry) holds a
    sensitive code anywhere but in its adjudications, or bills a medicine that names a
    sensitive condition (``domain/sensitive.is_sensitive_medicine``)."""
    return _has_code(line, _sensitive_or_medicine, UNPAID)


def _sensitive_or_medicine(system: str | None, code: str) -> bool:
    return is_sensitive_code(system, code) or is_sensitive_medicine(system, code)
