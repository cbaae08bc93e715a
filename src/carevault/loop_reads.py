"""PostgreSQL reads awaited on the event loop (psycopg's ``AsyncConnection``).

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
from contextlib import suppress
from typing import Any

import psycopg
from sqlalchemy import ClauseElement, Engine, event
from sqlalchemy.sql.compiler import SQLCompiler

from carevault.db import note_unreachable

#: Connections one event loop keeps at most: a read holds one for a single round trip,
#: so a few serve many concurrent requests (a read finding all busy waits its turn).
CONNECTIONS_PER_LOOP = 4


#: How the loop's connections show in ``pg_stat_activity``.
APPLICATION_NAME = "carevault-loop-reads"


class LoopBusy(Exception):
    """The read cannot be answered on the loop now: do it in a worker thread instead."""


class _LoopConnections:
    """One event loop's connections; used only from that loop (no lock needed)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.idle: list[psycopg.AsyncConnection[Any]] = []
        self.open = 0
        #: Reads waiting for a connection, first come first served.
        self.waiters: deque[asyncio.Future[psycopg.AsyncConnection[Any]]] = deque()

    def give(self, connection: psycopg.AsyncConnection[Any]) -> None:
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
        self._conninfo = engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )
        self._loops: dict[int, _LoopConnections] = {}
        #: Every connection opened, closed when the engine is disposed (from any thread:
        #: ``pgconn.finish`` needs no event loop).
        self._opened: list[psycopg.AsyncConnection[Any]] = []
        self._guard = threading.Lock()
        self._closed = False
        self._sql: dict[int, str] = {}
        #: Statements answered on an event loop (what tests and operators can watch).
        self.answered = 0
        event.listen(engine, "engine_disposed", lambda _engine: self.close())

    def sql(self, statement: ClauseElement) -> str:
        """``statement`` compiled once for PostgreSQL (named parameters, as psycopg takes)."""
        found = self._sql.get(id(statement))
        if found is None:
            made = statement.compile(dialect=self.engine.dialect)
            assert isinstance(made, SQLCompiler)  # noqa: S101 - a SQL statement compiles so
            found = self._sql[id(statement)] = str(made)
        return found

    async def first(
        self, statement: ClauseElement, params: dict[str, Any]
    ) -> tuple[Any, ...] | None:
        """The first row of ``statement`` (built once and kept: known by identity), or
        None; ``LoopBusy`` if it cannot be read on this loop now."""
        sql = self.sql(statement)
        pool = self._pool()
        connection = await self._take(pool)
        try:
            cursor = connection.cursor()
            await cursor.execute(sql, params)
            row = await cursor.fetchone()
        except BaseException as error:
            # Failed or interrupted (a cancelled request) half-way through a round trip:
            # the connection's state is unknown, so it is closed, never handed out again.
            self._discard(connection)
            pool.lost()
            if isinstance(error, psycopg.OperationalError):
                note_unreachable()
            if isinstance(error, Exception):
                raise LoopBusy("the read could not be made on the event loop") from error
            raise
        pool.give(connection)
        self.answered += 1
        return None if row is None else tuple(row)

    def _pool(self) -> _LoopConnections:
        loop = asyncio.get_running_loop()
        pool = self._loops.get(id(loop))
        if pool is None or pool.loop is not loop:
            pool = self._loops[id(loop)] = _LoopConnections(loop)
        return pool

    async def _take(self, pool: _LoopConnections) -> psycopg.AsyncConnection[Any]:
        if self._closed:
            raise LoopBusy("the engine is disposed")
        if pool.idle:
            return pool.idle.pop()
        if pool.open >= self.size:
            waiter: asyncio.Future[psycopg.AsyncConnection[Any]] = pool.loop.create_future()
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
        return connection

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
