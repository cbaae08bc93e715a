"""PostgreSQL reads awaited on the event loop: fixed, hot statements on connections of
the loop's own, run on libpq's asynchronous calls.

A read by id on PostgreSQL otherwise goes to a worker thread for its round trips: the
hop there and back, a pool checkout, and a thread that blocks on the socket and again on
the ledger cost the server more CPU than the read's own work. Here each event loop keeps
a few connections of its own, in autocommit (every statement sees what was committed
when it runs, as ``db.committed_reads`` gives on PostgreSQL), and awaits the answer
without leaving the loop.

Nothing here retries: when a statement fails for any reason (the database unreachable,
the request cancelled), it raises ``LoopBusy`` having given nothing, and the caller does
the read the ordinary way, in a worker thread, whose errors and their audit entries are
the ordinary ones. A connection that failed or was interrupted is closed, never reused.
A read that finds every connection of its loop busy waits (on the loop) for the next
one to be handed back.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import pq
from psycopg.adapt import Transformer
from psycopg.conninfo import make_conninfo
from sqlalchemy import ClauseElement, Engine, event
from sqlalchemy.dialects.postgresql import asyncpg
from sqlalchemy.sql.compiler import SQLCompiler

from carevault.db import note_unreachable, pg_connect_args

#: Connections one event loop keeps at most: a read holds one for a single round trip,
#: so a few serve many concurrent requests (a read finding all busy waits its turn).
CONNECTIONS_PER_LOOP = 4


#: How the loop's connections show in ``pg_stat_activity``.
APPLICATION_NAME = "carevault-loop-reads"


class LoopBusy(Exception):
    """The read cannot be answered on the loop now: do it in a worker thread instead."""


#: Compiles statements with positional parameters (``$1``), as the protocol takes them.
_POSITIONAL = asyncpg.dialect()  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class _Prepared:
    #: Kept so that its ``id`` (the cache's key) is never another statement's.
    statement: ClauseElement
    name: bytes
    sql: bytes
    #: The parameters' names, in their positions.
    order: tuple[str, ...]


class _Held:
    """One connection of a loop, with the statements prepared on it."""

    def __init__(self, connection: psycopg.AsyncConnection[Any]) -> None:
        self.connection = connection
        self.prepared: set[bytes] = set()
        self.rows = Transformer(connection)

    async def run(self, prepared: _Prepared, values: list[bytes]) -> tuple[Any, ...] | None:
        pgconn = self.connection.pgconn
        if prepared.name not in self.prepared:
            pgconn.send_prepare(prepared.name, prepared.sql)
            self._check(await self._result(), pq.ExecStatus.COMMAND_OK)
            self.prepared.add(prepared.name)
        pgconn.send_query_prepared(prepared.name, values, result_format=pq.Format.BINARY)
        result = self._check(await self._result(), pq.ExecStatus.TUPLES_OK)
        if result.ntuples == 0:
            return None
        self.rows.set_pgresult(result)
        return self.rows.load_row(0, tuple)

    async def _result(self) -> pq.abc.PGresult:
        """The one result of the query just sent, awaited on the loop."""
        pgconn = self.connection.pgconn
        loop = asyncio.get_running_loop()
        while pgconn.flush():
            await _ready(loop.add_writer, loop.remove_writer, pgconn.socket)
        result = await self._next_result(loop)
        if result is None:
            raise psycopg.OperationalError("no result from the server")
        # The query's end (libpq's null result) also waits for the server: awaited too,
        # never left to ``get_result``, which would block the loop on the socket.
        while await self._next_result(loop) is not None:
            pass
        return result

    async def _next_result(self, loop: asyncio.AbstractEventLoop) -> pq.abc.PGresult | None:
        """The query's next result, once libpq holds it whole (never blocking)."""
        pgconn = self.connection.pgconn
        pgconn.consume_input()
        while pgconn.is_busy():
            await _ready(loop.add_reader, loop.remove_reader, pgconn.socket)
            pgconn.consume_input()
        return pgconn.get_result()

    @staticmethod
    def _check(result: pq.abc.PGresult, wanted: pq.ExecStatus) -> pq.abc.PGresult:
        if result.status != wanted:
            raise psycopg.DatabaseError("a read on the event loop failed")
        return result


async def _ready(
    watch: Callable[..., object], unwatch: Callable[[int], object], socket: int
) -> None:
    """Until ``socket`` is ready (``watch``: the loop's add_reader or add_writer)."""
    ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    watch(socket, _settle, ready)
    try:
        await ready
    finally:
        unwatch(socket)


def _settle(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_result(None)


class _LoopConnections:
    """One event loop's connections; used only from that loop (no lock needed)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.idle: list[_Held] = []
        self.open = 0
        #: Reads waiting for a connection, first come first served.
        self.waiters: deque[asyncio.Future[_Held]] = deque()

    def give(self, connection: _Held) -> None:
        """Hand ``connection`` back: to the first read still waiting, or to the idle."""
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        self.idle.append(connection)

    def lost(self) -> None:
        """One connection was closed: a waiting read may open another in its place."""
        self.open -= 1
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(LoopBusy("a connection of the event loop failed"))
                return


class LoopReads:
    """Fixed, hot statements of one PostgreSQL engine, run on the running event loop."""

    def __init__(self, engine: Engine, size: int = CONNECTIONS_PER_LOOP) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("reads on the event loop are for PostgreSQL")
        self.engine = engine
        self.size = size
        # With the engine's own timeouts and keepalives (``db.pg_connect_args``): behind a
        # partition a connection being made, or one waiting on its read, is given up as
        # the engine's are, not waited on for minutes (review of stop 57).
        self._conninfo = make_conninfo(
            engine.url.set(drivername="postgresql").render_as_string(hide_password=False),
            **pg_connect_args(engine.url),
        )
        self._loops: dict[int, _LoopConnections] = {}
        #: Every connection opened, closed when the engine is disposed (from any thread:
        #: ``pgconn.finish`` needs no event loop).
        self._opened: list[psycopg.AsyncConnection[Any]] = []
        self._guard = threading.Lock()
        self._closed = False
        self._statements: dict[int, _Prepared] = {}
        #: Statements answered on an event loop (what tests and operators can watch).
        self.answered = 0
        event.listen(engine, "engine_disposed", lambda _engine: self.close())

    def _prepared(self, statement: ClauseElement) -> _Prepared:
        """``statement`` compiled once, with positional parameters (``$1``...), as the
        server prepares it."""
        found = self._statements.get(id(statement))
        if found is None:
            made = statement.compile(dialect=_POSITIONAL)
            assert isinstance(made, SQLCompiler)  # noqa: S101 - a SQL statement compiles so
            with self._guard:  # a name per statement, whichever loop (thread) asks first
                found = self._statements.get(id(statement))
                if found is None:
                    name = f"carevault_loop_{len(self._statements)}".encode()
                    order = tuple(made.positiontup or ())
                    found = _Prepared(statement, name, str(made).encode(), order)
                    self._statements[id(statement)] = found
        return found

    async def first(
        self, statement: ClauseElement, params: dict[str, str]
    ) -> tuple[Any, ...] | None:
        """The first row of ``statement`` (built once and kept: known by identity; its
        parameters all text), or None; ``LoopBusy`` if it cannot be read on this loop now.

        Run on the protocol itself (libpq's asynchronous calls, the loop told when the
        socket is readable, psycopg's loaders for the binary row): psycopg's own
        asynchronous execution cost more than twice the CPU of its blocking one."""
        prepared = self._prepared(statement)
        values = [params[name].encode() for name in prepared.order]
        pool = self._pool()
        held = await self._take(pool)
        try:
            row = await held.run(prepared, values)
        except BaseException as error:
            # Failed or interrupted (a cancelled request) half-way through a round trip:
            # the connection's state is unknown, so it is closed, never handed out again.
            self._discard(held.connection)
            pool.lost()
            if isinstance(error, psycopg.OperationalError):
                note_unreachable()
            if isinstance(error, Exception):
                raise LoopBusy("the read could not be made on the event loop") from error
            raise
        pool.give(held)
        self.answered += 1
        return row

    def _pool(self) -> _LoopConnections:
        loop = asyncio.get_running_loop()
        pool = self._loops.get(id(loop))
        if pool is None or pool.loop is not loop:
            pool = self._loops[id(loop)] = _LoopConnections(loop)
        return pool

    async def _take(self, pool: _LoopConnections) -> _Held:
        if self._closed:
            raise LoopBusy("the engine is disposed")
        if pool.idle:
            return pool.idle.pop()
        if pool.open >= self.size:
            waiter: asyncio.Future[_Held] = pool.loop.create_future()
            pool.waiters.append(waiter)
            try:
                return await waiter
            except asyncio.CancelledError:
                # Given a connection just as it was cancelled: hand it on.
                if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    pool.give(waiter.result())
                raise
        pool.open += 1
        try:
            connection = await psycopg.AsyncConnection.connect(
                self._conninfo, autocommit=True, application_name=APPLICATION_NAME
            )
        except BaseException as error:
            pool.open -= 1
            if isinstance(error, psycopg.OperationalError):
                note_unreachable()
            if isinstance(error, Exception):
                raise LoopBusy("no connection for the event loop") from error
            raise
        with self._guard:
            self._opened.append(connection)
            closed = self._closed
        if closed:  # disposed while connecting
            self._discard(connection)
            pool.lost()
            raise LoopBusy("the engine is disposed")
        connection.pgconn.nonblocking = 1
        return _Held(connection)

    def _discard(self, connection: psycopg.AsyncConnection[Any]) -> None:
        with self._guard, suppress(ValueError):
            self._opened.remove(connection)
        with suppress(Exception):
            connection.pgconn.finish()

    def backend_pids(self) -> list[int]:
        """The server process ids of the connections open now (``pg_stat_activity``)."""
        with self._guard:
            opened = list(self._opened)
        return [connection.info.backend_pid for connection in opened if not connection.closed]

    def close(self) -> None:
        """Close every connection of every loop (the engine is disposed)."""
        with self._guard:
            self._closed = True
            opened, self._opened = self._opened, []
            self._loops = {}
        for connection in opened:
            with suppress(Exception):
                connection.pgconn.finish()
