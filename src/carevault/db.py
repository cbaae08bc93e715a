"""Database engine and transactions, shared by the modules that own tables.

SQLite (embedded default) and PostgreSQL (production) behave alike here:

* SQLite runs in WAL mode with a busy timeout, and write transactions start with
  ``BEGIN IMMEDIATE`` so two writers queue instead of failing on lock upgrade.
* ``synchronous=FULL`` keeps every committed transaction across a power loss,
  which the audit ledger's fail-closed promise needs.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from itertools import chain
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    BindParameter,
    ClauseElement,
    Column,
    Connection,
    Engine,
    Insert,
    Integer,
    MetaData,
    create_engine,
    event,
    exc,
    make_url,
    text,
)
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.compiler import SQLCompiler

#: One metadata for every table; each module declares its own tables on it.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

_IMMEDIATE = "carevault_immediate"

#: A 64-bit integer key that SQLite also treats as its rowid (so it autoincrements).
Sequence64 = BigInteger().with_variant(Integer(), "sqlite")


#: libpq's settings for every PostgreSQL connection, unless the URL gives its own
#: (``?connect_timeout=5``). Behind a partition nothing resets a connection: without
#: them a connection being made waited for the server's first bytes for ever, and one in
#: use waited on its read for as long as the operating system keeps a silent peer (two
#: hours before its first keepalive), each holding a request's thread, so a server
#: whose database's network failed hung rather than answered 503, and stayed hung after
#: the network came back. With them a connection is given up within 10 s of asking, a
#: silent one within about a minute (30 s idle, then 3 probes 10 s apart), and data
#: unacknowledged for 60 s ends its connection.
PG_CONNECTION_DEFAULTS: dict[str, str] = {
    "connect_timeout": "10",
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
    "tcp_user_timeout": "60000",
}


def pg_connect_args(url: str | URL) -> dict[str, str]:
    """``PG_CONNECTION_DEFAULTS`` for a connection to ``url``, but those the operator set:
    in the URL (``?connect_timeout=5``), in the environment (``PGCONNECT_TIMEOUT``), or in
    the ``pg_service.conf`` service the URL names (``?service=``: none of them, as libpq
    reads the file after its keywords). Every way CareVault connects to PostgreSQL takes
    them: the engines, the reads on the event loop (``loop_reads``), a backup's snapshot."""
    given = make_url(url).query if isinstance(url, str) else url.query
    if "service" in given:
        return {}
    return {
        name: value
        for name, value in PG_CONNECTION_DEFAULTS.items()
        if name not in given
        and not (name == "connect_timeout" and "PGCONNECT_TIMEOUT" in os.environ)
    }


def make_engine(url: str, *, pool_size: int = 16) -> Engine:
    """Create the engine for ``url`` with the settings CareVault relies on."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        future=True,
        connect_args=pg_connect_args(url),
    )
    _ping_when_idle(engine)
    return engine


#: A pooled PostgreSQL connection unused for this long is pinged before it is handed out.
IDLE_PING_SECONDS = 1.0
_CHECKED_IN = "carevault_checked_in"
#: When (monotonic) a database was last found unreachable by anything in this process:
#: a connection checked in before then is pinged at its next checkout, however recently
#: it was used, in every engine (each engine's pool learns of a cut only when one of its
#: own statements fails; a driver-level statement's failure does not tell it at all).
_UNREACHABLE_AT = [0.0]


def note_unreachable() -> None:
    """Tell every engine of this process that the database was found unreachable just now."""
    _UNREACHABLE_AT[0] = time.monotonic()


def _ping_when_idle(engine: Engine) -> None:
    """Ping a connection on checkout only if it sat in the pool a while.

    Pinging every checkout (``pool_pre_ping``) cost a round trip per checkout: one of a
    read by id's two. A connection in steady use was live a moment ago; one that sat
    idle may have been cut (a server restart, a firewall), and is pinged and replaced,
    the pool with it, as ``pool_pre_ping`` would. A connection that dies while in use
    fails its statement, and the pool drops it and every older one. Once any statement of
    this process has found the database unreachable, every connection checked in before
    is pinged too: after a short outage, connections used a moment before it (in another
    engine's pool, say the key store's) would otherwise fail the first requests after."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_CHECKED_IN] = time.monotonic()

    @event.listens_for(engine, "handle_error")
    def _on_error(context: Any) -> None:
        if context.is_disconnect:
            note_unreachable()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_CHECKED_IN)
        recent = since is not None and time.monotonic() - since < IDLE_PING_SECONDS
        if since is None or (recent and since > _UNREACHABLE_AT[0]):
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise exc.InvalidatePoolError("an idle pooled connection is no longer live") from error


#: What SQLite keeps beside a database file; it gives them the database file's mode.
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def private_sqlite_file(path: Path) -> None:
    """Make ``path`` (and what SQLite keeps beside it) readable by its owner alone.

    The file is created empty with mode 0600 before SQLite opens it, in a directory of
    mode 0700 if the directory is new: SQLite creates its -wal and -shm files with the
    database file's mode, so they are private too. Files of an older, laxer install are
    narrowed to 0600.
    """
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    # Only a missing file is opened (to create it): closing any descriptor of a file drops
    # every POSIX lock this process holds on it, and SQLite's locks on an open database are
    # such locks - a second engine made on a database already in use would strip the first
    # one's locks (later connections then failed with "disk I/O error").
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600))
    for candidate in (path, *(path.with_name(path.name + end) for end in SQLITE_COMPANIONS)):
        if candidate.exists():
            os.chmod(candidate, 0o600)


def _sqlite_engine(url: str) -> Engine:
    path = url.split("///", 1)[-1]
    if path and path != ":memory:":
        private_sqlite_file(Path(path))
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        poolclass=None if path != ":memory:" else NullPool,
        pool_size=32,
        max_overflow=32,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so that BEGIN is ours.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        # Reads through the operating system's page cache rather than copies into each
        # connection's small default cache (2 MB): a full ledger verify reads gigabytes.
        cursor.execute("PRAGMA mmap_size=1073741824")
        cursor.execute("PRAGMA cache_size=-16384")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(_IMMEDIATE, False)
        # On the driver's cursor: every read by id begins a transaction, and SQLAlchemy's
        # execution of a statement costs more than SQLite's BEGIN.
        cursor = connection.connection.cursor()
        try:
            cursor.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
        finally:
            cursor.close()

    return engine


_WRITER_LOCKS: dict[int, threading.RLock] = {}
_WRITER_LOCKS_GUARD = threading.Lock()


def _writer_lock(engine: Engine) -> threading.RLock:
    with _WRITER_LOCKS_GUARD:
        return _WRITER_LOCKS.setdefault(id(engine), threading.RLock())


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write: on SQLite it takes the write lock at once.

    Taking the lock up front turns a read-then-write race between processes into a
    wait rather than a "database is locked" error half-way through.
    """
    if engine.dialect.name != "sqlite":
        with engine.connect() as connection, connection.begin():
            yield connection
            _commit_then_flush(connection)
        return
    # Writers in this process queue on a lock before asking SQLite for its write lock:
    # SQLite's busy handler waits by sleeping with back-off, so a writer that keeps
    # coming back (the ledger's group commit) would otherwise starve the others.
    with _writer_lock(engine), engine.connect() as connection:
        connection = connection.execution_options(**{_IMMEDIATE: True})
        with connection.begin():
            yield connection


#: PostgreSQL: the advisory lock a transaction that writes records holds, shared, from
#: before it stamps them (``lastUpdated``) until it ends (``hold_record_writes``). One per
#: schema: advisory locks are the database's, and stores in other schemas of it (a
#: test's, another instance's) are not this store's writes.
_RECORD_WRITES_LOCK = "hashtextextended('carevault-record-writes:' || current_schema(), 0)"
_RECORD_WRITES = f"SELECT pg_advisory_xact_lock_shared({_RECORD_WRITES_LOCK})"
#: The same lock taken alone: no record write in flight while it is held.
_RECORD_WRITES_ALONE = f"SELECT pg_advisory_xact_lock({_RECORD_WRITES_LOCK})"
#: The transactions holding that lock now (granted, in this database), by virtual id.
_RECORD_WRITERS = f"""
    SELECT virtualtransaction FROM pg_locks, (SELECT {_RECORD_WRITES_LOCK} AS k) AS lock
    WHERE locktype = 'advisory' AND granted AND objsubid = 1
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND classid = ((lock.k >> 32) & 4294967295)::bigint::oid
      AND objid = (lock.k & 4294967295)::bigint::oid
      AND pid <> pg_backend_pid()
"""  # noqa: S608 - constants only, no input
#: How long a settling waits for the record writes in flight before giving up.
SETTLE_SECONDS = 30.0


class WritesInFlight(Exception):
    """Record writes in flight did not end within ``SETTLE_SECONDS``: no settled time."""


def hold_record_writes(connection: Connection) -> None:
    """In a write transaction, before its records are stamped: ``settled_now`` waits for
    it. On SQLite the transaction's write lock does it already."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(_RECORD_WRITES)


def hold_record_writes_alone(connection: Connection) -> None:
    """In a write transaction that rewrites rows record writes also rewrite, outside a
    record write (a pass over a table at start): wait for every record write in flight,
    and hold new ones until this transaction ends, so that neither waits for rows the
    other holds (a deadlock PostgreSQL would end by failing one). On SQLite the
    transaction's write lock does it already."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(_RECORD_WRITES_ALONE)


def lock_until_commit(connection: Connection, key: str) -> None:
    """In a write transaction: wait for, then hold until it ends, a lock on ``key``, so
    that transactions that look before they write (a count against a cap, a holder of an
    identifier) over the same ``key`` do so one at a time. PostgreSQL runs them side by
    side (read committed: neither sees what the other has not committed) and takes an
    advisory lock; SQLite's write lock, taken at ``BEGIN``, orders them already."""
    if connection.dialect.name == "postgresql":
        connection.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key}
        )


def settled_now(engine: Engine, now_us: Callable[[], int]) -> int:
    """A time (``now_us``) before which every record version stamped is committed, or
    never will be, once this returns: what a Bulk Data export's ``transactionTime`` and a
    polling client's Bundle (history, ``_lastUpdated``, ``$everything?_since``) must be
    as of, so that a client that asks ``_since`` it next misses no write stamped before
    it and committed after the read. A record write stamps inside its transaction, after
    ``hold_record_writes``, so one that stamps after this stamps later than it.

    PostgreSQL: the time is read, then the transactions holding the record-writes lock
    (those that may have stamped before it) are waited for, one poll of ``pg_locks`` at
    a time; writers that come after are not held up (a lock asked for exclusively would
    queue every new writer behind the slowest in flight). SQLite: the write lock, taken
    and given back, which writers stamp under.

    Inside a transaction this thread is pinned to (a transaction Bundle's GET entries):
    that transaction's own writes are in flight and would be waited for by themselves;
    its time is read as it stands. Raises ``WritesInFlight`` when writes in flight do not
    end within ``SETTLE_SECONDS``."""
    if pinned_connection(engine) is not None:
        return now_us()
    if engine.dialect.name != "postgresql":
        with write_transaction(engine):
            return now_us()
    with engine.connect() as connection:
        now = now_us()
        held = {row[0] for row in connection.exec_driver_sql(_RECORD_WRITERS)}
        connection.rollback()
        pause, deadline = 0.001, time.monotonic() + SETTLE_SECONDS
        while held:
            if time.monotonic() > deadline:
                raise WritesInFlight(f"{len(held)} record writes still in flight")
            time.sleep(pause)
            # A tenth of a second at most between looks: each is a read of ``pg_locks``
            # on a connection of the pool, and many pages waiting at once (a desk's long
            # transaction; clinicians' searches) slowed the write they waited for
            # (adversary round 84: 50 reads a second each at 20 ms).
            pause = min(pause * 2, 0.1)
            held &= {row[0] for row in connection.exec_driver_sql(_RECORD_WRITERS)}
            connection.rollback()
    return now


#: PostgreSQL: the commit of a write transaction, in one message (one round trip, as the
#: plain COMMIT it replaces). Its COMMIT does not wait for the disk, so its locks go at
#: once; then a transactional logical-decoding message (a few bytes of WAL, and a
#: transaction id) commits with the session's synchronous_commit, which is on: its
#: commit waits until the WAL is flushed up to its own commit record, which follows the
#: first transaction's. (A statement that only takes a transaction id would not do: a
#: commit that wrote no WAL before its commit record does not wait for the flush.)
_COMMIT_THEN_FLUSH = (
    "SET LOCAL synchronous_commit TO off; COMMIT; "
    "SELECT pg_logical_emit_message(true, 'carevault', '')"
)


def _commit_then_flush(connection: Connection) -> None:
    """Commit ``connection``'s transaction on PostgreSQL, releasing its locks before its
    WAL is flushed, and return once it is flushed.

    The audit ledger's head row is the append lock of every server process: held through
    the commit's fsync, each process's group commit waited out the other's flush in turn
    (two server processes read slower than one). Asynchronous commit keeps the database
    consistent: a crash loses a suffix of the WAL, so never a transaction without every
    one it was built on. And nothing is acknowledged before the flush: a request that
    read data committed but not yet flushed answers only after its own audit entry is
    flushed, which follows that data in the WAL.

    SQLAlchemy's COMMIT that follows finds no transaction open, and sends nothing."""
    driver = connection.connection.driver_connection
    assert driver is not None  # noqa: S101 - a live pooled connection has one
    from psycopg.pq import TransactionStatus

    if driver.info.transaction_status == TransactionStatus.IDLE:
        return  # no statement ran: nothing to commit
    with driver.cursor() as cursor:
        # Without parameters and unprepared, psycopg sends the three statements as one
        # simple query.
        cursor.execute(_COMMIT_THEN_FLUSH, prepare=False)


@contextmanager
def pipelined(connection: Connection) -> Iterator[None]:
    """On PostgreSQL, the statements run inside go to the server together and are
    answered together (psycopg's pipeline mode: one round trip, errors raised at the
    end of the block); elsewhere they run one by one. For writes whose results are not
    read (executemany, UPDATE), on the driver's cursor."""
    if connection.dialect.name != "postgresql":
        yield
        return
    driver = connection.connection.driver_connection
    assert driver is not None  # noqa: S101 - a live pooled connection has one
    with driver.pipeline():
        yield


_PINNED = threading.local()


@contextmanager
def pinned(engine: Engine, connection: Connection) -> Iterator[None]:
    """While inside, this thread's reads of ``engine`` run in ``connection``'s transaction.

    A transaction Bundle reads what it has just written before it commits: its reads
    must see its writes, and must not wait for the write lock the transaction holds."""
    previous: dict[int, Connection] = getattr(_PINNED, "connections", {})
    _PINNED.connections = {**previous, id(engine): connection}
    try:
        yield
    finally:
        _PINNED.connections = previous


def pinned_connection(engine: Engine) -> Connection | None:
    """The connection this thread's reads of ``engine`` are pinned to, if any."""
    connections: dict[int, Connection] = getattr(_PINNED, "connections", {})
    return connections.get(id(engine))


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A consistent read: one snapshot for everything read inside it."""
    held = pinned_connection(engine)
    if held is not None:
        yield held
        return
    with engine.connect() as connection, connection.begin():
        yield connection


_DRIVER_SQL: dict[tuple[int, str], tuple[ClauseElement, str, tuple[str, ...] | None]] = {}


def driver_scalar(connection: Connection, statement: ClauseElement, params: dict[str, Any]) -> Any:
    """The first column of the first row of a fixed, hot statement, run on the driver's
    cursor inside ``connection``'s transaction: compiled once per dialect, executed without
    SQLAlchemy's per-execution work (which costs more than a small indexed query).

    For statements built once and kept (they are known by identity) whose parameters are
    all plain values (no expanding ``IN``)."""
    row = driver_first(connection, statement, params)
    return None if row is None else row[0]


def driver_first(
    connection: Connection, statement: ClauseElement, params: dict[str, Any]
) -> tuple[Any, ...] | None:
    """The first row of a fixed, hot statement, as the driver returns it (a tuple): as
    ``driver_scalar``, for a read by id that needs the whole row."""
    sql, values = _driver_sql(connection, statement, params)
    cursor = connection.connection.cursor()
    try:
        cursor.execute(sql, values)
        row = cursor.fetchone()
    finally:
        cursor.close()
    return None if row is None else tuple(row)


def driver_all(
    connection: Connection, statement: ClauseElement, params: dict[str, Any]
) -> list[tuple[Any, ...]]:
    """Every row of a fixed, hot statement, as the driver returns them: as
    ``driver_first``, for a lookup by key that may find several rows."""
    sql, values = _driver_sql(connection, statement, params)
    cursor = connection.connection.cursor()
    try:
        cursor.execute(sql, values)
        return [tuple(row) for row in cursor.fetchall()]
    finally:
        cursor.close()


def _compiled(
    connection: Connection, statement: ClauseElement
) -> tuple[str, tuple[str, ...] | None]:
    """``statement`` compiled once per dialect: its SQL, and for a positional driver the
    order its parameters take."""
    key = (id(statement), connection.dialect.name)
    known = _DRIVER_SQL.get(key)
    if known is None or known[0] is not statement:
        made = statement.compile(dialect=connection.dialect)
        assert isinstance(made, SQLCompiler)  # noqa: S101 - a SQL statement compiles so
        order = tuple(made.positiontup) if made.positional and made.positiontup else None
        # The statement is kept with what it compiled to: while it is held here, no other
        # statement can be given its id (statements built per call would otherwise find
        # another's SQL).
        known = _DRIVER_SQL[key] = (statement, str(made), order)
    return known[1], known[2]


def _driver_sql(
    connection: Connection, statement: ClauseElement, params: dict[str, Any]
) -> tuple[str, Any]:
    """``statement`` compiled once per dialect, and ``params`` in the form its driver takes."""
    sql, order = _compiled(connection, statement)
    return sql, tuple(params[name] for name in order) if order is not None else params


def driver_executemany(
    connection: Connection, statement: ClauseElement, rows: list[dict[str, Any]]
) -> None:
    """A fixed, hot statement run once per row of ``rows`` on the driver's cursor inside
    ``connection``'s transaction: a bulk load inserts a version and several search tokens
    per record, and SQLAlchemy's per-row parameter processing cost more than the insert.

    Same conditions as ``driver_scalar``; every row must give every parameter."""
    if not rows:
        return
    sql, order = _compiled(connection, statement)
    values: list[Any] = (
        [tuple(row[name] for name in order) for row in rows] if order is not None else rows
    )
    cursor = connection.connection.cursor()
    try:
        cursor.executemany(sql, values)
    finally:
        cursor.close()


def driver_executemany_tuples(
    connection: Connection,
    statement: ClauseElement,
    names: tuple[str, ...],
    rows: list[tuple[Any, ...]],
) -> None:
    """``driver_executemany`` with each row a tuple of the parameters ``names``, in that
    order: a bulk load's search tokens are a dozen rows a record, and a dict per row cost
    as much as inserting it."""
    if not rows:
        return
    if len(rows) >= COPY_ROWS:
        target = _plain_insert(connection, statement, names)
        if target is not None and connection.dialect.name == "postgresql":
            driver = connection.connection.driver_connection
            assert driver is not None  # noqa: S101 - a live pooled connection has one
            with driver.cursor() as cursor, cursor.copy(f"COPY {target} FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        if target is not None and connection.dialect.name == "sqlite" and len(names) <= 4:
            rows = _insert_in_statements(connection, target, names, rows)
            if not rows:
                return
    sql, order = _compiled(connection, statement)
    values: list[Any]
    if order == names:
        values = rows
    elif order is not None:
        where = [names.index(name) for name in order]
        values = [tuple(row[index] for index in where) for row in rows]
    else:
        values = [dict(zip(names, row, strict=True)) for row in rows]
    cursor = connection.connection.cursor()
    try:
        cursor.executemany(sql, values)
    finally:
        cursor.close()


#: From this many rows, a plain INSERT of many rows goes to PostgreSQL as a COPY, and to
#: SQLite, if its rows are narrow (four columns at most), as statements of many rows
#: each (``_insert_in_statements``): a search token's two columns cost 2.3 µs a row one
#: statement each, 1.7 in statements of 499, while a record's head (nine columns, four
#: indexes) cost more so, 4.9 µs against 4.0.
COPY_ROWS = 32
#: The largest id a row can have: a signed 64-bit integer (SQLite's INTEGER, PostgreSQL's
#: BIGINT). A larger one given to a query overflows in the driver (an error, not a miss):
#: whoever takes an id from outside compares it with this first.
ROW_ID_MAX = 2**63 - 1
#: Parameters of one SQLite statement of many rows: the least limit of any SQLite build
#: (``SQLITE_MAX_VARIABLE_NUMBER`` was 999 before 3.32).
SQLITE_PARAMETERS = 999
_PLAIN_INSERTS: dict[tuple[int, tuple[str, ...], str], tuple[ClauseElement, str | None]] = {}


def _plain_insert(
    connection: Connection, statement: ClauseElement, names: tuple[str, ...]
) -> str | None:
    """``table (names)``, quoted, if ``statement`` is a plain INSERT whose values are
    exactly the parameters ``names``, each into the column of its name (no RETURNING, no
    ON CONFLICT, no prefix such as OR IGNORE); None otherwise. Such an insert of many
    rows can go as one COPY (PostgreSQL) or as statements of many rows each (SQLite),
    checking the same constraints, filling the same defaults and firing the same
    triggers as row by row.

    A bulk load's search tokens are ten rows a record: sent as an executemany, each row
    was a statement of its own, and PostgreSQL spent about as long on them as the loader
    on everything else; SQLite, 2.3 µs a row against 1.7 in statements of 499 rows
    (binding, stepping and resetting a statement, and the lock given back, per row)."""
    key = (id(statement), names, connection.dialect.name)
    known = _PLAIN_INSERTS.get(key)
    if known is not None and known[0] is statement:
        return known[1]
    found: str | None = None
    if (
        isinstance(statement, Insert)
        and not statement._returning
        and not statement._prefixes
        and statement._post_values_clause is None
        and not statement._multi_values
        and statement._values is not None
    ):
        given = {
            column.key if isinstance(column, Column) else str(column): value
            for column, value in statement._values.items()
        }
        if set(given) == set(names) and all(
            isinstance(given[name], BindParameter) and given[name].key == name for name in names
        ):
            preparer = connection.dialect.identifier_preparer
            columns = ", ".join(preparer.quote(name) for name in names)
            found = f"{preparer.format_table(statement.table)} ({columns})"
    # Kept with the statement, as ``_compiled`` keeps it: its id is never another's.
    _PLAIN_INSERTS[key] = (statement, found)
    return found


def _insert_in_statements(
    connection: Connection, target: str, names: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> list[tuple[Any, ...]]:
    """Insert ``rows`` into ``target`` (``_plain_insert``) on SQLite in statements of as
    many rows as one statement may take, in order; what is left (fewer than one such
    statement's rows) is returned, for the caller to insert row by row."""
    width = len(names)
    if any(length != width for length in set(map(len, rows))):
        # As executemany refuses a row of the wrong length (flattened, a long row beside
        # a short one would shift values into other columns).
        raise ValueError(f"every row must give the {width} values {', '.join(names)}")
    per = max(1, SQLITE_PARAMETERS // width)
    whole = len(rows) - len(rows) % per
    if whole == 0:
        return rows
    placeholders = "(" + ", ".join(["?"] * len(names)) + ")"
    # Only quoted names of our own tables and columns (``_plain_insert``), and "?"s.
    sql = f"INSERT INTO {target} VALUES " + ", ".join([placeholders] * per)  # noqa: S608
    cursor = connection.connection.cursor()
    try:
        for start in range(0, whole, per):
            cursor.execute(sql, list(chain.from_iterable(rows[start : start + per])))
    finally:
        cursor.close()
    return rows[whole:]


def driver_rows(connection: Connection, statement: ClauseElement) -> list[Any]:
    """A query's rows as the driver returns them (tuples, no row objects), inside
    ``connection``'s transaction, for reads of many rows. On PostgreSQL the results come
    in binary: bytea arrives as bytes rather than as hex text to decode."""
    if connection.dialect.name == "postgresql":
        compiled = statement.compile(dialect=connection.dialect)
        driver = connection.connection.driver_connection
        assert driver is not None  # noqa: S101 - a live pooled connection has one
        with driver.cursor(binary=True) as cursor:
            cursor.execute(str(compiled), compiled.params)
            return list(cursor.fetchall())
    result = connection.execute(statement)  # type: ignore[call-overload]
    try:
        return list(result.cursor.fetchall())
    finally:
        result.close()


@contextmanager
def statement_read(engine: Engine) -> Iterator[Connection]:
    """A connection for a read that is one statement, hence its own snapshot.

    On PostgreSQL it runs in autocommit: no BEGIN and COMMIT round trips around the one
    query (a proof is one). SQLite is in-process: there it is ``read_transaction``.
    """
    if engine.dialect.name == "sqlite" or pinned_connection(engine) is not None:
        with read_transaction(engine) as connection:
            yield connection
        return
    with engine.connect() as connection:
        yield connection.execution_options(isolation_level="AUTOCOMMIT")


@contextmanager
def committed_reads(engine: Engine, *, own: bool = False) -> Iterator[Connection]:
    """A connection for a few reads that each need what was committed when it runs, and
    no snapshot shared between them.

    PostgreSQL runs transactions at READ COMMITTED here, where each statement takes its
    own snapshot anyway: a transaction around such reads adds only its BEGIN and COMMIT
    round trips (two of a read by id's four), so they run in autocommit. On SQLite it
    is ``read_transaction`` (one snapshot, and in-process: nothing to save).

    ``own`` (the event loop's reads, on SQLite): the thread's own connection, kept open
    between requests, and no transaction around the reads, which then each see what was
    committed when they run, as on PostgreSQL. Checking a connection out of the pool and
    in again, and SQLAlchemy's BEGIN and COMMIT, cost a read by id more than its reads.
    For one thread per process (the event loop): each such thread holds one connection
    of the pool for as long as the engine lives (``engine.dispose()`` closes it).
    """
    if own and engine.dialect.name == "sqlite" and pinned_connection(engine) is None:
        connection = _own_connection(engine)
        try:
            yield connection
        finally:
            # A statement run through SQLAlchemy (not the driver) began a transaction:
            # never left open (it would hold the WAL's oldest snapshot).
            if connection.in_transaction():
                connection.rollback()
        return
    with statement_read(engine) as connection:
        yield connection


_OWN = threading.local()
#: Every thread's own connection to each engine, closed when the engine is disposed.
_OWN_BY_ENGINE: dict[int, list[Connection]] = {}
_OWN_GUARD = threading.Lock()


def _own_connection(engine: Engine) -> Connection:
    """This thread's own connection to ``engine`` (``committed_reads(own=True)``)."""
    owned: dict[int, Connection] = getattr(_OWN, "connections", None) or {}
    connection = owned.get(id(engine))
    if (
        connection is not None
        and connection.engine is engine
        and not connection.closed
        and not connection.invalidated
    ):
        return connection
    connection = engine.connect()
    _OWN.connections = {**owned, id(engine): connection}
    with _OWN_GUARD:
        if id(engine) not in _OWN_BY_ENGINE:
            event.listen(engine, "engine_disposed", _close_own)
        _OWN_BY_ENGINE.setdefault(id(engine), []).append(connection)
    return connection


def holds_own_connection(engine: Engine) -> bool:
    """Whether this thread keeps a connection of its own to ``engine`` (the event loop's,
    ``committed_reads(own=True)``): held for the engine's life, by no request."""
    owned: dict[int, Connection] = getattr(_OWN, "connections", None) or {}
    connection = owned.get(id(engine))
    return connection is not None and not connection.closed


def _close_own(engine: Engine) -> None:
    with _OWN_GUARD:
        connections = _OWN_BY_ENGINE.pop(id(engine), [])
    for connection in connections:
        with suppress(Exception):
            connection.close()


@contextmanager
def temporary_database(admin_url: str, prefix: str) -> Iterator[str]:
    """A PostgreSQL database of the caller's own (tests, benchmarks), dropped afterwards
    whatever happens; yields its URL. The name is ``prefix`` with the process id and a
    random suffix, so parallel runs never share one."""
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": name},
                )
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    finally:
        admin.dispose()


#: SQLSTATE classes of PostgreSQL that mean the storage, not the request, failed:
#: 08 connection exception, 53 insufficient resources (53100 disk full), 57P operator
#: intervention (the server shutting down), 58 system error (I/O).
_PG_UNAVAILABLE = ("08", "53", "57P", "58")


def storage_problem(error: BaseException) -> str | None:
    """Why the database could not serve, if ``error`` (or what caused it) says so:
    ``"disk full"`` or ``"database unreachable"``; None for any other error.

    Only the kind of failure is named, never the driver's message, which may quote the
    statement and its parameters. An unreachable database is remembered: the pools ping
    the connections they hand out next (``_ping_when_idle``)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        found = _classify(current)
        if found is not None:
            if found == "database unreachable":
                note_unreachable()
            return found
        current = current.__cause__ or current.__context__
    return None


def _classify(error: BaseException) -> str | None:
    import sqlite3

    from sqlalchemy import exc

    if isinstance(error, exc.DBAPIError) and error.orig is not None:
        inner = _classify(error.orig)
        if inner is not None:
            return inner
    if isinstance(error, sqlite3.OperationalError | sqlite3.DatabaseError):
        text = str(error).lower()
        if "full" in text:
            return "disk full"
        if "disk i/o" in text or "unable to open" in text or "readonly" in text:
            return "database unreachable"
        return None
    sqlstate = getattr(error, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate:
        if sqlstate == "53100":
            return "disk full"
        return "database unreachable" if sqlstate.startswith(_PG_UNAVAILABLE) else None
    if isinstance(error, exc.DisconnectionError | exc.TimeoutError | exc.InterfaceError):
        return "database unreachable"
    if isinstance(error, exc.OperationalError) and error.connection_invalidated:
        return "database unreachable"
    if type(error).__module__.startswith("psycopg") and type(error).__name__ in (
        "OperationalError",
        "InterfaceError",
    ):
        return "database unreachable"
    if isinstance(error, OSError) and error.errno == 28:  # ENOSPC
        return "disk full"
    return None


class WouldBlock(Exception):
    """Work asked not to wait (it runs on the event loop) would have to wait for more than
    the CPU: a database round trip, or a data key to unwrap, whose log entry is a durable
    write of its own. Raised before anything is recorded, spent or changed: do the work
    again where waiting is allowed (a worker thread)."""


#: Set while a request is answered on the event loop (``on_the_loop``).
_ON_LOOP: ContextVar[bool] = ContextVar("carevault_on_the_loop", default=False)


@contextmanager
def on_the_loop() -> Iterator[None]:
    """Within: caches whose refresh is a database round trip (sessions, containment, the
    staff directory) answer only from what they hold, or raise ``WouldBlock``; a round
    trip through the pool would stall every request the loop serves, and wait behind
    worker threads for a connection or a lock. Per task (a context variable)."""
    token = _ON_LOOP.set(True)
    try:
        yield
    finally:
        _ON_LOOP.reset(token)


def refuse_on_the_loop(what: str) -> None:
    """``WouldBlock`` (naming ``what`` would be read) inside ``on_the_loop``."""
    if _ON_LOOP.get():
        raise WouldBlock(f"{what} would be read from the database on the event loop")
