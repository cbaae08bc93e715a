"""What a load balancer asks: is this process alive (``/healthz``), and can it serve
(``/readyz``).

``/healthz`` answers as long as the process answers at all. ``/readyz`` also reaches
what every request needs: the records database, the key store's database and the key
provider (the PKCS#11 token). A process that cannot reach one of them answers every
FHIR request with a 503, so the balancer should send its traffic elsewhere; until
integrator round 70 there was only ``/healthz``, which said ``ok`` with the database
gone, and a balancer kept sending every request to a server that could serve none.

The answer names the checks and says ``ok`` or ``unavailable``, never why: an error's
text can name the database's host and user or the token's module path, which are not
for whoever can reach the port. The log has the error's kind and place (``logsafe``).

A check runs on a thread of the server's pool, and a thread cannot be taken back: a
database behind a partition (no reset, a query waiting on its read) holds its thread
until the partition heals. Each check therefore runs once at a time in a process: while
one still hangs past its bound, ``/readyz`` says ``unavailable`` for it at once instead
of starting another. Before, every probe (a balancer asks every second or so) left one
more hung thread per check, and the pool every request's database work runs on (40
threads, anyio's default) would be spent within a minute.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from sqlalchemy import Engine, text
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from carevault import __version__, logsafe
from carevault.bootstrap import Services
from carevault.web.responses import NO_STORE

log = logging.getLogger("carevault.web.health")

#: Open to anyone, any Host, and answered without the containment state (which the
#: database holds): a blocked range learns nothing from them, and with the database
#: gone ``/healthz`` answered 503 from the blocked-address check, so a liveness probe
#: would have a process restarted for its database's outage (integrator round 70).
HEALTH_PATHS = frozenset({"/healthz", "/readyz"})

#: How long one check may take before the process is called not ready.
CHECK_SECONDS = 2.0


def _database(engine: Engine) -> Callable[[], object]:
    def check() -> object:
        with engine.connect() as connection:
            return connection.execute(text("SELECT 1")).scalar_one()

    return check


def readiness_checks(services: Services) -> dict[str, Callable[[], object]]:
    """The named checks ``/readyz`` runs, each a call that raises if it cannot serve."""
    checks: dict[str, Callable[[], object]] = {
        "database": _database(services.engine),
        "key_store": _database(services.key_engine),
    }
    provider = services.provider
    if provider is not None:
        checks["key_provider"] = provider.active_version
    return checks


class Readiness:
    """``/readyz``'s answer, checked at most once per ``CACHE_SECONDS`` in a process: the
    path is open (no token, any Host, no rate limit, as a balancer needs), and each check
    costs two database round trips and a call into the token, so a flood of probes must
    not become a flood on the database and the HSM."""

    CACHE_SECONDS = 1.0

    def __init__(self, services: Services) -> None:
        self.services = services
        self._lock = asyncio.Lock()
        self._answer: tuple[float, dict[str, str]] | None = None
        #: Each check's latest run, by name: one at a time (see the module docstring).
        self._runs: dict[str, asyncio.Task[object]] = {}

    async def checked(self) -> dict[str, str]:
        async with self._lock:
            now = time.monotonic()
            if self._answer is None or now - self._answer[0] >= self.CACHE_SECONDS:
                checks = readiness_checks(self.services)
                results = await asyncio.gather(
                    *(self._run(name, check) for name, check in checks.items())
                )
                self._answer = (time.monotonic(), dict(zip(checks, results, strict=True)))
            return self._answer[1]

    async def _run(self, name: str, check: Callable[[], object]) -> str:
        running = self._runs.get(name)
        if running is not None and not running.done():
            # Still hanging past its bound from an earlier probe (probes are taken one at
            # a time, at least ``CACHE_SECONDS`` apart): not ready, and no second thread.
            return "unavailable"
        running = self._runs[name] = asyncio.ensure_future(run_in_threadpool(check))
        running.add_done_callback(_collected)
        try:
            # Shielded: at the bound only the wait ends; the run keeps its thread until
            # its call returns, and the next probe finds it still running.
            await asyncio.wait_for(asyncio.shield(running), CHECK_SECONDS)
        except Exception as error:  # noqa: BLE001 - any failure means "not ready"
            log.warning("readyz: %s is unavailable (%s)", name, logsafe.describe(error))
            return "unavailable"
        return "ok"

    async def respond(self) -> JSONResponse:
        """200 ``{"status": "ready", ...}`` when every check passes, else 503."""
        answers = await self.checked()
        ready = all(result == "ok" for result in answers.values())
        return JSONResponse(
            {
                "status": "ready" if ready else "unavailable",
                "version": __version__,
                "checks": answers,
            },
            status_code=200 if ready else 503,
            headers=NO_STORE,
        )


def _collected(run: asyncio.Task[object]) -> None:
    """Take a finished run's error, if any (asyncio would otherwise report it as never
    retrieved), and log how a run that hung past its bound ended."""
    if run.cancelled():
        return
    error = run.exception()
    if error is not None:
        log.warning("readyz: a check failed (%s)", logsafe.describe(error))
