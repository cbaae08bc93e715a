"""Regulators' reports, pre-filled from the incident, its scope, the risk assessment and
the notices sent (pure, but for the PDF): the Hong Kong PCPD's Data Breach
Notification Form, HIPAA (individual notice content, the HHS breach portal's fields,
media notice) and GDPR Articles 33 and 34. A field CareVault cannot know is present
and marked ``TO COMPLETE`` rather than left out, so no part of a form is forgotten.
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from carevault.domain.categories import HEALTH_CATEGORIES, DataCategory
from carevault.notify.letters import letter_font
from carevault.notify.risk import Assessment
from carevault.notify.scope import Scope
from carevault.notify.wording import CATEGORY_WORDS

TODO = "TO COMPLETE"
REGULATORS = ("pcpd", "hipaa", "gdpr")
TITLES = {
    "pcpd": "PCPD Data Breach Notification Form (Hong Kong)",
    "hipaa": "HIPAA breach notification (45 CFR 164.400-414)",
    "gdpr": "GDPR Article 33 notification and Article 34 communication",
}


@dataclass(frozen=True)
class Organisation:
    """The data user / covered entity / controller, and its contact person."""

    name: str
    contact_name: str
    contact_phone: str
    contact_email: str
    site: str


@dataclass(frozen=True)
class NoticeTally:
    """What the send job has done so far."""

    sent_by_channel: dict[str, int]
    deceased: int
    unreachable: int
    pending: int
    first_sent: datetime | None
    last_sent: datetime | None


def deadline(regulator: str, declared_at: datetime, pcpd_days: int) -> datetime:
    if regulator == "gdpr":
        return declared_at + timedelta(hours=72)
    if regulator == "hipaa":
        return declared_at + timedelta(days=60)
    return declared_at + timedelta(days=pcpd_days)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _kinds(assessment: Assessment) -> list[str]:
    words = CATEGORY_WORDS["en"]
    return [
        f"{words[DataCategory(name)].removeprefix('your ')} ({count} people)"
        for name, count in assessment.categories.items()
    ]


def _hhs_phi_types(categories: dict[str, int]) -> list[str]:
    names = {DataCategory(c) for c in categories}
    kinds = []
    if names & {DataCategory.IDENTITY, DataCategory.CONTACT, DataCategory.DEMOGRAPHIC,
                DataCategory.GOVERNMENT_ID}:  # fmt: skip
        kinds.append("Demographic")
    if DataCategory.FINANCIAL in names:
        kinds.append("Financial")
    if names & (HEALTH_CATEGORIES | {DataCategory.VISIT}):
        kinds.append("Clinical")
    if DataCategory.CREDENTIALS in names:
        kinds.append("Other")
    return kinds


def containment_taken(scope: Scope) -> list[str]:
    """The containment recorded for the incident, one line per action; or one line marked
    ``TO COMPLETE`` when none is recorded: a report states only what was done."""
    actions = scope.incident.containment
    if not actions:
        return [
            f"{TODO}: no containment action is recorded for this incident; say what was "
            "done to stop the access, and when"
        ]
    lines = []
    for action in actions:
        target = f" on {action.target}" if action.target else ""
        ended = (
            f"released {action.released_at.isoformat()}"
            if action.released_at is not None
            else "still in force"
        )
        reason = f" ({action.reason})" if action.reason else ""
        lines.append(
            f"{action.mode}{target} from {action.started_at.isoformat()}, {ended}{reason}; "
            "recorded in the tamper-evident audit ledger"
        )
    return lines


def _breach_type(scope: Scope) -> str:
    compromised = scope.incident.compromised
    if compromised.get("host") or compromised.get("database") or compromised.get("addresses"):
        return "Hacking/IT Incident"
    return "Unauthorized Access/Disclosure"


def build_report(
    regulator: str,
    scope: Scope,
    assessment: Assessment,
    organisation: Organisation,
    tally: NoticeTally,
    *,
    regions: Counter[str],
    pcpd_days: int,
    now: datetime,
) -> dict[str, Any]:
    incident = scope.incident
    due = deadline(regulator, incident.declared_at, pcpd_days)
    common: dict[str, Any] = {
        "regulator": regulator,
        "title": TITLES[regulator],
        "incident": incident.incident_id,
        "prepared_at": now.isoformat(),
        "deadline": due.isoformat(),
        "overdue": now > due,
    }
    breach = {
        "description": incident.title or TODO,
        "breach_began": _iso(incident.since) or TODO,
        "breach_ended": _iso(incident.until) or TODO,
        "discovered": incident.declared_at.isoformat(),
        "what_was_compromised": {k: v for k, v in incident.compromised.items() if v},
        # Integrity beside confidentiality: patients whose records a compromised
        # principal wrote in the window (the scope's ``changed``).
        "patients_whose_records_were_changed": len(scope.changed),
    }
    contained = containment_taken(scope)
    measures = [
        *contained,
        f"Individual notices sent: {sum(tally.sent_by_channel.values())} "
        f"({', '.join(f'{k} {v}' for k, v in sorted(tally.sent_by_channel.items())) or 'none'}); "
        f"{tally.pending} pending; {tally.unreachable} without a way to reach them.",
    ]
    if regulator == "pcpd":
        common["parts"] = {
            "A. Data user": {"name": organisation.name, "address": TODO},
            "B. Contact person": {
                "name": organisation.contact_name,
                "phone": organisation.contact_phone,
                "email": organisation.contact_email,
            },
            "C. Particulars of the breach": breach,
            "D. Personal data involved": {
                "kinds_of_personal_data": _kinds(assessment),
                "number_of_data_subjects": assessment.people,
                "by_tier": assessment.people_by_tier,
                "minors": assessment.minors,
                "sensitive_data": assessment.sensitive,
            },
            "E. Risk assessment": {
                "severity": assessment.band,
                "score": assessment.score,
                "circumstances": assessment.circumstances,
                "possible_harm": TODO,
            },
            "F. Remedial actions": {
                "containment": measures,
                "data_subjects_notified": sum(tally.sent_by_channel.values()),
                "other_authorities_notified": TODO,
            },
        }
        common["notification_is_voluntary"] = True
    elif regulator == "hipaa":
        by_state = dict(sorted(regions.items()))
        common["individual_notice"] = {
            "what_happened": f"{breach['description']}; began {breach['breach_began']}, "
            f"discovered {breach['discovered']}",
            "types_of_phi": _kinds(assessment),
            "steps_individuals_should_take": "In each notice (by the data categories exposed).",
            "what_the_entity_is_doing": "; ".join(contained),
            "contact_procedures": {
                "toll_free_number": organisation.contact_phone,
                "email": organisation.contact_email,
                "website": organisation.site,
                "postal_address": TODO,
            },
        }
        common["hhs_portal"] = {
            "covered_entity": {"name": organisation.name, "type": "Healthcare Provider"},
            "contact": {
                "name": organisation.contact_name,
                "phone": organisation.contact_phone,
                "email": organisation.contact_email,
            },
            "breach_start_date": breach["breach_began"],
            "breach_end_date": breach["breach_ended"],
            "discovery_date": breach["discovered"],
            "approximate_number_of_individuals": assessment.people,
            "type_of_breach": _breach_type(scope),
            "location_of_breached_information": "Electronic Medical Record",
            "type_of_phi": _hhs_phi_types(assessment.categories),
            "safeguards_in_place_prior": "Encryption of every record at rest (AES-256-GCM, "
            "per-patient keys); role-based access; audit ledger",
            "actions_taken_in_response": measures,
            "individual_notice_provided_from": _iso(tally.first_sent) or TODO,
            "individual_notice_provided_to": _iso(tally.last_sent) or TODO,
            "substitute_notice_required": tally.unreachable >= 10,
            "report_to_hhs": "within 60 days of discovery"
            if assessment.people >= 500
            else "annual log, within 60 days of the calendar year's end",
        }
        common["media_notice"] = {
            "residents_by_state": by_state,
            "required_in": sorted(s for s, n in by_state.items() if n >= 500),
        }
        common["clock_days"] = 60
    else:
        common["article_33"] = {
            "nature_of_breach": breach,
            "categories_of_data_subjects": ["patients"]
            + (["children"] if assessment.minors else []),
            "approximate_number_of_data_subjects": assessment.people,
            "categories_of_personal_data": _kinds(assessment),
            "special_categories_art_9": bool(
                set(assessment.categories) & {str(c) for c in HEALTH_CATEGORIES}
            ),  # fmt: skip
            "dpo_contact": {
                "name": organisation.contact_name,
                "phone": organisation.contact_phone,
                "email": organisation.contact_email,
            },
            "likely_consequences": f"Severity {assessment.band} ({assessment.score}); "
            + "; ".join(assessment.circumstances),
            "measures_taken_or_proposed": measures,
            "reasons_for_delay": TODO if now > due else None,
            "clock_hours": 72,
        }
        common["article_34"] = {
            "required": assessment.band in ("high", "very high"),
            "exception_3a_unintelligible": assessment.encrypted_only and assessment.keys_safe,
            "communicated_to": sum(tally.sent_by_channel.values()),
            "content": "Each notice names its own data categories, what happened, the "
            "measures taken, what the person can do and the contact point (Art. 34(2)).",
        }
    common["risk_assessment"] = assessment.as_json()
    return common


def report_pdf(report: dict[str, Any], font: Path | None) -> bytes:
    # reportlab only here: the reports' figures and the console need none of it.
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer

    name = letter_font(font)
    body = ParagraphStyle("body", fontName=name, fontSize=9.5, leading=13, wordWrap="CJK")
    heading = ParagraphStyle("h", parent=body, fontSize=12, leading=17, spaceBefore=8)
    title = ParagraphStyle("t", parent=body, fontSize=15, leading=20)
    story: list[Any] = [Paragraph(escape(str(report["title"])), title), Spacer(1, 4 * mm)]

    def walk(key: str, value: Any, depth: int) -> None:
        indent = ParagraphStyle(f"i{depth}", parent=body, leftIndent=depth * 5 * mm)
        if isinstance(value, dict):
            story.append(Paragraph(escape(key), heading if depth == 0 else indent))
            for inner_key, inner in value.items():
                walk(str(inner_key), inner, depth + 1)
        elif isinstance(value, list):
            story.append(Paragraph(f"<b>{escape(key)}</b>", indent))
            for item in value:
                story.append(Paragraph("• " + escape(str(item)), indent))
        else:
            shown = "—" if value is None else str(value)
            story.append(Paragraph(f"<b>{escape(key)}</b>: {escape(shown)}", indent))

    for key, value in report.items():
        if key != "title":
            walk(key, value, 0)
    buffer = io.BytesIO()
    SimpleDocTemplate(buffer, pagesize=A4, title=str(report["title"])).build(story)
    return buffer.getvalue()
