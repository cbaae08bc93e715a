"""Row ids in a URL's path (an incident, a containment): a number a row can have, or the
request is malformed (400) before any query runs. FastAPI's ``int`` alone let through
any integer, and one past 64 bits overflowed in the database driver: a 500, where the
officer had only mistyped a link."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from carevault.db import ROW_ID_MAX

RowId = Annotated[int, Path(ge=1, le=ROW_ID_MAX)]


def row_id(text: str) -> int | None:
    """``text`` as a row id if it is one written plainly (digits only, no sign, no
    spaces, in range), else None."""
    if not text.isascii() or not text.isdigit():
        return None
    number = int(text)
    return number if 0 < number <= ROW_ID_MAX else None
