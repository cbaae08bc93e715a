"""``?status=`` on the officers' listings (alerts, incidents, exports): one of the
listing's statuses, or the request is refused naming them. An unknown status taken as a
filter would answer an empty list (no row has it), and one ignored would answer every
row: either way an officer who mistyped would read the wrong picture as the right one."""

from __future__ import annotations

from collections.abc import Collection

from carevault.fhir.outcome import FhirError, Issue


def status_filter(value: str | None, statuses: Collection[str]) -> str | None:
    """``value`` if it is one of ``statuses`` (None: no filter), else a 400 naming them."""
    if value is not None and value not in statuses:
        raise FhirError(400, [Issue("invalid", f"status must be one of {', '.join(statuses)}")])
    return value
