"""``Patient/[id]/$everything`` invoked by POST: its Parameters body as the query's
``(name, text)`` pairs.

R4 operations.html: an operation is invoked by POST with a Parameters body, and "may"
also be invoked by GET when it changes nothing and its parameters are all primitive.
POST is the form every client may use (fhirpy's ``resource.execute("$everything")``
posts), so it is taken as GET is, each part read exactly as the same parameter in the
query string (``rest.interactions.everything_query``, which refuses any it does not
take). A part is accepted only in the ``value[x]`` R4's Patient-everything gives it (or
a string, the query's own text): one in another type is refused, never dropped.
"""

from __future__ import annotations

from collections.abc import Sequence

from carevault.fhir.outcome import FhirError, Issue
from carevault.fhir.parameters import Part
from carevault.fhir.query import safe_name

#: The value types each parameter is taken in (R4 Patient-everything: start and end are
#: dates, _since an instant, _type a code, _count an integer).
VALUE_TYPES: dict[str, frozenset[str]] = {
    "start": frozenset({"valueDate", "valueDateTime", "valueString"}),
    "end": frozenset({"valueDate", "valueDateTime", "valueString"}),
    "_since": frozenset({"valueInstant", "valueDateTime", "valueString"}),
    "_type": frozenset({"valueCode", "valueString"}),
    "_count": frozenset({"valueInteger", "valueUnsignedInt", "valuePositiveInt", "valueString"}),
}


def body_params(body: Sequence[Part]) -> list[tuple[str, str]]:
    """The parts as query pairs, repeats kept; 400 naming the first part not taken."""
    params: list[tuple[str, str]] = []
    for part in body:
        name = safe_name(part.name)
        accepted = VALUE_TYPES.get(part.name)
        if accepted is None:
            raise _refused(f"$everything does not support '{name}'")
        if part.value_type not in accepted:
            given = " or ".join(sorted(accepted))
            raise _refused(f"$everything: give {name} as {given}")
        value = part.value
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise _refused(f"$everything: {name} has no usable value")
        params.append((part.name, str(value)))
    return params


def _refused(diagnostics: str) -> FhirError:
    return FhirError(400, [Issue("invalid", diagnostics)])
