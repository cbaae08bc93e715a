"""Migrated stores and key files made once per test worker and copied for each test.

Bringing a fresh data directory to the newest schema costs about a second on SQLite and
two and a half on PostgreSQL (every migration, one after another), and making the key
files a third of a second more (the RSA key of the ID tokens). Most tests need exactly
that starting point, so each pytest worker makes it once:

- a data directory with both SQLite stores migrated and the key files made;
- a PostgreSQL schema migrated the same way, dumped once with ``pg_dump`` and replayed
  into each test's own schema (one round trip instead of every migration).

Replaying that dump still cost about half a second a test on PostgreSQL (every table,
index and trigger made again: on a slow machine a quarter of the whole run). So a test's
schema, once the test is done, is emptied back to the template's rows and kept for the
next test of the worker (``release``), unless the test changed a definition (a dropped
trigger, a revoked grant, another migration: its definitions' fingerprint differs from
the template's), in which case it is dropped as before. The next test's empty schema is
then replaced by the kept one, renamed (``prepare``).

A copy holds no data at all (no ledger entry, no data key): a test's own
``build_services`` starts from it exactly as it would from an empty directory, except
that its key files are the worker's (each test still has its own databases and copies)
and that the note beside the keyring already says its (empty) tables are sealed, as a
first start would have left it (``_note_sealed``).
Settings that move the key files or stores elsewhere never use the template.

Tests that start real servers over the demo clinic group ask for ``seed_staff`` instead of
running ``carevault seed --patients 0`` themselves (about 8 s of a CLI process each): each
worker runs that command once per backend into a template of its own and copies the
result (home directory and, on PostgreSQL, the schema's rows). Every copy holds the same
staff, passwords and TOTP secrets, in a database of its own.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from carevault.config import Settings
from carevault.db import make_engine
from carevault.keys.anchors import anchors_path
from carevault.keys.files import ed25519_key, rsa_key
from carevault.keys.local import LocalKeyring
from carevault.migrations import upgrade


def usable(settings: Settings) -> bool:
    """Whether ``settings`` lay out a data directory the way the template does."""
    return (
        settings.key_provider == "local"
        and settings.keys_database_url is None
        and settings.keyring_path is None
        and settings.token_signing_key_path is None
        and settings.id_token_key_path is None
        and settings.ledger_signing_key_path is None
        and not settings.home.exists()
    )


class Templates:
    """This worker's template directory and, once asked for, its PostgreSQL dump."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._sqlite_home: Path | None = None
        self._keys_home: Path | None = None
        self._pg_scripts: dict[str, tuple[str, str]] = {}
        #: Per database: the template's definitions' fingerprint and the script that
        #: empties a schema back to its rows (``release``), with the template's name.
        self._resets: dict[str, tuple[str, str]] = {}
        #: Per database: schemas emptied back to the template, waiting for a test.
        self._kept: dict[str, list[str]] = {}
        #: Seeded homes (and their schemas' dumps) by database: "" for SQLite.
        self._seeded: dict[str, tuple[Path, tuple[str, str] | None]] = {}

    def prepare(self, settings: Settings) -> bool:
        """Lay the template into ``settings.home`` (and into its PostgreSQL schema, named
        by the URL's ``search_path``); False when the settings do not suit it."""
        if not usable(settings):
            return False
        if settings.is_sqlite:
            shutil.copytree(self._sqlite(), settings.home)
            return True
        url = make_url(settings.resolved_database_url)
        schema = _schema_of(url.render_as_string(hide_password=False))
        if schema is None:
            return False
        database = url.difference_update_query(["options"]).render_as_string(hide_password=False)
        placeholder, script = self._pg(database)
        with admin(database).begin() as connection:
            tables = connection.execute(
                text("SELECT count(*) FROM information_schema.tables WHERE table_schema = :schema"),
                {"schema": schema},
            ).scalar_one()
            if tables:
                return False  # a store already there: its own keys belong with it
            if not self._take_kept(connection, database, schema):
                connection.exec_driver_sql(script.replace(placeholder, schema))
            _reset_session(connection)
        shutil.copytree(self._keys(), settings.home)
        return True

    def _take_kept(self, connection: Connection, database: str, schema: str) -> bool:
        """Put a kept schema in the place of the empty ``schema``; False if none is kept
        or ``schema`` holds anything (then it is left as it was)."""
        kept = self._kept.get(database)
        if not kept:
            return False
        name = kept.pop()
        try:
            with connection.begin_nested():
                connection.exec_driver_sql(f'DROP SCHEMA "{schema}"')  # only if empty
                connection.exec_driver_sql(f'ALTER SCHEMA "{name}" RENAME TO "{schema}"')
        except DBAPIError:
            kept.append(name)
            return False
        return True

    def release(self, database: str, schema: str) -> bool:
        """Empty ``schema`` back to the template's rows and keep it for the worker's next
        test, if its definitions are still the template's; False if it is not kept (the
        caller drops it)."""
        if database not in self._pg_scripts:
            return False
        fingerprint, reset = self._reset(database)
        placeholder = self._pg_scripts[database][0]
        name = f"kept_{secrets.token_hex(8)}"
        try:
            with admin(database).begin() as connection:
                # A connection a test left open holds its locks: drop the schema instead
                # of waiting for it.
                connection.exec_driver_sql("SET LOCAL lock_timeout = '2s'")
                if _fingerprint(connection, schema) != fingerprint:
                    return False
                connection.exec_driver_sql(f'ALTER SCHEMA "{schema}" RENAME TO "{name}"')
                connection.exec_driver_sql(reset.replace(placeholder, name))
                _reset_session(connection)
        except DBAPIError:
            return False
        self._kept.setdefault(database, []).append(name)
        return True

    def _reset(self, database: str) -> tuple[str, str]:
        """The template's fingerprint and the script that empties a schema back to it:
        every table's rows deleted and its sequences restarted, then the template's own
        rows, from a dump of its data."""
        if database not in self._resets:
            placeholder, script = self._pg_scripts[database]
            _replay(database, placeholder, placeholder, script)
            engine = create_engine(database)
            try:
                with engine.begin() as connection:
                    fingerprint = _fingerprint(connection, placeholder)
                    tables = connection.execute(
                        text("SELECT tablename FROM pg_tables WHERE schemaname = :schema"),
                        {"schema": placeholder},
                    ).scalars()
                    emptied = [f'DELETE FROM "{placeholder}"."{table}";' for table in tables]
                    sequences = connection.execute(
                        text(
                            "SELECT sequence_name FROM information_schema.sequences"
                            " WHERE sequence_schema = :schema"
                        ),
                        {"schema": placeholder},
                    ).scalars()
                    emptied += [
                        f'ALTER SEQUENCE "{placeholder}"."{sequence}" RESTART;'
                        for sequence in sequences
                    ]
                rows = _dump(database, placeholder, data_only=True)
            finally:
                engine.dispose()
                _drop_schema(database, placeholder)
            # DELETE, not TRUNCATE: a test's few rows go in milliseconds, where TRUNCATE
            # makes every table and index anew (0.4 s for the fifty tables). Replica mode
            # skips the foreign keys' checks, all of whose tables are emptied together.
            script = "\n".join(["SET LOCAL session_replication_role = replica;", *emptied, rows])
            self._resets[database] = (fingerprint, script)
        return self._resets[database]

    def seed(self, settings: Settings, env: Mapping[str, str]) -> None:
        """Replace ``settings.home`` (and its schema) by a copy of this worker's seeded
        template for its backend, seeding the template first if need be."""
        database = "" if settings.is_sqlite else _database_of(settings)
        if database not in self._seeded:
            self._seeded[database] = self._make_seeded(settings, env, database)
        home, dumped = self._seeded[database]
        if dumped is not None:
            placeholder, script = dumped
            _replay(database, _schema_of(settings.resolved_database_url) or "", placeholder, script)
        shutil.rmtree(settings.home)
        shutil.copytree(home, settings.home)

    def _make_seeded(
        self, settings: Settings, env: Mapping[str, str], database: str
    ) -> tuple[Path, tuple[str, str] | None]:
        from tests.support.server import environment, run_cli

        home = self._root / f"seeded-{len(self._seeded)}" / "home"
        schema = None if not database else f"tpl_{secrets.token_hex(8)}"
        url = None
        if schema is None:
            shutil.copytree(self._sqlite(), home)
        else:
            placeholder, script = self._pg(database)
            _replay(database, schema, placeholder, script)
            shutil.copytree(self._keys(), home)
            url = (
                make_url(database)
                .update_query_dict({"options": f"-csearch_path={schema}"})
                .render_as_string(hide_password=False)
            )
        extra = {key: value for key, value in env.items() if key.startswith("CAREVAULT_ARGON2")}
        seeded = run_cli(environment(home, url, extra), "seed", "--patients", "0")
        if seeded.returncode != 0:
            raise RuntimeError(f"seeding the template failed:\n{seeded.stderr[-3000:]}")
        if schema is None:
            return home, None
        try:
            return home, (schema, _dump(database, schema))
        finally:
            _drop_schema(database, schema)

    def _sqlite(self) -> Path:
        if self._sqlite_home is None:
            home = self._root / "sqlite" / "home"
            _make_keys(home)
            for store, url in (
                ("records", f"sqlite:///{home / 'carevault.db'}"),
                ("keys", f"sqlite:///{home / 'keys' / 'keys.db'}"),
            ):
                engine = make_engine(url)
                try:
                    upgrade(store, engine)
                finally:
                    engine.dispose()
            _note_sealed(home, self._root / "sqlite" / "started")
            self._sqlite_home = home
        return self._sqlite_home

    def _keys(self) -> Path:
        if self._keys_home is None:
            home = self._root / "keys-only" / "home"
            _make_keys(home)
            shutil.copy2(anchors_path(self._sqlite() / KEYRING), anchors_path(home / KEYRING))
            self._keys_home = home
        return self._keys_home

    def _pg(self, database: str) -> tuple[str, str]:
        if database not in self._pg_scripts:
            schema = f"tpl_{secrets.token_hex(8)}"
            admin = create_engine(database, isolation_level="AUTOCOMMIT")
            try:
                with admin.connect() as connection:
                    connection.execute(text(f'CREATE SCHEMA "{schema}"'))
                url = make_url(database).update_query_dict({"options": f"-csearch_path={schema}"})
                engine = make_engine(url.render_as_string(hide_password=False))
                try:
                    upgrade("records", engine)
                    upgrade("keys", engine)
                finally:
                    engine.dispose()
                self._pg_scripts[database] = (schema, _dump(database, schema))
                with admin.connect() as connection:
                    connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            finally:
                admin.dispose()
        return self._pg_scripts[database]


_worker: Templates | None = None
_admins: dict[str, Engine] = {}


def admin(database: str) -> Engine:
    """This worker's engine for the schemas of ``database`` (made once a process): a test's
    schema is made, laid, emptied and dropped over it. An engine a test made and disposed
    cost three new server processes a test (a PostgreSQL connection is about 5 ms of the
    client's time and as much of the server's)."""
    if database not in _admins:
        # Pinged at checkout: a connection the server dropped since (a restart, a test
        # that terminates backends) would fail the next test's setup.
        _admins[database] = create_engine(database, pool_size=2, max_overflow=2, pool_pre_ping=True)
        atexit.register(_admins[database].dispose)
    return _admins[database]


def _reset_session(connection: Connection) -> None:
    """The session's settings back to the server's: a dump's script sets some for the
    session (``search_path``, ``row_security``...), and the connection goes back to the
    pool shared by the worker's tests (``admin``)."""
    connection.exec_driver_sql("RESET ALL")


def _templates() -> Templates:
    global _worker
    if _worker is None:
        root = Path(tempfile.mkdtemp(prefix="carevault-template-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        _worker = Templates(root)
    return _worker


def lay(settings: Settings) -> bool:
    """Start ``settings.home`` (and its schema) from this process's template, when the
    home does not exist yet and the settings keep their files where the template does."""
    if not usable(settings):
        return False
    return _templates().prepare(settings)


def release(database: str, schema: str) -> bool:
    """Keep a test's PostgreSQL schema for this worker's next test (``Templates.release``);
    False if it is not kept and the caller must drop it."""
    return _worker is not None and _worker.release(database, schema)


def _fingerprint(connection: Connection, schema: str) -> str:
    """A digest of every definition in ``schema`` (tables, columns, defaults, indexes,
    constraints, triggers, functions, views, grants), its own name left out."""
    rows = connection.execute(text(_DEFINITIONS), {"schema": schema}).all()
    spelled = "\n".join("\t".join(str(value) for value in row) for row in rows)
    return hashlib.sha256(spelled.replace(schema, "\x00").encode()).hexdigest()


_DEFINITIONS = """
WITH ns AS (SELECT oid FROM pg_namespace WHERE nspname = :schema)
SELECT 'relation', c.relname, c.relkind::text, coalesce(c.relacl::text, '')
       || c.relrowsecurity::text
  FROM pg_class c WHERE c.relnamespace = (SELECT oid FROM ns)
UNION ALL
SELECT 'column', c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
       || a.attnotnull::text || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE c.relnamespace = (SELECT oid FROM ns) AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'index', c.relname, '', pg_get_indexdef(i.indexrelid)
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE c.relnamespace = (SELECT oid FROM ns)
UNION ALL
SELECT 'constraint', k.conname, '', pg_get_constraintdef(k.oid)
  FROM pg_constraint k WHERE k.connamespace = (SELECT oid FROM ns)
UNION ALL
SELECT 'trigger', t.tgname, t.tgenabled::text, pg_get_triggerdef(t.oid)
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
 WHERE c.relnamespace = (SELECT oid FROM ns) AND NOT t.tgisinternal
UNION ALL
SELECT 'function', p.proname, coalesce(p.proacl::text, ''), pg_get_functiondef(p.oid)
  FROM pg_proc p WHERE p.pronamespace = (SELECT oid FROM ns)
UNION ALL
SELECT 'view', c.relname, '', pg_get_viewdef(c.oid)
  FROM pg_class c WHERE c.relnamespace = (SELECT oid FROM ns) AND c.relkind IN ('v', 'm')
UNION ALL
SELECT 'policy', p.polname, '', coalesce(pg_get_expr(p.polqual, p.polrelid), '')
  FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
 WHERE c.relnamespace = (SELECT oid FROM ns)
ORDER BY 1, 2, 3, 4
"""


def served_staff(settings: Settings, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a server over ``settings``' home with its staff seeded
    (``seed_staff``): the password grant on and Argon2 made cheap for the tests' sign-ins,
    then ``extra``."""
    from tests.support.server import environment

    env = environment(
        settings.home,
        settings.database_url,
        {
            "CAREVAULT_DIRECT_GRANT": "true",
            "CAREVAULT_ARGON2_MEMORY_KIB": "8192",
            "CAREVAULT_ARGON2_TIME_COST": "1",
            **(extra or {}),
        },
    )
    seed_staff(settings, env)
    return env


def seed_staff(settings: Settings, env: Mapping[str, str]) -> None:
    """What ``carevault seed --patients 0`` makes (the clinic group, its staff accounts,
    timetable and the demo app), in ``settings``' home and database, before anything has
    opened them. A home laid from the template gets a copy of this worker's seeded one;
    any other (or with CAREVAULT_TEST_NO_TEMPLATE set) runs the command itself."""
    from tests.support.server import run_cli

    assert env["CAREVAULT_HOME"] == str(settings.home), "env and settings name one home"
    laid = (settings.home / "keys" / "keyring.json").exists()
    if (
        os.environ.get("CAREVAULT_TEST_NO_TEMPLATE")
        or not laid
        or settings.key_provider != "local"
        or settings.keys_database_url is not None
        or settings.keyring_path is not None
        or settings.token_signing_key_path is not None
        or settings.id_token_key_path is not None
        or settings.ledger_signing_key_path is not None
        or (not settings.is_sqlite and _schema_of(settings.resolved_database_url) is None)
    ):
        seeded = run_cli(env, "seed", "--patients", "0")
        assert seeded.returncode == 0, seeded.stderr
        return
    _templates().seed(settings, env)


#: Where the template keeps the keyring, within a home.
KEYRING = Path("keys") / "keyring.json"


def _make_keys(home: Path) -> None:
    keys = home / "keys"
    keys.mkdir(parents=True, mode=0o700)
    home.chmod(0o700)
    LocalKeyring.create(home / KEYRING)
    ed25519_key(keys / "token-signing.pem", create=True)
    ed25519_key(keys / "ledger-signing.pem", create=True)
    rsa_key(keys / "id-token.pem")


def _note_sealed(home: Path, scratch: Path) -> None:
    """Give the template's ``home`` the note beside the keyring that every table's rows
    are sealed (``keys.anchors``), as a first start leaves it. A store the template makes
    holds no rows, so the note is true of each copy; without it, each test's first
    ``build_services`` sealed a dozen empty tables, each in a transaction of its own, and
    appended and fsynced the note line by line (two fifths of that call's time). The
    note is taken from a real start, on a copy of the template, so that a table sealed
    from a later change is in it without this module knowing its name. The start is on
    SQLite; the PostgreSQL template's keys take the same note (``_keys``): which tables
    are sealed does not depend on the backend (``bootstrap._seal_once``).

    The start's settings are the scratch home's alone: ``CAREVAULT_*`` variables a test
    may have set (another database, a witness directory, a key provider) are put aside
    while it runs, or it would write there."""
    from carevault.bootstrap import build_services  # here: the app's whole graph

    shutil.copytree(home, scratch)
    aside = {
        name: os.environ.pop(name)
        for name in list(os.environ)
        if name.startswith("CAREVAULT_") and not name.startswith("CAREVAULT_TEST_")
    }
    try:
        settings = Settings(
            environment="test",
            home=scratch,
            argon2_memory_kib=8192,
            argon2_time_cost=1,
            checkpoint_seconds=0,
        )
        build_services(settings, create_keys=True, migrate=True).close()
    finally:
        os.environ.update(aside)
    shutil.copy2(anchors_path(scratch / KEYRING), anchors_path(home / KEYRING))
    shutil.rmtree(scratch)


def _database_of(settings: Settings) -> str:
    url = make_url(settings.resolved_database_url)
    return url.difference_update_query(["options"]).render_as_string(hide_password=False)


def _drop_schema(database: str, schema: str) -> None:
    admin = create_engine(database, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        admin.dispose()


def _replay(database: str, schema: str, placeholder: str, script: str) -> None:
    """Empty ``schema`` and fill it from a dump made of the schema ``placeholder``."""
    _drop_schema(database, schema)
    engine = create_engine(database, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        with engine.begin() as connection:
            connection.exec_driver_sql(script.replace(placeholder, schema))
    finally:
        engine.dispose()


def _schema_of(url: str) -> str | None:
    options = make_url(url).query.get("options")
    if isinstance(options, str) and options.startswith("-csearch_path="):
        return options.removeprefix("-csearch_path=")
    return None


def _dump(database_url: str, schema: str, *, data_only: bool = False) -> str:
    """The schema's tables, indexes and rows as SQL, without the CREATE SCHEMA itself
    (``data_only``: its rows and sequence values only)."""
    url = make_url(database_url)
    dumped = subprocess.run(
        [
            "pg_dump",
            "--schema",
            schema,
            *(["--data-only"] if data_only else []),
            "--inserts",
            "--no-owner",
            "--no-privileges",
            "--no-comments",
            "--host",
            url.host or "127.0.0.1",
            "--port",
            str(url.port or 5432),
            "--username",
            url.username or "postgres",
            url.database or "",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    kept = [
        line
        for line in dumped.splitlines()
        if not line.startswith(("CREATE SCHEMA", "\\restrict", "\\unrestrict"))
    ]
    return "\n".join(kept)
