"""The door: a request for a Host this server is not, or over its source's rate limit,
is refused before anything else runs.

The Host header decides nothing else here: with ``PUBLIC_BASE_URL`` set, every link the
server builds (SMART endpoints, ``fullUrl``, paging) comes from configuration, and only
that host is served. Without it (development, the demo, tests) only loopback names are
served, so a link built from the Host header can only point back at this machine.
``/healthz`` and ``/readyz`` answer any Host: load balancers probe by address.

The client address is what the ASGI server reports: behind a reverse proxy, uvicorn
replaces it with the forwarded one only for proxies in ``TRUSTED_PROXIES``.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from carevault.access.throttle import source_key
from carevault.bootstrap import Services
from carevault.config import Settings
from carevault.fhir.outcome import Issue, outcome
from carevault.gate import method_detail
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.rest.bundles import dumps
from carevault.rest.interactions import JSON
from carevault.web.head import asked_method
from carevault.web.health import HEALTH_PATHS
from carevault.web.paths import logged_path
from carevault.web.responses import NO_STORE, request_id_of

#: Starlette's TestClient calls itself this; served only in the test environment.
TEST_CLIENT_HOST = "testserver"
#: Where a client or a person authenticates: the tighter per-address limit (revocation
#: authenticates the client as the token endpoint does).
_SIGN_IN_PATHS = frozenset({"/auth/token", "/auth/authorize", "/auth/revoke"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _split_host(value: str) -> tuple[str, int | None] | None:
    """(name, port) of a Host header value, lower-cased; None if it is malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        name, bracket, rest = value[1:].partition("]")
        if not bracket:
            return None
        port_text = rest.removeprefix(":") if rest.startswith(":") else ("" if not rest else None)
    else:
        name, colon, port_text = value.partition(":")
        port_text = port_text if colon else ""
    if port_text is None or not name or (port_text and not port_text.isdigit()):
        return None
    return name, int(port_text) if port_text else None


class AllowedHosts:
    def __init__(self, settings: Settings) -> None:
        self.exact: frozenset[tuple[str, int | None]] = frozenset()
        self.loopback_only = settings.public_base_url is None
        self.names: frozenset[str] = frozenset({"localhost"})
        if settings.public_base_url:
            parts = urlsplit(settings.public_base_url)
            name, port = (parts.hostname or "").lower(), parts.port
            default = _DEFAULT_PORTS.get(parts.scheme)
            allowed = {(name, port)}
            if port is None or port == default:
                allowed |= {(name, None), (name, default)}
            self.exact = frozenset(allowed)
        elif settings.environment == "test":
            self.names = self.names | {TEST_CLIENT_HOST}
        self._known: dict[bytes, bool] = {}

    def allows(self, header: bytes | None) -> bool:
        if header is None:
            return False
        known = self._known.get(header)
        if known is None:
            known = self._check(header.decode("latin-1"))
            if len(self._known) > 1024:
                self._known.clear()
            self._known[header] = known
        return known

    def _check(self, value: str) -> bool:
        split = _split_host(value)
        if split is None:
            return False
        if not self.loopback_only:
            return split in self.exact
        name = split[0]
        if name in self.names:
            return True
        try:
            return ipaddress.ip_address(name).is_loopback
        except ValueError:
            return False


class RequestGuard:
    """ASGI middleware: Host check, then the per-source rate limits (every request, and
    a tighter one for sign-in and token requests), before routing."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services
        self.hosts = AllowedHosts(services.settings)
        self.limits = services.limits
        self._sources: dict[str | None, str] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in HEALTH_PATHS:
            await self.app(scope, receive, send)
            return
        host = None
        for name, value in scope["headers"]:
            if name == b"host":
                host = value
                break
        client = scope.get("client")
        address = client[0] if client else None
        if not self.hosts.allows(host):
            await self._refuse(
                scope, receive, send, address, 400, Tag.AUTH_HOST_REFUSED, "unknown host", 0
            )
            return
        wait = 0
        limits = self.limits
        if limits.source is not None:
            wait = limits.source.take(self._source(address))
        if (
            not wait
            and limits.sign_in is not None
            and scope["method"] == "POST"
            and scope["path"] in _SIGN_IN_PATHS
        ):
            wait = limits.sign_in.take(self._source(address))
        if wait:
            await self._refuse(
                scope,
                receive,
                send,
                address,
                429,
                Tag.AUTH_RATE_LIMITED,
                "too many requests from this address",
                wait,
            )
            return
        await self.app(scope, receive, send)

    def _source(self, address: str | None) -> str:
        """``source_key(address)``, remembered: parsing the address was a few percent of
        a read's CPU, and a server sees the same few addresses over and over."""
        known = self._sources.get(address)
        if known is None:
            known = source_key(address)
            if len(self._sources) > 4096:
                self._sources.clear()
            self._sources[address] = known
        return known

    async def _refuse(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        address: str | None,
        status: int,
        tag: Tag,
        reason: str,
        wait: int,
    ) -> None:
        event = AuditEvent(
            tag=tag,
            outcome=Outcome.DENIED,
            at_us=self.services.now_us(),
            request_id=request_id_of(scope),
            source_address=address,
            reason=reason,
            detail={
                "path": logged_path(scope),
                **method_detail(asked_method(scope)),
            },
        )
        tally = self.services.refusals
        first = tally.note(event)
        if first is not None or tally.due():
            await run_in_threadpool(tally.commit, first)
        headers = dict(NO_STORE)
        if wait:
            headers["Retry-After"] = str(wait)
        code = "throttled" if status == 429 else "invalid"
        body = dumps(outcome([Issue(code, f"refused: {reason}")]))
        response = Response(body, status_code=status, media_type=JSON, headers=headers)
        await response(scope, receive, send)
