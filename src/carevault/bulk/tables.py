"""Tables of bulk imports: how far each source file has got, and its refused lines.

A file is known by the SHA-256 of its bytes, so that running the same import again
(after a kill, or by mistake) carries on where the last committed batch ended, and
a finished file is not loaded twice. Both tables are written in the transaction that
writes the batch's records, so progress and records cannot disagree.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, String, Table, Text

from carevault.db import metadata

bulk_import_file = Table(
    "bulk_import_file",
    metadata,
    Column("file_sha256", String(64), primary_key=True),
    Column("name", String(400), nullable=False),
    Column("items_total", Integer, nullable=False),
    #: Items of the file (lines, or Bundle entries in load order) whose batch committed.
    Column("items_done", Integer, nullable=False),
    Column("accepted", Integer, nullable=False),
    Column("rejected", Integer, nullable=False),
    Column("started_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    Column("finished_us", BigInteger, nullable=True),
    #: Lines of the batch after ``items_done`` already committed (comma-separated), when a
    #: batch with a refused record was split: they are not loaded again on resume.
    Column("pending_lines", Text, nullable=True),
)

#: Why a line was refused. The reason names the rule and the element, never a value.
bulk_import_rejection = Table(
    "bulk_import_rejection",
    metadata,
    Column("file_sha256", String(64), primary_key=True),
    Column("line", Integer, primary_key=True),
    Column("reason", Text, nullable=False),
    #: ``Type/id`` of the record stored under the line's id that the import may not change
    #: (another clinic's patient made first under that id), or of a line refused for
    #: naming one: a resumed run refuses the lines that name it, as the first run did
    #: (``bulk.loader.Loader._unmoored``). None for any other refusal.
    Column("record", String(200), nullable=True),
)
