"""What the CLI prints from stored data, made safe for the officer's terminal.

Names, titles, reasons and addresses are text someone typed or sent. Printed as they
are, an ESC (``\\x1b]0;…``, ``\\x1b[2J``), a C1 control (``\\x9b`` is a CSI of its own), a
carriage return or a bidirectional override (U+202E turns ``gpj.exe`` into ``exe.jpg``)
rewrites what the officer sees: hides lines, forges others, renames the window, or
plants a hyperlink. Every such character is printed as a ``\\uXXXX`` escape instead (a
character beyond the BMP as its two UTF-16 halves), which is also how JSON spells it, so
``--json`` output escaped this way is still valid JSON with the same values.

``cell(value)`` escapes a value for one line of a listing (line breaks and tabs too, so
a value cannot forge a row or a column); ``echo(text)`` prints text whose own line
breaks and tabs are kept (a notice's text, JSON); ``json_text`` is ``json.dumps`` made
safe the same way.
"""

from __future__ import annotations

import json
import unicodedata
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

#: Categories escaped: controls (C0, DEL, C1), format characters (bidirectional
#: overrides and isolates, zero-width characters), line and paragraph separators,
#: lone surrogates and unassigned code points.
_ESCAPED = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Cn"})
_KEPT_IN_TEXT = frozenset("\n\t")


def _escape(char: str) -> str:
    code = ord(char)
    if code > 0xFFFF:
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def _safe(text: str, kept: frozenset[str]) -> str:
    if text.isascii() and text.isprintable():
        return text
    return "".join(
        _escape(char) if char not in kept and unicodedata.category(char) in _ESCAPED else char
        for char in text
    )


def cell(value: object) -> str:
    """``value`` as text for one line of a listing: nothing in it can move the cursor,
    change the terminal, reorder the text or start a new line or column."""
    return _safe("" if value is None else str(value), frozenset())


def text(value: str) -> str:
    """``value`` with every control and override escaped but its line breaks and tabs."""
    return _safe(value, _KEPT_IN_TEXT)


def echo(value: str = "", *, err: bool = False) -> None:
    """``typer.echo`` of ``text(value)``."""
    typer.echo(text(value), err=err)


def json_text(document: Any, **options: Any) -> str:
    """``json.dumps(document, **options)``, still valid JSON, with no character in it
    that a terminal acts on (``ensure_ascii=False`` output keeps its Chinese)."""
    return text(json.dumps(document, **options))


def progress_console() -> Console:
    """Where a progress bar is drawn: standard error. Rich's default is standard output,
    and when that is not a terminal (a script's pipe) Rich prints the bar's last frame
    there, mixed into the result a script parses (README, "For scripts": standard output
    holds only the result)."""
    from rich.console import Console

    return Console(stderr=True)


def bar_label(value: object) -> str:
    """``value`` for a progress bar's description, which Rich reads as markup: escaped
    as ``cell`` escapes it, and its brackets too (a file named ``[link=…]`` would plant a
    hyperlink)."""
    from rich.markup import escape

    return escape(cell(value))
