"""What the CLI prints from stored data cannot drive the officer's terminal, and JSON
escaped for it is still the same JSON."""

from __future__ import annotations

import json

import pytest

from carevault.cli.terminal import cell, json_text, text

HOSTILE = [
    "\x1b]0;pwned\x07",  # retitles the window
    "\x1b[2J\x1b[H",  # clears the screen
    "\x9b2J",  # the same with a C1 CSI
    "\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\",  # a hyperlink
    "fake\rreal",  # overwrites the line
    "\u202eexe.jpg",  # right-to-left override
    "\u2066isolated\u2069 \u202a\u202b\u202c\u202d \u200e\u200f\u061c",
    "zero\u200bwidth\ufeff",
    "line\u2028separator\u2029",
    "tag\U000e0041",  # a Unicode tag character (outside the BMP)
    "\x7f\x08\x00",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_controls_and_overrides_are_printed_as_escapes(value: str) -> None:
    for shown in (cell(value), text(value)):
        assert shown.isprintable(), repr(shown)
        assert "\\u" in shown


def test_a_cell_cannot_start_a_row_or_a_column_but_text_keeps_its_lines() -> None:
    assert cell("a\nb\tc") == "a\\u000ab\\u0009c"
    assert text("a\nb\tc\x1b") == "a\nb\tc\\u001b"
    assert cell("陳大文 Alice O'Neill") == "陳大文 Alice O'Neill"
    assert cell(None) == "" and cell(42) == "42"
    assert cell("tag\U000e0041") == "tag\\udb40\\udc41"


@pytest.mark.parametrize("ascii_only", [True, False])
def test_escaped_json_is_valid_and_means_the_same(ascii_only: bool) -> None:
    document = {"names": HOSTILE, "陳": "大文", "nested": [{"\u202ekey": "\x9b"}]}
    shown = json_text(document, ensure_ascii=ascii_only, indent=1)
    assert json.loads(shown) == document
    assert all(char.isprintable() or char in "\n" for char in shown)
    if not ascii_only:
        assert "大文" in shown
