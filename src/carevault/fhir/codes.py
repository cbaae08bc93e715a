"""Where a resource holds a sensitive code (``domain/sensitive.py``): anywhere in an
element (the whole walk: every element of a Coverage), or in what a claim's lines say
was done (a targeted walk).

A claim or an explanation of benefit bills for what was done: a line (``item``, with its
``detail`` and ``subDetail``, or an ``addItem``) coded "HIV viral load" tells billing what
the claim's diagnoses, cut from it, would. Walking a whole ExplanationOfBenefit for codes
cost four times the rest of telling its categories, over the 40 µs a record allowed
(``bench/element_categories``: 47 µs against 12; its lines' adjudications and amounts
are most of it), so a line is judged on the elements that say what was done, and a
supporting information entry on its code; amounts, dates and references are not
walked. (Validation refuses elements R4 does not have, so these are all a line can code.)
"""

from __future__ import annotations

from typing import Any

from carevault.domain.sensitive import is_sensitive_code

#: What a walk descends into. Built once: ``isinstance(value, dict | list)`` built the
#: union at every value it asked about, a fifth of a walk's cost.
_NESTED: tuple[type, ...] = (dict, list)


def has_sensitive_code(node: Any) -> bool:
    """Whether a coding anywhere in ``node`` (a ``code``, with or without a ``system``:
    a code sent with none is judged against every list) is sensitive; it stops at the
    first one and builds no list, since every health record written is asked (twice in
    a bulk load)."""
    if isinstance(node, dict):
        code = node.get("code")
        if isinstance(code, str):
            system = node.get("system")
            if is_sensitive_code(system if isinstance(system, str) else None, code):
                return True
        for value in node.values():
            if isinstance(value, _NESTED) and has_sensitive_code(value):
                return True
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, _NESTED) and has_sensitive_code(item):
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

#: The elements of a claim judged whole: its type and subtype, what ``Claim?code=``
#: searches (a claim typed with a diagnosis code is as telling as one billed for it).
CLAIM_CODES = frozenset({"type", "subType"})

#: The elements of a line (of an ``item``, ``addItem``, ``detail`` or ``subDetail``) and of
#: a supporting information entry (its ``code``) that hold a code saying what was done,
#: where or why: every R4 element of a line that holds a code, but for an adjudication's,
#: which say how the insurer paid, never what for, and a supporting information's
#: ``reason`` (why it is missing). Extensions too: a clinic's profile may code it there.
_LINE_CODES = frozenset(
    {
        "revenue",
        "category",
        "productOrService",
        "modifier",
        "programCode",
        "bodySite",
        "subSite",
        "locationCodeableConcept",
        "code",
        "extension",
        "modifierExtension",
    }
)

#: The lines inside a line.
_NESTED_LINES = frozenset({"detail", "subDetail"})


def claim_line_sensitive(line: Any) -> bool:
    """Whether a line of a claim (``CLAIM_LINES``) holds a sensitive code where a line
    says what was done: in the elements of ``_LINE_CODES`` (and a primitive's extensions,
    ``_servicedDate``), of the line and of every detail and sub-detail in it. A line that
    is not an object (not valid FHIR, but stored bytes are judged as they are) is walked
    whole."""
    if not isinstance(line, dict):
        return has_sensitive_code(line)
    for name, value in line.items():
        if name in _LINE_CODES or name[:1] == "_":
            if has_sensitive_code(value):
                return True
        elif name in _NESTED_LINES:
            for nested in value if isinstance(value, list) else [value]:
                if claim_line_sensitive(nested):
                    return True
    return False
