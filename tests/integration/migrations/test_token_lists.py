"""records_0023: rows written before it get their token lists from the index; on SQLite
the index then goes (replacing a row's tokens reads the list instead), on PostgreSQL it
stays (its search plans use it); downgrading drops the lists and brings SQLite's index
back."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text

from carevault.config import Settings
from carevault.db import make_engine
from carevault.migrations import downgrade, upgrade
from carevault.migrations.records.versions import r0023_token_lists
from carevault.vault.tokenlist import unpack

# Each test takes its stores through the migrations itself, from nothing.
pytestmark = [pytest.mark.fresh_home, pytest.mark.postgres]

REVISION = r0023_token_lists.revision
BEFORE = r0023_token_lists.down_revision


def test_rows_written_before_get_their_lists_and_sqlites_row_index_goes(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Three heads to a batch: the rows below span batches, and one has no tokens.
    monkeypatch.setattr(r0023_token_lists, "_BATCH", 3)
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    tokens = {row_id: [bytes([row_id, n]) * 8 for n in range(row_id % 4)] for row_id in range(1, 9)}
    tokens[5].append(b"Observation|status|" + b"x" * 200)  # a clear token past 127 bytes

    def indexes() -> set[str]:
        return {index["name"] for index in inspect(engine).get_indexes("search_token")}

    try:
        upgrade("records", engine, BEFORE)
        with engine.begin() as connection:
            for row_id, held in tokens.items():
                connection.execute(
                    text(
                        "INSERT INTO resource_head (row_id, resource_type, resource_id,"
                        " version_id, last_updated_us, deleted) VALUES (:row, 'Observation',"
                        " :id, 1, 10, false)"
                    ),
                    {"row": row_id, "id": f"o{row_id}"},
                )
                for token in held:
                    connection.execute(
                        text("INSERT INTO search_token (token, row_id) VALUES (:token, :row)"),
                        {"token": token, "row": row_id},
                    )
        assert "ix_search_token_row" in indexes()
        upgrade("records", engine, REVISION)
        assert ("ix_search_token_row" in indexes()) == (engine.dialect.name == "postgresql")
        with engine.connect() as connection:
            lists = {
                int(row_id): sorted(unpack(bytes(packed)))
                for row_id, packed in connection.execute(
                    text("SELECT row_id, tokens FROM search_token_list")
                )
            }
        assert lists == {row_id: sorted(held) for row_id, held in tokens.items() if held}
        downgrade("records", engine, BEFORE)
        assert "ix_search_token_row" in indexes()
        assert "search_token_list" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()
