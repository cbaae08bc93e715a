"""The two catalogues say the same things, and every label a page asks for exists."""

from __future__ import annotations

import re
import string
from pathlib import Path

from carevault.access.breakglass import BreakGlassReason
from carevault.containment.state import TARGETED, Mode
from carevault.domain.categories import DataCategory
from carevault.domain.roles import Role
from carevault.ledger.audit import ACCESS_TAGS
from carevault.ledger.events import Outcome, Tag
from carevault.web.console import catalogue_en, catalogue_zh
from carevault.web.console.i18n import Translator, negotiate
from carevault.web.console.render import NAVIGATION

TEMPLATES = Path(catalogue_en.__file__).parent.parent / "templates" / "console"
SOURCES = Path(catalogue_en.__file__).parent
_LITERAL = re.compile(r"""t\(\s*["']([a-z_]+\.[a-z0-9_.\-]+)["']""")
_KEY_ARGUMENT = re.compile(r"""_key["']?\s*[:=]\s*["']([a-z_]+\.[a-z0-9_.\-]+)["']""")


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_both_catalogues_have_the_same_keys_and_blanks() -> None:
    english, chinese = catalogue_en.MESSAGES, catalogue_zh.MESSAGES
    assert set(english) == set(chinese)
    for key, text in english.items():
        assert _fields(text) == _fields(chinese[key]), key
        assert chinese[key] != text or key.startswith(("app.name",)), f"{key} is not translated"


def test_every_label_a_page_or_route_names_is_in_the_catalogue() -> None:
    wanted: set[str] = set()
    for path in [*TEMPLATES.glob("*.html"), *SOURCES.glob("*.py")]:
        text = path.read_text(encoding="utf-8")
        wanted |= set(_LITERAL.findall(text)) | set(_KEY_ARGUMENT.findall(text))
    wanted |= {item.label for item in NAVIGATION}
    # A key ending in "." is a prefix completed from a value (see the next test).
    missing = sorted(k for k in wanted if not k.endswith(".") and k not in catalogue_en.MESSAGES)
    assert missing == []
    assert len(wanted) > 150, "the scan must find the labels it checks"


def test_every_label_built_from_a_value_exists() -> None:
    built = (
        [f"mode.{m}" for m in Mode]
        + [f"mode.{m}.{part}" for m in Mode for part in ("does", "reaches", "release")]
        + [f"mode.{m}.{part}" for m in TARGETED for part in ("target", "target_hint")]
        + [f"role.{r}" for r in Role]
        + [f"category.{c}" for c in DataCategory]
        + [f"outcome.{o}" for o in Outcome]
        + [f"action.{tag}" for tag in ACCESS_TAGS | {Tag.EMERGENCY_REQUESTED.value}]
        + [f"glass.reason.{r}" for r in BreakGlassReason]
        + [f"containment.done.{d}" for d in ("started", "released", "approved")]
        + [f"staff.done.{d}" for d in ("suspended", "reinstated", "ended", "revoked")]
    )
    missing = [key for key in built if key not in catalogue_en.MESSAGES]
    assert missing == []


def test_a_missing_chinese_label_falls_back_to_english_and_blanks_are_filled() -> None:
    from zoneinfo import ZoneInfo

    t = Translator("zh-Hant", ZoneInfo("Asia/Hong_Kong"))
    assert t("time.minutes_ago", n=5) == "5 分鐘前"
    assert t.html_lang == "zh-Hant-HK"
    catalogue_zh.MESSAGES.pop("nav.soon")
    try:
        assert t("nav.soon") == catalogue_en.MESSAGES["nav.soon"]
    finally:
        catalogue_zh.MESSAGES["nav.soon"] = "尚未推出"
    assert Translator("fr", ZoneInfo("UTC")).language == "en"


def test_before_sign_in_the_language_follows_the_link_then_the_browser() -> None:
    assert negotiate("zh-Hant", "en-GB") == "zh-Hant"
    assert negotiate(None, "zh-HK,zh;q=0.9,en;q=0.8") == "zh-Hant"
    assert negotiate("klingon", "en-US,en;q=0.9") == "en"
    assert negotiate(None, None) == "en"
