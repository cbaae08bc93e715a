"""The ``Prefer`` request header of a request, every line of it (RFC 7240 section 2:
several lines mean one line of their values joined by commas), read as
``rest.answers.preferences`` reads it. Reading only the first line, case for case,
refused ``$export`` and ``$import`` kick-offs that asked for ``respond-async`` in a way the
RFC allows (integrator round 60).
"""

from __future__ import annotations

from starlette.requests import Request

from carevault.rest.answers import preferences


def prefer_header(request: Request) -> str | None:
    """The request's ``Prefer`` lines as one (None without any)."""
    lines = request.headers.getlist("prefer")
    return ", ".join(lines) if lines else None


def respond_async(request: Request) -> bool:
    """Whether the client asked for the asynchronous pattern (``Prefer: respond-async``)."""
    return "respond-async" in preferences(prefer_header(request))


def strict_handling(request: Request) -> bool:
    """Whether the client asked for ``Prefer: handling=strict`` (a search's unknown
    parameters refused rather than ignored)."""
    return preferences(prefer_header(request)).get("handling") == "strict"
