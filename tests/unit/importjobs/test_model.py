"""Who may send an ``$import``, and how its lines are counted."""

from __future__ import annotations

import pytest

from carevault.access.scopes import parse
from carevault.importjobs.model import count_lines, may_import

SYSTEM = frozenset({"system"})


@pytest.mark.parametrize(
    ("scopes", "principal", "allowed"),
    [
        ("system/*.cruds", "client:app", True),
        ("system/Observation.c", "client:app", True),
        ("system/Patient.u", "client:app", True),
        ("system/*.rs", "client:app", False),
        ("system/*.read", "client:app", False),
        ("system/*.cruds", "staff:nurse", False),
    ],
)
def test_only_a_backend_service_with_a_write_scope_may_import(
    scopes: str, principal: str, allowed: bool
) -> None:
    assert may_import(parse(scopes, allowed_contexts=SYSTEM), principal) is allowed


def test_no_scopes_no_import() -> None:
    assert not may_import(None, "client:app")


@pytest.mark.parametrize(
    ("body", "lines"),
    [(b"", 0), (b"{}", 1), (b"{}\n", 1), (b"{}\n{}", 2), (b"{}\n\n{}\n", 3)],
)
def test_lines_are_counted_as_the_loader_numbers_them(body: bytes, lines: int) -> None:
    assert count_lines(body) == lines
