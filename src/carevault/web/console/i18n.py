"""The console's two languages: English and Traditional Chinese (Hong Kong).

Every label comes from a message catalogue (``catalogue_en``, ``catalogue_zh``) by
key; a key missing from the Chinese catalogue falls back to English (a test keeps
the two complete). A signed-in person's choice is kept with their account; before
sign-in the page follows ``?lang=`` or the browser's Accept-Language.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from carevault.clock import from_micros
from carevault.console.sessions import LANGUAGES
from carevault.web.console.catalogue_en import MESSAGES as ENGLISH
from carevault.web.console.catalogue_zh import MESSAGES as CHINESE

CATALOGUES: dict[str, dict[str, str]] = {"en": ENGLISH, "zh-Hant": CHINESE}
#: The value of <html lang>: Traditional Chinese as written in Hong Kong.
HTML_LANG = {"en": "en", "zh-Hant": "zh-Hant-HK"}


def negotiate(asked: str | None, accept_language: str | None) -> str:
    """The language to speak to someone not signed in."""
    if asked in LANGUAGES:
        return asked
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh-Hant"
        if tag.startswith("en"):
            return "en"
    return "en"


class Translator:
    """``t("key", name=value)``: the label in this language, with its blanks filled."""

    def __init__(self, language: str, zone: ZoneInfo) -> None:
        self.language = language if language in CATALOGUES else "en"
        self.messages = CATALOGUES[self.language]
        self.zone = zone

    @property
    def html_lang(self) -> str:
        return HTML_LANG[self.language]

    def __call__(self, key: str, **values: object) -> str:
        text = self.messages.get(key) or ENGLISH.get(key) or key
        return text.format(**values) if values else text

    def when(self, at_us: int | None) -> str:
        """An instant in the group's time zone, to the minute."""
        if at_us is None:
            return self("time.never")
        moment: datetime = from_micros(at_us).astimezone(self.zone)
        return moment.strftime("%Y-%m-%d %H:%M")

    def when_seconds(self, at_us: int | None) -> str:
        if at_us is None:
            return self("time.never")
        return from_micros(at_us).astimezone(self.zone).strftime("%Y-%m-%d %H:%M:%S")

    def ago(self, at_us: int | None, now_us: int) -> str:
        """How long ago, in the largest unit that fits."""
        if at_us is None:
            return self("time.never")
        minutes = max(0, (now_us - at_us) // 60_000_000)
        if minutes < 1:
            return self("time.just_now")
        if minutes < 60:
            return self("time.minutes_ago", n=minutes)
        if minutes < 48 * 60:
            return self("time.hours_ago", n=minutes // 60)
        return self("time.days_ago", n=minutes // (24 * 60))

    def mode(self, mode: str) -> str:
        return self(f"mode.{mode}")

    def role(self, role: str | None) -> str:
        return self(f"role.{role}") if role else "—"

    def category(self, category: str) -> str:
        return self(f"category.{category}")

    def action(self, tag: str) -> str:
        return self(f"action.{tag}")
