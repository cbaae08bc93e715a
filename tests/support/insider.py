"""What someone who may write to the database (a SQLite file, a PostgreSQL login) but holds
neither the keyring nor the HSM does in the adversary rounds' tests: rows edited in
place, seals and all left as they were."""

from __future__ import annotations

from sqlalchemy import ColumnElement, Table, update

from carevault.bootstrap import Services


def edit_rows(
    services: Services, table: Table, where: ColumnElement[bool], **values: object
) -> int:
    """``values`` written over the rows of ``table`` that ``where`` picks, in one
    transaction of the records' database; how many rows that was."""
    with services.engine.begin() as connection:
        return int(connection.execute(update(table).where(where).values(**values)).rowcount)
