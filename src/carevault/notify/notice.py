"""A patient's notice, rendered from the Jinja2 templates in English or Chinese (pure).

Everything a template shows comes from here: the clinic group's own words (settings),
the incident's dates, the categories of *this* patient's exposure, the cleaned name of
the addressee and the notice's verification code. There is never an HKID number, a
link, an attachment or a request in a notice: the templates hold none, and nothing
taken from a record can become one (names and addresses are cleaned and escaped).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from carevault.domain.categories import DataCategory
from carevault.notify.contacts import Recipient
from carevault.notify.names import addressable
from carevault.notify.scope import Exposure, Incident
from carevault.notify.wording import HAPPENED, SUBJECT, categories_in, day, short_list

TEMPLATES = Path(__file__).parent / "templates"
#: A line of a letter that is a heading (the PDF sets it in bold type).
HEADING_MARK = "\u00a7\u00a7 "
#: The containment mode that stops changes only (``containment.state.Mode.READ_ONLY``).
READ_ONLY = "read-only"


@dataclass(frozen=True)
class Sender:
    """The clinic group as its notices name it."""

    name_en: str
    name_zh: str
    site: str
    hotline: str
    contact_name: str
    zone: ZoneInfo
    #: The contact as a Chinese notice names it (``None``: ``contact_name`` as it is).
    contact_name_zh: str | None = None
    #: How many days after its notice is sent its code verifies
    #: (``CAREVAULT_NOTIFY_CODE_DAYS``, ``notify/verify.py``).
    code_days: int = field(kw_only=True)

    def name(self, language: str) -> str:
        return self.name_zh if language == "zh" else self.name_en

    def contact(self, language: str) -> str:
        if language == "zh" and self.contact_name_zh:
            return self.contact_name_zh
        return self.contact_name


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str
    sms: str
    letter: str


@cache
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(enabled_extensions=("html",), default=False),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=False,
    )


def _neutral(words: list[str], language: str) -> list[str]:
    """Category words for someone else's notice (a guardian's): no "your"."""
    prefix = "閣下的" if language == "zh" else "your "
    stripped = [word.removeprefix(prefix) for word in words]
    return [word[:1].upper() + word[1:] for word in stripped] if language == "en" else stripped


def _last_whole_day(at: datetime, sender: Sender) -> datetime:
    """Noon (the group's time) of the last day on which a code sent ``at`` verifies all
    day wherever its reader is: two days before the group's day on which it lapses. The
    day before that one is whole in the group's zone only: a patient abroad (UTC-12 to
    UTC+14), checking late on it by their own clock, may be past the code's end (review
    of stop 65); a day earlier ends before the group's last day begins, everywhere."""
    lapses = (at + timedelta(days=sender.code_days)).astimezone(sender.zone)
    before = lapses.date() - timedelta(days=2)
    return datetime(before.year, before.month, before.day, 12, tzinfo=sender.zone)


def render(
    sender: Sender,
    incident: Incident,
    exposure: Exposure,
    recipient: Recipient,
    code: str,
    *,
    at: datetime,
) -> Rendered:
    """The notice with ``code``, rendered (and so sent) ``at``: its code verifies until
    ``Sender.code_days`` after it is sent, and the notice names a day every moment of
    which, in any time zone, is inside them (``_last_whole_day``; a notice is marked sent
    no earlier than it is rendered)."""
    language = recipient.language if recipient.language in ("en", "zh") else "en"
    about_other = recipient.guardian or recipient.minor
    words = categories_in(language, exposure.categories)
    if about_other:
        words = _neutral(words, language)
    elif language == "en":
        words = [word[:1].upper() + word[1:] for word in words]
    # Recipients come from contacts.recipient_of, which already left such names out; a
    # Recipient made anywhere else is held to the same check.
    addressee = addressable(recipient.addressee)
    patient_name = addressable(recipient.patient_name)
    since: datetime | None = exposure.first or incident.since
    until: datetime | None = exposure.last or incident.until or incident.declared_at
    same_day = (
        since is not None
        and until is not None
        and day(since, language, sender.zone) == day(until, language, sender.zone)
    )
    context = {
        "subject": SUBJECT[language],
        "group": sender.name(language),
        "addressee": addressee,
        "patient_name": patient_name or ("the patient" if language == "en" else "病人"),
        "about_other": about_other,
        "happened": HAPPENED[language].get(exposure.tier, HAPPENED[language]["potentially"]),
        "since": day(since, language, sender.zone),
        "until": day(until, language, sender.zone),
        # A window within one of the group's days is that day ("On 6 December 2026"), not
        # "Between 6 December 2026 and 6 December 2026" (integrator round 68).
        "same_day": same_day,
        "declared": day(incident.declared_at, language, sender.zone),
        "categories": words,
        "short_categories": short_list(language, exposure.categories),
        "has_financial": DataCategory.FINANCIAL in exposure.categories,
        "has_government_id": DataCategory.GOVERNMENT_ID in exposure.categories,
        "site": sender.site,
        "hotline": sender.hotline,
        "contact_name": sender.contact(language),
        "code": code,
        "checkable_until": day(_last_whole_day(at, sender), language, sender.zone),
        "pcpd_told": "pcpd" in incident.filed_with,
        # Read-only stops changes, not reading: alone it stopped no one's access.
        "contained": any(action.mode != READ_ONLY for action in incident.containment),
    }
    env = _environment()

    def plain(heading: str) -> str:
        return heading.upper() if language == "en" else f"【{heading}】"

    def marked(heading: str) -> str:
        return HEADING_MARK + heading

    text = env.get_template(f"notice.{language}.txt").render(context, h=plain)
    letter = env.get_template(f"notice.{language}.txt").render(context, h=marked)
    html = env.get_template(f"notice.{language}.html").render(context)
    sms = " ".join(env.get_template(f"sms.{language}.txt").render(context).split())
    return Rendered(
        subject=f"{SUBJECT[language]} – {sender.name(language)}",
        text=text,
        html=html,
        sms=sms,
        letter=letter,
    )
