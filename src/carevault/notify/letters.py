"""Printed letters: one PDF per patient and a merged print file, in English or Chinese.

reportlab sets them in a TrueType font with Chinese glyphs (``CAREVAULT_PDF_FONT``, or
the first of Debian's CJK fonts installed, as the console's letters do). A letter is
personal data: the files are written 0600 in a 0700 directory, for printing and then
deletion (docs/notifications.md).
"""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

from carevault.keys.files import write_private
from carevault.notify.channels import Bounced, Outgoing
from carevault.notify.names import addressable
from carevault.notify.notice import HEADING_MARK

# reportlab and pypdf are imported where a PDF is made: the web app and every CLI command
# import this module (through the notice job and the console), and few of them print.
if TYPE_CHECKING:
    from reportlab.platypus import Flowable

#: Debian's fonts with Chinese glyphs, best first (the console's letters use the same).
FONT_CANDIDATES = (
    (Path("/usr/share/fonts/truetype/arphic/uming.ttc"), 1),
    (Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"), 0),
    (Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"), 0),
)
_fonts: dict[str, str] = {}
_lock = threading.Lock()


class FontMissing(RuntimeError):
    """No font with Chinese glyphs: install fonts-arphic-uming or set CAREVAULT_PDF_FONT."""


def letter_font(configured: Path | None) -> str:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    candidates = [(configured, 0)] if configured else list(FONT_CANDIDATES)
    with _lock:
        for path, index in candidates:
            key = f"{path}#{index}"
            if key in _fonts:
                return _fonts[key]
            if path is not None and path.is_file():
                name = f"CareVaultNotice{len(_fonts)}"
                pdfmetrics.registerFont(TTFont(name, str(path), subfontIndex=index))
                _fonts[key] = name
                return name
    raise FontMissing("no TrueType font with Chinese glyphs: set CAREVAULT_PDF_FONT")


def letter_pdf(outgoing: Outgoing, sender_name: str, date_line: str, font: str) -> bytes:
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer

    chinese = outgoing.recipient.language == "zh"
    wrap = "CJK" if chinese else None
    body = ParagraphStyle("body", fontName=font, fontSize=10.5, leading=15, wordWrap=wrap)
    styles = {
        "body": body,
        "heading": ParagraphStyle("h", parent=body, fontSize=12.5, leading=18, spaceBefore=6),
        "code": ParagraphStyle("code", parent=body, fontSize=16, leading=22, leftIndent=12 * mm),
        "bullet": ParagraphStyle("b", parent=body, leftIndent=6 * mm, firstLineIndent=-4 * mm),
        "small": ParagraphStyle("s", parent=body, fontSize=9, leading=12),
    }
    recipient = outgoing.recipient
    story: list[Flowable] = [Paragraph(escape(sender_name), styles["heading"]), Spacer(1, 4 * mm)]
    story.append(Paragraph(escape(date_line), styles["small"]))
    story.append(Spacer(1, 8 * mm))
    addressee = addressable(recipient.addressee) or addressable(recipient.patient_name)
    for line in (addressee, *recipient.address):
        if line:
            story.append(Paragraph(escape(line), styles["body"]))
    story.append(Spacer(1, 10 * mm))
    for paragraph in outgoing.rendered.letter.split("\n\n"):
        lines = [line for line in paragraph.split("\n") if line.strip()]
        for line in lines:
            if line.startswith(HEADING_MARK):
                story.append(Paragraph(escape(line[len(HEADING_MARK) :]), styles["heading"]))
            elif line.startswith("    "):
                story.append(Paragraph(escape(line.strip()), styles["code"]))
            elif line.startswith(("- ", "－ ")):
                story.append(Paragraph("• " + escape(line[2:]), styles["bullet"]))
            else:
                story.append(Paragraph(escape(line), styles["body"]))
        story.append(Spacer(1, 3 * mm))
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=22 * mm,
        rightMargin=22 * mm,
        topMargin=20 * mm,
        bottomMargin=20 * mm,
        title="Notice",
        author=sender_name,
    )
    document.build(story)
    return buffer.getvalue()


class LetterChannel:
    """Writes the letter; "sent" means ready to print (the merged file gathers them)."""

    name = "letter"

    def __init__(self, directory: Path, font: Path | None, date_line: str, sender: dict[str, str]):
        self.directory = directory
        self.font = font
        self.date_line = date_line
        self.sender = sender

    def path_for(self, incident_id: str, notice_key: str) -> Path:
        return self.directory / incident_id / f"{notice_key}.pdf"

    def send(self, outgoing: Outgoing) -> None:
        if not outgoing.recipient.address:
            raise Bounced("no postal address")
        name = self.sender.get(outgoing.recipient.language, self.sender["en"])
        pdf = letter_pdf(outgoing, name, self.date_line, letter_font(self.font))
        write_private(self.path_for(outgoing.incident_id, outgoing.notice_key), pdf)

    def close(self) -> None:
        return

    def merge(self, incident_id: str) -> Path | None:
        """The print file of every letter of the incident, beside their folder."""
        folder = self.directory / incident_id
        letters = sorted(folder.glob("*.pdf")) if folder.is_dir() else []
        if not letters:
            return None
        target = self.directory / f"print-{incident_id}.pdf"
        merge_letters(letters, target)
        return target


def merge_letters(paths: list[Path], target: Path) -> int:
    """One print file of every letter, in order; the number of letters in it."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    count = 0
    for path in paths:
        if path.is_file():
            writer.append(str(path))
            count += 1
    buffer = io.BytesIO()
    writer.write(buffer)
    write_private(target, buffer.getvalue())
    os.chmod(target, 0o600)
    return count
