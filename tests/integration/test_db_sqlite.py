"""SQLite's inserts of many narrow rows go as statements of many rows each
(``db._insert_in_statements``): the same rows in the same order, the same constraints,
all or nothing with the transaction; anything but a plain INSERT goes row by row."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    bindparam,
    insert,
    text,
)

from carevault import db
from carevault.db import make_engine, write_transaction

PAIRS = Table(
    "pair",
    MetaData(),
    Column("token", LargeBinary, primary_key=True),
    Column("n", Integer, nullable=False),
)
PLAIN = insert(PAIRS).values(token=bindparam("token"), n=bindparam("n"))
#: Built once, as the store's statements are.
IGNORING = insert(PAIRS).prefix_with("OR IGNORE").values(token=bindparam("token"), n=bindparam("n"))


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    made = make_engine(f"sqlite:///{tmp_path / 'pairs.db'}")
    with made.connect() as connection, connection.begin():
        connection.execute(
            text("CREATE TABLE pair (token BLOB PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID")
        )
        connection.execute(text("CREATE TABLE seen (n INTEGER)"))
        connection.execute(
            text(
                "CREATE TRIGGER pair_seen AFTER INSERT ON pair "
                "BEGIN INSERT INTO seen VALUES (NEW.n); END"
            )
        )
    yield made
    made.dispose()


def _rows(count: int, first: int = 0) -> list[tuple[bytes, int]]:
    return [(n.to_bytes(4, "big"), n) for n in range(first, first + count)]


def _stored(engine: Engine) -> tuple[list[tuple[bytes, int]], list[int]]:
    with engine.connect() as connection:
        pairs = [(bytes(t), n) for t, n in connection.execute(text("SELECT token, n FROM pair"))]
        seen = list(connection.execute(text("SELECT n FROM seen ORDER BY rowid")).scalars())
    return sorted(pairs), seen


def test_many_rows_go_in_statements_of_many_in_order_and_the_rest_row_by_row(
    engine: Engine,
) -> None:
    per = db.SQLITE_PARAMETERS // 2
    rows = _rows(per * 2 + 7)  # two whole statements and a remainder

    with write_transaction(engine) as connection:
        db.driver_executemany_tuples(connection, PLAIN, ("token", "n"), rows)

    pairs, seen = _stored(engine)
    assert pairs == rows
    assert seen == [n for _, n in rows]  # each row inserted once, in the order given


def test_a_row_the_table_refuses_takes_the_whole_transaction_back(engine: Engine) -> None:
    per = db.SQLITE_PARAMETERS // 2
    first = _rows(per + 3)
    with write_transaction(engine) as connection:
        db.driver_executemany_tuples(connection, PLAIN, ("token", "n"), first)
    again = _rows(per, first=10_000) + [first[5]]  # the duplicate in the row-by-row rest
    clash = [first[0], *_rows(per * 2, first=20_000)]  # the duplicate in a whole statement

    for rows in (again, clash):
        with pytest.raises(sqlite3.IntegrityError), write_transaction(engine) as connection:
            db.driver_executemany_tuples(connection, PLAIN, ("token", "n"), rows)

    assert _stored(engine)[0] == first


def test_an_insert_that_is_not_plain_keeps_its_meaning(engine: Engine) -> None:
    """OR IGNORE (a prefix) must not be dropped by building the statement again."""
    rows = _rows(db.COPY_ROWS * 20)
    with write_transaction(engine) as connection:
        db.driver_executemany_tuples(connection, PLAIN, ("token", "n"), rows[:5])

    with write_transaction(engine) as connection:
        db.driver_executemany_tuples(connection, IGNORING, ("token", "n"), rows)

    assert _stored(engine)[0] == rows


def test_a_row_of_the_wrong_length_is_refused_and_nothing_is_written(engine: Engine) -> None:
    """Flattened into one statement, a long row beside a short one would shift values into
    other columns; executemany refuses such rows, and so does this."""
    rows: list[tuple[Any, ...]] = [*_rows(db.SQLITE_PARAMETERS)]
    rows[3] = (*rows[3], 99)
    rows[4] = rows[4][:1]

    with pytest.raises(ValueError, match="every row"), write_transaction(engine) as connection:
        db.driver_executemany_tuples(connection, PLAIN, ("token", "n"), rows)

    assert _stored(engine) == ([], [])


def test_statements_built_per_call_never_take_each_others_sql(engine: Engine) -> None:
    """What a statement compiles to is kept by its id: a statement built per call and let
    go could hand its id to the next one, into another table."""
    with engine.connect() as connection, connection.begin():
        connection.execute(text("CREATE TABLE other (token BLOB PRIMARY KEY, n INTEGER)"))
    other = Table("other", MetaData(), Column("token", LargeBinary), Column("n", Integer))

    for round_ in range(40):
        for table in (PAIRS, other):
            statement = insert(table).values(token=bindparam("token"), n=bindparam("n"))
            with write_transaction(engine) as connection:
                db.driver_executemany_tuples(
                    connection, statement, ("token", "n"), _rows(db.COPY_ROWS, round_ * 100)
                )
            del statement

    with engine.connect() as connection:
        for name in ("pair", "other"):
            count = connection.execute(text(f"SELECT count(*) FROM {name}")).scalar()  # noqa: S608
            assert count == 40 * db.COPY_ROWS, name
