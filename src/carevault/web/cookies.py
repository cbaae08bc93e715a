"""Whether a cookie is Secure, decided in one place for every cookie the app sets.

The browser is on https when the configured public URL is https (behind a proxy that
ends TLS the request the app sees is plain http, but the browser's is not) or when the
request itself was: there every cookie is Secure (``on_https``), the sign-in form's CSRF
cookie under ``/auth`` included. The console's session cookies go further
(``secure_cookie``): Secure, and named ``__Host-``, on plain http too, except to a
loopback address (a laptop demo, tests), so that a session is never set where the
browser would send it in the clear.
"""

from __future__ import annotations

from ipaddress import ip_address

from fastapi import Request

from carevault.web.security import services


def _loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def on_https(request: Request) -> bool:
    """Whether the browser reached us over https: the public URL is https, or the
    request was."""
    configured = services(request).settings.public_base_url or ""
    return configured.startswith("https://") or request.url.scheme == "https"


def secure_cookie(request: Request) -> bool:
    """Secure everywhere except plain http to a loopback address (a laptop demo, tests)."""
    return on_https(request) or not _loopback(request.url.hostname)
