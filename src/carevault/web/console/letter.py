"""The patient access report as a PDF letter, in English or Traditional Chinese, for a
data access request under the Personal Data (Privacy) Ordinance.

reportlab draws it with a TrueType font that has Chinese glyphs, from Debian's
packages (``fonts-arphic-uming``, its Hong Kong face, installed by ``scripts/setup``;
WenQuanYi Micro Hei if that is what is there), or the one ``CAREVAULT_PDF_FONT``
names. The letter shows the patient's name and address only (never an HKID number),
and every line's inclusion proof in an appendix, with the signed checkpoint, so the
patient or anyone they ask can check it with the standalone verifier.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from carevault.notify.contacts import clean
from carevault.notify.names import addressable
from carevault.web.console.i18n import Translator
from carevault.web.console.people import PatientCard

# reportlab is imported when a letter is drawn (on a worker thread), not when the console
# is: every server process imports the console, and few ever print a letter.
if TYPE_CHECKING:
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.platypus import Paragraph

#: Debian's fonts with Chinese glyphs that reportlab can embed (TrueType outlines), best
#: first: AR PL UMing in its Hong Kong face (index 1 of the collection), then WenQuanYi.
FONT_CANDIDATES = (
    (Path("/usr/share/fonts/truetype/arphic/uming.ttc"), 1),
    (Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"), 0),
    (Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"), 0),
)
FONT_NAME = "CareVaultLetter"
_registered: dict[str, str] = {}
_lock = threading.Lock()


class LetterFontMissing(RuntimeError):
    """No font with Chinese glyphs: install fonts-arphic-uming or set CAREVAULT_PDF_FONT."""


def _font(configured: Path | None) -> str:
    """Register the letter font once per process; its reportlab name."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    candidates = [(configured, 0)] if configured else list(FONT_CANDIDATES)
    with _lock:
        for path, index in candidates:
            key = f"{path}#{index}"
            if key in _registered:
                return _registered[key]
            if path is not None and path.is_file():
                name = f"{FONT_NAME}{len(_registered)}"
                pdfmetrics.registerFont(TTFont(name, str(path), subfontIndex=index))
                _registered[key] = name
                return name
    raise LetterFontMissing("no TrueType font with Chinese glyphs was found")


def _styles(font: str, chinese: bool) -> dict[str, ParagraphStyle]:
    from reportlab.lib.styles import ParagraphStyle

    wrap = "CJK" if chinese else None
    base = ParagraphStyle("body", fontName=font, fontSize=10, leading=14, wordWrap=wrap)
    return {
        "body": base,
        "small": ParagraphStyle("small", parent=base, fontSize=8, leading=10),
        "title": ParagraphStyle("title", parent=base, fontSize=15, leading=20, spaceAfter=6),
        "heading": ParagraphStyle("heading", parent=base, fontSize=12, leading=16, spaceBefore=8),
        "mono": ParagraphStyle("mono", fontName="Courier", fontSize=6.5, leading=8),
    }


def access_letter(
    card: PatientCard | None,
    report: dict[str, Any],
    *,
    language: str,
    zone: ZoneInfo,
    clinics: dict[str, str],
    group: str,
    font: Path | None,
    signed_by: str,
    made_us: int,
) -> bytes:
    """The PDF bytes of the letter. ``group`` and ``clinics`` (id → name) are the names
    the configuration gives (``CAREVAULT_NOTIFY_GROUP_NAME[_ZH]``,
    ``CAREVAULT_CLINIC_NAMES[_ZH]``): a clinic it does not name is printed by its id."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.platypus import (
        PageBreak,
        Paragraph,
        Preformatted,
        SimpleDocTemplate,
        Spacer,
        Table,
        TableStyle,
    )

    t = Translator(language, zone)
    chinese = t.language != "en"
    styles = _styles(_font(font), chinese)
    lines: list[dict[str, Any]] = report["accesses"]

    def p(text: str, style: str = "body") -> Paragraph:
        return Paragraph(escape(text), styles[style])

    story: list[Any] = [p(t("letter.from", group=group), "small"), Spacer(1, 8 * mm)]
    # The notices' check (notify.names): a "name" holding a link, an @, a domain or a
    # phone number is someone's text, not a name, and is not printed on a signed letter.
    names = [name for name in (addressable(clean(n)) for n in card.names) if name] if card else []
    if card is not None:
        if names:
            story.append(p(" / ".join(names)))
        story.extend(p(line) for line in card.address)
    story += [
        Spacer(1, 6 * mm),
        p(t.when(made_us), "small"),
        Spacer(1, 4 * mm),
        p(t("letter.title"), "title"),
        p(t("letter.dear", name=names[0]) if names else t("letter.dear_patient")),
        p(t("letter.opening")),
        Spacer(1, 3 * mm),
        p(t("letter.summary", n=len(lines), size=report["tree_size"])),
    ]
    if not report.get("complete", True):
        story.append(
            p(t("letter.incomplete", n=len(lines), total=report["total"], left=report["left_out"]))
        )
    if report.get("after_checkpoint"):
        story.append(
            p(t("letter.after_checkpoint", n=report["after_checkpoint"], size=report["tree_size"]))
        )
    story.append(Spacer(1, 4 * mm))
    rows: list[list[Any]] = [
        [
            p(t("report.when"), "small"),
            p(t("report.who"), "small"),
            p(t("report.clinic"), "small"),
            p(t("report.action"), "small"),
            p(t("report.categories"), "small"),
        ]
    ]
    for line in lines:
        who = line.get("name") or line.get("who") or ""
        clinic_names = ", ".join(clinics.get(c, c) for c in line.get("clinics") or []) or "—"
        categories = ", ".join(t.category(c) for c in line.get("categories") or []) or "—"
        action = t.action(line["action"])
        if line.get("outcome") != "success":
            action += f" ({t('outcome.' + line['outcome'])})"
        rows.append(
            [
                p(t.when(line["at_us"]), "small"),
                p(f"{who} ({t.role(line.get('role'))})", "small"),
                p(clinic_names, "small"),
                p(action, "small"),
                p(categories, "small"),
            ]
        )
    if not lines:
        rows.append([p(t("report.none"), "small"), "", "", "", ""])
    table = Table(rows, colWidths=[28 * mm, 45 * mm, 35 * mm, 30 * mm, 40 * mm], repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8edf3")),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    story += [
        table,
        Spacer(1, 5 * mm),
        p(t("letter.how_to_check")),
        Spacer(1, 3 * mm),
        p(t("letter.questions")),
        Spacer(1, 8 * mm),
        p(signed_by),
        p(t("role.privacy_officer"), "small"),
        PageBreak(),
        p(t("letter.appendix"), "heading"),
        p(t("letter.appendix_intro"), "small"),
        Spacer(1, 2 * mm),
        Preformatted(report["checkpoint"], styles["mono"]),
    ]
    for line in lines:
        story.append(p(t("letter.proof_of", seq=line["seq"]), "small"))
        story.append(Preformatted("\n".join(line["proof"]) or "-", styles["mono"]))
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=18 * mm,
        bottomMargin=18 * mm,
        title=t("letter.title"),
        author=group,
        lang=t.html_lang,
    )
    document.build(story)
    return buffer.getvalue()
