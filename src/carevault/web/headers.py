"""The security headers of every page a person's browser shows: the console and the
public /verify page. One list, one middleware, so the two cannot drift apart.

* A strict Content-Security-Policy: scripts, styles and images from this origin only,
  no inline script, no framing (``frame-ancestors 'none'``), no base or form target
  elsewhere; and ``X-Frame-Options: DENY`` for browsers that predate CSP's framing rule.
  /verify is what a phisher would most like to frame or imitate.
* ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer`` (a /verify URL
  carries a code; a console URL a patient's id), no caching, a closed Permissions-Policy,
  cross-origin isolation of the window and its resources; HSTS over https.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = tuple(
    (name.encode(), value.encode())
    for name, value in (
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("permissions-policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
        ("cache-control", "no-store"),
        ("pragma", "no-cache"),
    )
)
_NAMES = frozenset(name for name, _ in SECURITY_HEADERS)
HSTS = (b"strict-transport-security", b"max-age=31536000")


def secured(
    headers: list[tuple[bytes, bytes]], *, https: bool, cacheable: bool = False
) -> list[tuple[bytes, bytes]]:
    """``headers`` with the security headers set (whatever a route set for the same
    names is replaced); ``cacheable``: a static file holding no personal data, which the
    browser may keep an hour."""
    kept = [(name, value) for name, value in headers if name.lower() not in _NAMES]
    result = [*kept, *SECURITY_HEADERS, *([HSTS] if https else [])]
    if cacheable:
        result = [
            (name, b"max-age=3600" if name == b"cache-control" else value)
            for name, value in result
            if name != b"pragma"
        ]
    return result


class SecurityHeaders:
    """ASGI middleware: the security headers on every response under ``prefix`` (errors
    and refusals included); files under ``static`` may be cached."""

    def __init__(self, app: ASGIApp, prefix: str, static: str | None = None) -> None:
        self.app = app
        self.prefix = prefix
        self.static = static

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or not (
            path == self.prefix or path.startswith(self.prefix + "/")
        ):
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"
        cacheable = self.static is not None and path.startswith(self.static)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = secured(
                    list(message.get("headers", [])), https=https, cacheable=cacheable
                )
            await send(message)

        await self.app(scope, receive, with_headers)
