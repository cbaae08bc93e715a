"""How a reference inside a Bundle names another entry (FHIR R4 bundle.html#references).

A relative reference ``[type]/[id]`` in an entry whose ``fullUrl`` is a RESTful URL is
read against that URL's base: ``Patient/abc`` in the entry
``http://example.org/fhir/Observation/o1`` names ``http://example.org/fhir/Patient/abc``,
and so the entry of that ``fullUrl`` if the Bundle has one. Only then; in an entry named
by a ``urn:uuid:`` (or not named) it is a reference to the server's own record.
"""

from __future__ import annotations

import re

# R4's RESTful URL shape (references.html#regex), the type left open: the server refuses
# types it does not store elsewhere.
_RESTFUL = re.compile(
    r"(?P<base>https?://(?:[A-Za-z0-9\-\\.:%$]*/)+)"
    r"[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}(?:/_history/[A-Za-z0-9\-.]{1,64})?"
)
_RELATIVE = re.compile(r"[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}")


def absolute(reference: str, full_url: str | None) -> str | None:
    """The absolute URL a relative ``[type]/[id]`` reference names in an entry whose
    ``fullUrl`` is ``full_url``; None where it names none (another form of reference,
    or an entry without a RESTful ``fullUrl``)."""
    if full_url is None or _RELATIVE.fullmatch(reference) is None:
        return None
    restful = _RESTFUL.fullmatch(full_url)
    if restful is None:
        return None
    return restful.group("base") + reference
