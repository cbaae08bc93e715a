"""PostgreSQL's side of ``carevault.db``: a write transaction returns only once its
commit is on disk, though its locks are released before the flush; a pooled
connection cut while idle is replaced on checkout rather than failing a request."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest
from psycopg.errors import UniqueViolation
from sqlalchemy import (
    Column,
    Engine,
    LargeBinary,
    MetaData,
    Table,
    bindparam,
    create_engine,
    insert,
    make_url,
    text,
)
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from carevault import db
from carevault.db import make_engine, write_transaction
from carevault.loop_reads import LoopBusy, LoopReads
from tests.support.tcp_proxy import proxied


@pytest.fixture
def engine(pg_schema: str) -> Iterator[Engine]:
    """An engine whose sessions commit synchronously, as a production database's do: the
    test database's default is ``synchronous_commit = off`` (tests/conftest.py), under
    which no commit waits for the flush these tests are about."""
    url = make_url(pg_schema)
    options = f"{url.query.get('options', '')} -csynchronous_commit=on".strip()
    made = make_engine(
        url.update_query_dict({"options": options}).render_as_string(hide_password=False),
        pool_size=2,
    )
    with made.connect() as connection, connection.begin():
        connection.execute(text("CREATE TABLE counter (id int PRIMARY KEY, n int NOT NULL)"))
        connection.execute(text("INSERT INTO counter VALUES (1, 0)"))
    yield made
    made.dispose()


def _lsn(value: str) -> int:
    high, low = value.split("/")
    return (int(high, 16) << 32) + int(low, 16)


def test_a_write_transaction_returns_only_once_its_commit_is_flushed(engine: Engine) -> None:
    for _ in range(20):
        with write_transaction(engine) as connection:
            connection.execute(text("UPDATE counter SET n = n + 1 WHERE id = 1"))
            written = connection.execute(text("SELECT pg_current_wal_insert_lsn()::text")).scalar()
        with engine.connect() as connection:
            flushed = connection.execute(text("SELECT pg_current_wal_flush_lsn()::text")).scalar()
        # The commit record follows what the transaction wrote: flushed past it too.
        assert _lsn(str(flushed)) > _lsn(str(written))


def test_other_transactions_keep_synchronous_commit(engine: Engine) -> None:
    """The COMMIT of a write transaction alone runs without synchronous_commit: the
    session, and transactions that are not write transactions, keep it on."""
    with write_transaction(engine) as connection:
        connection.execute(text("UPDATE counter SET n = n + 1 WHERE id = 1"))
    with engine.connect() as connection, connection.begin():
        assert connection.execute(text("SHOW synchronous_commit")).scalar() == "on"


def test_a_write_transaction_that_ran_nothing_commits_nothing(engine: Engine) -> None:
    with write_transaction(engine):
        pass
    with engine.connect() as connection:
        assert connection.execute(text("SELECT n FROM counter")).scalar() == 0


def test_writers_of_one_row_in_many_threads_lose_no_update(engine: Engine) -> None:
    def bump() -> None:
        for _ in range(25):
            with write_transaction(engine) as connection:
                connection.execute(text("SELECT n FROM counter WHERE id = 1 FOR UPDATE"))
                connection.execute(text("UPDATE counter SET n = n + 1 WHERE id = 1"))

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with engine.connect() as connection:
        assert connection.execute(text("SELECT n FROM counter")).scalar() == 100


def test_a_failed_write_transaction_changes_nothing(engine: Engine) -> None:
    with pytest.raises(RuntimeError), write_transaction(engine) as connection:
        connection.execute(text("UPDATE counter SET n = 99 WHERE id = 1"))
        raise RuntimeError("refused half-way")
    with engine.connect() as connection:
        assert connection.execute(text("SELECT n FROM counter")).scalar() == 0


def test_a_connection_cut_while_idle_in_the_pool_is_replaced_on_checkout(
    engine: Engine, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "IDLE_PING_SECONDS", 0.05)
    with engine.connect() as connection:
        backend = connection.execute(text("SELECT pg_backend_pid()")).scalar()
    admin = create_engine(pg_schema, poolclass=NullPool)
    with admin.connect() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
        connection.commit()
    admin.dispose()
    time.sleep(0.1)
    for _ in range(3):
        with engine.connect() as connection:
            assert connection.execute(text("SELECT n FROM counter")).scalar() == 0


def test_many_rows_of_a_plain_insert_go_in_whole_or_not_at_all(engine: Engine) -> None:
    """From COPY_ROWS rows a plain INSERT goes as a COPY: same rows, same constraints."""
    table = Table("pair", MetaData(), Column("token", LargeBinary, primary_key=True))
    statement = insert(table).values(token=bindparam("token"))
    with engine.connect() as connection, connection.begin():
        connection.execute(text("CREATE TABLE pair (token bytea PRIMARY KEY)"))
    rows = [(bytes([n]) * 3,) for n in range(db.COPY_ROWS * 2)]
    with write_transaction(engine) as connection:
        db.driver_executemany_tuples(connection, statement, ("token",), rows)
    with pytest.raises(UniqueViolation), write_transaction(engine) as connection:
        db.driver_executemany_tuples(connection, statement, ("token",), [(b"new",), *rows])
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT token FROM pair ORDER BY token")).scalars()
        assert [bytes(value) for value in stored] == sorted(row[0] for row in rows)


def test_a_connection_to_a_database_behind_a_partition_is_given_up_not_waited_on(
    pg_schema: str,
) -> None:
    """Behind a partition nothing resets a connection: a connection being made waited
    for the server's first bytes for ever, holding a request's thread, and a server
    whose database's network failed hung instead of answering 503. libpq's timeouts
    and keepalives are set unless the URL gives its own (``db.PG_CONNECTION_DEFAULTS``)."""
    with proxied(pg_schema) as (proxy, through):
        engine = make_engine(through, pool_size=1)
        with engine.connect() as connection:
            raw = connection.connection.driver_connection
            assert raw is not None
            given = raw.info.get_parameters()
            for name, value in db.PG_CONNECTION_DEFAULTS.items():
                assert given[name] == value, name
        engine.dispose()
        # The wait itself, with the URL's own (shorter) timeout: it wins over the default,
        # and a connection being made behind the partition ends when it says.
        short = make_engine(_with(through, connect_timeout="2"), pool_size=1)
        proxy.stall()
        began = time.monotonic()
        try:
            with pytest.raises(OperationalError), short.connect():
                pass
        finally:
            short.dispose()
        # Given up by the timeout itself (a refused connection fails at once).
        assert 1.9 <= time.monotonic() - began < 2 + 5


def _with(url: str, **parameters: str) -> str:
    return make_url(url).update_query_dict(parameters).render_as_string(hide_password=False)


def test_the_loops_reads_are_given_up_behind_a_partition_as_the_engines_are(
    pg_schema: str,
) -> None:
    """The reads a server makes on its event loop connect on their own (``loop_reads``):
    they take the engine's timeouts and keepalives too (review of stop 57: they had none,
    and psycopg's own connect timeout is 130 s)."""
    with proxied(pg_schema) as (proxy, through):
        engine = make_engine(through, pool_size=1)
        reads = LoopReads(engine, size=1)
        statement = text("SELECT 1")
        try:
            assert asyncio.run(reads.first(statement, {})) == (1,)
            (connection,) = reads._opened
            given = connection.info.get_parameters()
            for name, value in db.PG_CONNECTION_DEFAULTS.items():
                assert given[name] == value, name
        finally:
            reads.close()
            engine.dispose()
        # The wait itself, with the URL's own timeout (2 s): as the engine's.
        engine = make_engine(_with(through, connect_timeout="2"), pool_size=1)
        reads = LoopReads(engine, size=1)
        proxy.stall()
        began = time.monotonic()
        try:
            with pytest.raises(LoopBusy):
                asyncio.run(reads.first(statement, {}))
            assert 1.9 <= time.monotonic() - began < 2 + 5
        finally:
            reads.close()
            engine.dispose()


def test_what_the_operator_set_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """A URL's own parameter, the environment's ``PGCONNECT_TIMEOUT`` and a service file's
    settings (``?service=``, read by libpq after the keywords it is given) win."""
    base = "postgresql+psycopg://carevault@db/carevault"
    assert db.pg_connect_args(base) == db.PG_CONNECTION_DEFAULTS
    assert "keepalives_idle" not in db.pg_connect_args(base + "?keepalives_idle=120")
    assert db.pg_connect_args("postgresql+psycopg:///?service=carevault") == {}
    monkeypatch.setenv("PGCONNECT_TIMEOUT", "25")
    kept = db.pg_connect_args(base)
    assert "connect_timeout" not in kept and kept["keepalives_idle"] == "30"
