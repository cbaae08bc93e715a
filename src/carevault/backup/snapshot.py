"""Consistent copies of a live database: SQLite's online backup API, PostgreSQL's
``pg_dump`` on an exported snapshot."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess  # noqa: S404 - pg_dump and pg_restore, by absolute path, no shell
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import psycopg
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import URL, make_url

from carevault.db import pg_connect_args


class SnapshotFailed(RuntimeError):
    """The copy could not be taken or put back; the message names the tool and why."""


def sqlite_path(url: str) -> Path:
    return Path(url.split("///", 1)[-1])


def copy_sqlite(source: Path, target: Path) -> None:
    """Copy a live SQLite database into ``target`` (a new file, mode 0600).

    The backup API reads every page inside one read transaction, so the copy is the
    database as of one commit while writers go on (WAL mode lets them). The copy is
    then turned into a single self-contained file (rollback journal, no -wal)."""
    os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    with (
        closing(sqlite3.connect(source, timeout=60)) as live,
        closing(sqlite3.connect(target)) as copy,
    ):
        live.backup(copy)
        copy.execute("PRAGMA journal_mode=DELETE")
        copy.commit()
    _fsync(target)


def seal_sqlite(path: Path) -> None:
    """Fold a copy that was opened again (in WAL mode) back into its one file."""
    with closing(sqlite3.connect(path)) as copy:
        copy.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        copy.execute("PRAGMA journal_mode=DELETE")
        copy.commit()
    _fsync(path)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- PostgreSQL --------------------------------------------------------------------------


def libpq(url: str) -> tuple[str, dict[str, str], str | None]:
    """A SQLAlchemy URL as libpq takes it: the connection string without the password
    (which goes in the environment, so ``ps`` never shows it), that environment, and the
    schema named by a ``-csearch_path=`` option, if any."""
    parsed: URL = make_url(url)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    plain = parsed.set(drivername="postgresql", password=None)
    options = unquote(str(parsed.query.get("options", "")))
    schema = None
    for option in options.split():
        if option.startswith("-csearch_path="):
            schema = option.split("=", 1)[1].split(",")[0].strip('"')
    return plain.render_as_string(hide_password=False), env, schema


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise SnapshotFailed(f"{name} not found: install the PostgreSQL client (postgresql-client)")
    return found


@contextmanager
def exported_snapshot(url: str) -> Iterator[tuple[str, psycopg.Connection[Any]]]:
    """A read-only REPEATABLE READ transaction whose snapshot ``pg_dump --snapshot`` can
    share: what the caller reads inside it is exactly what the dump holds."""
    plain, env, _ = libpq(url)
    conninfo = make_conninfo(plain, **pg_connect_args(url))
    password = env.get("PGPASSWORD")
    with (
        psycopg.connect(conninfo, password=password)
        if password
        else psycopg.connect(conninfo) as connection
    ):
        connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        row = connection.execute("SELECT pg_export_snapshot()").fetchone()
        if row is None:  # pragma: no cover - the function always returns a row
            raise SnapshotFailed("pg_export_snapshot returned nothing")
        yield str(row[0]), connection
        connection.rollback()


def dump_postgres(url: str, target: Path, snapshot: str) -> None:
    conninfo, env, schema = libpq(url)
    command = [_tool("pg_dump"), "--format=custom", "--no-owner", "--no-acl"]
    command += [f"--snapshot={snapshot}", f"--file={target}"]
    if schema:
        command.append(f"--schema={schema}")
    command.append(conninfo)
    _run(command, env, "pg_dump")
    os.chmod(target, 0o600)
    _fsync(target)


def restore_postgres(url: str, source: Path) -> None:
    conninfo, env, _ = libpq(url)
    command = [_tool("pg_restore"), "--no-owner", "--no-acl", "--exit-on-error"]
    command += [f"--dbname={conninfo}", str(source)]
    _run(command, env, "pg_restore")


def _run(command: list[str], env: dict[str, str], name: str) -> None:
    result = subprocess.run(  # noqa: S603 - a fixed tool and arguments built here
        command, env=env, capture_output=True, text=True, check=False, timeout=24 * 3600
    )
    if result.returncode != 0:
        raise SnapshotFailed(f"{name} failed ({result.returncode}): {result.stderr.strip()[:500]}")
