"""Shared fixtures: a fresh data directory per test, on SQLite and on a real PostgreSQL.

PostgreSQL: one database per test run (created at start, dropped at the end), one
schema per test. The admin URL comes from CAREVAULT_TEST_PG_URL (default: the
local server with trust auth). If PostgreSQL is unreachable the tests fail: they
never skip silently.
"""

from __future__ import annotations

import gc
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from carevault.bootstrap import Services, build_services
from carevault.config import Settings
from carevault.db import temporary_database
from tests.support.console import MovableClock
from tests.support.template import admin, lay, release

# No timed assertions in tests (speed is measured in bench/): Hypothesis's per-example
# deadline failed a property test once on a loaded machine, though every example held.
hypothesis_settings.register_profile("carevault", deadline=None)
hypothesis_settings.load_profile("carevault")

#: FastAPI (0.165) remembers whether each dependency is a coroutine, a generator and so on
#: in three caches of 4,096 entries, keyed by (a wrapper holding) the callable itself: the
#: apps' own callables
#: (``create_app``'s closures) kept every app a test made reachable, and with it its
#: services, engines and compiled statements, the last few hundred tests' worth (about
#: 4,500 objects a test; 1.3 million after 240 tests, each full collection of the
#: garbage collector then a fifth of a second or more). Emptied after each test.
_FASTAPI_CACHES = (
    "_is_gen_callable_cached",
    "_is_async_gen_callable_cached",
    "_is_coroutine_callable_cached",
)
#: The garbage collector's thresholds in test processes: a test makes and drops whole
#: service graphs, and at Python's (700, 10, 10) a worker spent a tenth of its time in
#: collections (a sample of 256 tests: 7.0 s of 38.8 s of CPU; 2.2 s of 31.6 s with these,
#: and what lives through the run frozen, ``pytest_runtest_logfinish``).
GC_THRESHOLDS = (20_000, 20, 20)
#: After these tests of a process (counted from 1), what is alive is collected once and
#: frozen (``gc.freeze``): the modules, the collected tests, the templates and whatever
#: module- or session-scoped fixtures are alive then, which no collection need walk
#: again. The first test imports the app; later ones the rest. Unfrozen at the end
#: (``pytest_unconfigure``), so that pytest's last collection still finds a frozen
#: object left in a cycle, and the warning it would raise.
FREEZE_AFTER = (1, 32)


def pytest_configure(config: pytest.Config) -> None:
    gc.set_threshold(*GC_THRESHOLDS)


def pytest_unconfigure(config: pytest.Config) -> None:
    gc.unfreeze()


_finished = [0]


def pytest_runtest_logfinish(nodeid: str, location: tuple[str, int | None, str]) -> None:
    _empty_fastapi_caches()
    _finished[0] += 1
    if _finished[0] in FREEZE_AFTER:
        gc.collect()
        gc.freeze()


def _empty_fastapi_caches() -> None:
    """``_FASTAPI_CACHES`` emptied; a FastAPI that has moved or changed them is left as it
    is (the tests still pass, only slower: the numbers above)."""
    try:
        from fastapi.dependencies import models
    except ImportError:
        return
    for name in _FASTAPI_CACHES:
        clear = getattr(getattr(models, name, None), "cache_clear", None)
        if callable(clear):
            clear()


PG_ADMIN_URL = os.environ.get(
    "CAREVAULT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A PostgreSQL database of this test run's own, dropped afterwards.

    Its sessions commit without waiting for the WAL to reach the disk
    (``synchronous_commit = off``): a PostgreSQL test ran about sixty write transactions,
    each waiting 1.5-2.5 ms for fdatasync on these machines (``rest/test_adversary_round58``
    on PostgreSQL: 85-100 s with the wait, 65-71 s without, in turns). The statements
    sent are the same (``carevault.db._commit_then_flush``) and only an operating-system
    crash loses such commits; the tests of the flush itself
    (``integration/test_db_postgres.py``) connect with it on. What the flush costs the
    server is measured by bench/, on databases that keep it."""
    try:
        with temporary_database(PG_ADMIN_URL, "carevault_test") as url:
            with admin(url).begin() as connection:
                connection.execute(
                    text(f'ALTER DATABASE "{make_url(url).database}" SET synchronous_commit = off')
                )
            yield url
    except OperationalError as error:  # pragma: no cover - the environment is broken
        pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is not usable: {error}")


@pytest.fixture
def pg_schema(pg_database: str) -> Iterator[str]:
    """A schema of this test's own in the run's database; yields a URL that uses it."""
    schema = f"t_{secrets.token_hex(6)}"
    with admin(pg_database).begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(pg_database).update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    # Kept for the worker's next test if its definitions are still the template's
    # (tests/support/template.py): replaying the template cost half a second a test.
    if not release(pg_database, schema):
        with admin(pg_database).begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


def make_settings(
    home: Path, database_url: str | None = None, *, fresh: bool = False, **extra: Any
) -> Settings:
    """Test settings for ``home``. A home that does not exist yet starts from this
    worker's template (migrated stores, key files: tests/support/template.py) unless
    ``fresh`` asks for a truly empty one (or CAREVAULT_TEST_NO_TEMPLATE is set)."""
    values: dict[str, Any] = {
        "environment": "test",
        "home": home,
        "database_url": database_url,
        # The weakest argon2 the settings allow: sign-ins in tests need not be slow.
        "argon2_memory_kib": 8192,
        "argon2_time_cost": 1,
        "checkpoint_seconds": 0,
        **extra,
    }
    settings = Settings(**values)
    if not fresh and not os.environ.get("CAREVAULT_TEST_NO_TEMPLATE"):
        lay(settings)
    return settings


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    url = request.getfixturevalue("pg_schema") if backend == "postgres" else None
    fresh = request.node.get_closest_marker("fresh_home") is not None
    return make_settings(tmp_path / "home", url, fresh=fresh, **marked(request))


def marked(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The values a test's ``settings`` marker gives its settings (a module's own
    ``settings`` fixture passes them on too)."""
    marker = request.node.get_closest_marker("settings")
    return dict(marker.kwargs) if marker is not None else {}


@pytest.fixture
def clock() -> MovableClock:
    """A clock the test moves (``clock.advance``); the services run on it where the test
    is marked ``movable_clock``."""
    return MovableClock()


@pytest.fixture
def services(settings: Settings, request: pytest.FixtureRequest) -> Iterator[Services]:
    moved = request.node.get_closest_marker("movable_clock") is not None
    extra: dict[str, Any] = {"clock": request.getfixturevalue("clock")} if moved else {}
    built = build_services(settings, create_keys=True, migrate=True, **extra)
    yield built
    built.close()


@pytest.fixture
def api(services: Services) -> Iterator[Any]:
    """The FHIR API in-process as the system itself (no token, no policy; the ledger still
    records every access), every response checked with fhirclient's strict R4 models."""
    from carevault.gate import Caller
    from carevault.web.app import create_app
    from carevault.web.security import caller
    from tests.support.client import FhirTestClient

    app = create_app(services.settings, services)
    app.dependency_overrides[caller] = lambda: Caller(principal="system:test")
    with FhirTestClient(app) as client:
        yield client


@pytest.fixture
def live_server(settings: Settings, tmp_path: Path) -> Iterator[Any]:
    """A real server process (``carevault serve``) on loopback over a home seeded with the
    clinic group and its staff accounts (no patients); the direct grant is on."""
    from tests.support.server import running_server
    from tests.support.template import served_staff

    env = served_staff(settings)
    with running_server(env, tmp_path) as server:
        yield server


#: The files whose tests take longest (40 s or more of a worker's time in a full run,
#: kill tests under load, browsers, simulated groups), slowest first: they start first,
#: so that the run does not end with one worker busy on them while the others wait
#: (ending on one of them cost a full run minutes). ``scripts/test`` asks xdist to hand
#: files out in this order (``--no-loadscope-reorder``), not by their number of tests.
SLOW_FIRST = (
    "tests/integration/cli/test_detector.py",
    "tests/integration/detect/test_serve.py",
    "tests/integration/access/test_writes_never_widen.py",
    "tests/e2e/test_smart_clients.py",
    "tests/integration/web/test_workers.py",
    "tests/e2e/test_breach_story.py",
    "tests/e2e/console/test_officer_in_browser.py",
    "tests/e2e/console/test_breach_in_browser.py",
    "tests/e2e/test_export_killed.py",
    "tests/integration/notify/test_kill_resume.py",
    "tests/integration/containment/test_processes.py",
    "tests/integration/bulk/test_import.py",
    "tests/integration/export/test_export.py",
    "tests/integration/sim/test_run.py",
    "tests/e2e/test_killed_under_load.py",
    "tests/integration/bulk/test_resume.py",
    "tests/integration/rest/test_search_ranges.py",
    "tests/integration/detect/test_staff_changes.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``only_backend`` left out on the other backend; then the slowest
    files first, in ``SLOW_FIRST``'s order, the rest in their usual order (every xdist
    worker reorders alike, so their collections stay the same)."""
    elsewhere = [item for item in items if _on_another_backend(item)]
    if elsewhere:
        config.hook.pytest_deselected(items=elsewhere)
        left_out = {id(item) for item in elsewhere}
        items[:] = [item for item in items if id(item) not in left_out]
    rank = {path: index for index, path in enumerate(SLOW_FIRST)}
    last = len(SLOW_FIRST)
    # Stable: within a file, and among the rest, the collection's order stands.
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], last))


def _on_another_backend(item: pytest.Item) -> bool:
    """Whether ``item`` is marked ``only_backend(name)`` and runs on another backend (any
    of its parameters, the ``backend`` fixture's or a module fixture's, naming one)."""
    marker = item.get_closest_marker("only_backend")
    callspec = getattr(item, "callspec", None)
    if marker is None or callspec is None:
        return False
    others = set(BACKENDS) - {marker.args[0]}
    return any(isinstance(value, str) and value in others for value in callspec.params.values())
