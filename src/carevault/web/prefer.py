"""The ``Prefer`` request header as RFC 7240 writes it, for the asynchronous operations.

A client may send several ``Prefer`` lines, which mean one line of their values joined
by commas (section 2); each preference is a token, optionally ``=value``, then
parameters after ``;``; and token names compare case-insensitively. Reading only the
first line, case for case, refused ``$export`` and ``$import`` kick-offs that asked for
``respond-async`` in a way the RFC allows (integrator round 60).
"""

from __future__ import annotations

from starlette.requests import Request


def preferences(request: Request) -> dict[str, str]:
    """Each preference's name (lower case) and its value (as sent; ``""`` for none).
    A name given twice keeps its first value (RFC 7240 2: a server "SHOULD ignore all but
    the first instance")."""
    found: dict[str, str] = {}
    for line in request.headers.getlist("prefer"):
        for item in line.split(","):
            preference = item.split(";", 1)[0]
            name, _, value = preference.partition("=")
            name = name.strip().lower()
            if name and name not in found:
                found[name] = value.strip().strip('"')
    return found


def respond_async(request: Request) -> bool:
    """Whether the client asked for the asynchronous pattern (``Prefer: respond-async``)."""
    return "respond-async" in preferences(request)
