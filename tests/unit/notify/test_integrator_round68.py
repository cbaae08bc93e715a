"""Integrator round 68: what the patient and the regulator receive, checked against the
rules they are written for (45 CFR 164.404, 164.406, 164.408; GDPR Art. 33(3)(a); the
PCPD's form, filled in Hong Kong) and read as the patient reads it."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from carevault.config import Settings
from carevault.domain.categories import DataCategory
from carevault.notify.contacts import Recipient
from carevault.notify.notice import Sender, render
from carevault.notify.reports import NoticeTally, Organisation, build_report
from carevault.notify.risk import assess
from carevault.notify.scope import Exposure, Incident, parse_scope
from carevault.notify.service import sender_of

HONG_KONG = ZoneInfo("Asia/Hong_Kong")
#: 20:30 UTC on 6 December is 04:30 on 7 December in Hong Kong.
DECLARED = datetime(2026, 12, 6, 20, 30, tzinfo=UTC)
ORG = Organisation("Harbour Clinics", "The Data Protection Officer", "+852 2000 0000",
                   "dpo@example.hk", "clinics.example.hk")  # fmt: skip


def _tally(unreachable: int = 0) -> NoticeTally:
    return NoticeTally({"email": 3}, 0, unreachable, 0, DECLARED, DECLARED)


def _scope(tiers: dict[str, list[dict[str, Any]]], **incident: Any) -> Any:
    return parse_scope({
        "incident": {"id": "INC-68", "title": "Phished desk", "declared_at": DECLARED.isoformat(),
                     "since": "2026-12-06T11:00:00Z", "compromised": {"accounts": ["desk"]},
                     **incident},
        "tiers": tiers,
    })  # fmt: skip


def _people(count: int) -> list[dict[str, Any]]:
    return [{"patient": f"p{i}", "categories": ["identity", "clinical"]} for i in range(count)]


def _report(regulator: str, scope: Any, *, regions: Counter[str] | None = None,
            unreachable: int = 0) -> dict[str, Any]:  # fmt: skip
    regions = regions or Counter()
    return build_report(regulator, scope, assess(scope, regions=regions), ORG,
                        _tally(unreachable), regions=regions, pcpd_days=5,
                        now=DECLARED)  # fmt: skip


def test_media_notice_is_for_more_than_500_residents_of_a_state_not_500() -> None:
    """164.406(a): "more than 500 residents of a State or jurisdiction". A state with 500
    exactly was told to call the press (report and recommendation alike)."""
    regions = Counter({"California": 500, "Nevada": 501})
    report = _report("hipaa", _scope({"confirmed": _people(1001)}), regions=regions)
    assert report["media_notice"]["required_in"] == ["Nevada"]
    advice = " ".join(assess(_scope({"confirmed": _people(1001)}), regions=regions)
                      .recommendations["hipaa"])  # fmt: skip
    assert "Nevada" in advice and "California" not in advice
    assert "more than 500" in advice


def test_substitute_notice_is_required_for_anyone_out_of_reach_in_its_form() -> None:
    """164.404(d)(2): substitute notice is owed whenever contact details are insufficient
    or out of date; fewer than ten people only change its form. Three people out of reach
    read ``substitute_notice_required: false``."""
    three = _report("hipaa", _scope({"confirmed": _people(20)}), unreachable=3)["hhs_portal"]
    assert three["substitute_notice_required"] is True
    assert three["substitute_notice"]["people_out_of_reach"] == 3
    assert "164.404(d)(2)(i)" in three["substitute_notice"]["form"]
    twelve = _report("hipaa", _scope({"confirmed": _people(20)}), unreachable=12)["hhs_portal"]
    assert twelve["substitute_notice_required"] is True
    assert "90 days" in twelve["substitute_notice"]["form"]
    none = _report("hipaa", _scope({"confirmed": _people(20)}))["hhs_portal"]
    assert none["substitute_notice_required"] is False and none["substitute_notice"]["form"] is None


def test_the_annual_hhs_log_is_due_sixty_days_after_the_year_of_discovery_ends() -> None:
    """164.408(c): fewer than 500 people, HHS hears within 60 days after the end of the
    calendar year the breach was discovered in (in the group's zone: 20:30 UTC on 31
    December is already the next year in Hong Kong); 500 or more, with the notices."""

    def due(people: int, declared: str, **zone: ZoneInfo) -> str:
        scope = _scope({"confirmed": _people(people)}, declared_at=declared)
        report = build_report("hipaa", scope, assess(scope), ORG, _tally(), regions=Counter(),
                              pcpd_days=5, now=DECLARED, **zone)  # fmt: skip
        return str(report["hhs_portal"]["report_to_hhs_due"])

    assert due(35, "2026-12-06T20:30:00Z") == "2027-03-01"
    assert due(35, "2026-12-31T20:30:00Z") == "2027-03-01"  # UTC when no zone is given
    assert due(35, "2026-12-31T20:30:00Z", zone=HONG_KONG) == "2028-02-29"
    # 60 days after 7 December (Hong Kong), with the notices.
    assert due(500, "2026-12-06T20:30:00Z", zone=HONG_KONG) == "2027-02-05"


def test_gdpr_and_the_pcpd_are_given_records_beside_people() -> None:
    """GDPR Art. 33(3)(a): "the categories and approximate number of data subjects
    concerned and ... of personal data records concerned". One person registered at two
    clinics is one data subject and two records, as ``incident scope`` lists them."""
    lines = [{"patient": "p1", "person": "p1", "categories": ["identity"]},
             {"patient": "p7", "person": "p1", "categories": ["clinical"]},
             {"patient": "p2", "person": "p2", "categories": ["identity"]}]  # fmt: skip
    scope = _scope({"confirmed": lines})
    article_33 = _report("gdpr", scope)["article_33"]
    assert article_33["approximate_number_of_data_subjects"] == 2
    assert article_33["approximate_number_of_personal_data_records"] == 3
    part_d = _report("pcpd", scope)["parts"]["D. Personal data involved"]
    assert part_d["number_of_data_subjects"] == 2 and part_d["number_of_records"] == 3


def test_the_pcpd_report_gives_its_times_in_hong_kong() -> None:
    """The PCPD's form is filled in Hong Kong: a discovery at 20:30 UTC is 04:30 the next
    day there. The report said "2026-12-06T20:30:00+00:00", which an officer copying it
    into the form reads as the 6th."""
    scope = _scope({"confirmed": _people(3)}, containment=[
        {"id": 1, "mode": "account-suspended", "target": "desk", "reason": "phished",
         "started_at": "2026-12-06T20:40:00Z", "released_at": None}])  # fmt: skip
    report = _report("pcpd", scope)
    particulars = report["parts"]["C. Particulars of the breach"]
    assert particulars["discovered"] == "2026-12-07T04:30:00+08:00"
    assert particulars["breach_began"] == "2026-12-06T19:00:00+08:00"
    assert report["deadline"] == "2026-12-12T04:30:00+08:00"
    assert report["prepared_at"] == "2026-12-07T04:30:00+08:00"
    containment = report["parts"]["F. Remedial actions"]["containment"][0]
    assert "from 2026-12-07T04:40:00+08:00 (2026-12-06T20:40:00+00:00)" in containment
    # HIPAA's and GDPR's stay in UTC, as before.
    assert _report("gdpr", scope)["article_33"]["nature_of_breach"]["discovered"] == (
        "2026-12-06T20:30:00+00:00"
    )


def _recipient(language: str) -> Recipient:
    return Recipient(patient_id="a", language=language, patient_name="陳大文", addressee="陳大文",
                     guardian=False, minor=False, deceased=False, email="a@example.com",
                     mobile=None, address=(), region=None)  # fmt: skip


def test_a_chinese_notice_names_its_contact_in_chinese(tmp_path: Any) -> None:
    """The Chinese notice's "聯絡我們" said "The Data Protection Officer，CareVault 診所":
    the one English line in it, the contact the patient is to ask for."""
    sender = sender_of(Settings(home=tmp_path))
    incident = Incident("INC-68", "t", "open", DECLARED, None, None, {})
    exposure = Exposure("a", "confirmed", (DataCategory.IDENTITY,), (), None, None, ())
    chinese = render(sender, incident, exposure, _recipient("zh"), "K7MX-3HPA-RT9W", at=DECLARED)
    for part in (chinese.text, chinese.html, chinese.letter):
        assert "保障資料主任，CareVault 診所" in part
        assert "Data Protection Officer" not in part
    english = render(sender, incident, exposure, _recipient("en"), "K7MX-3HPA-RT9W", at=DECLARED)
    assert "The Data Protection Officer, CareVault Clinics" in english.text
    # A contact configured by name keeps it in both; a Chinese name set is used.
    named = sender_of(Settings(home=tmp_path, notify_contact_name="Ms Ada Lau"))
    assert named.contact("zh") == "Ms Ada Lau"
    both = sender_of(Settings(home=tmp_path, notify_contact_name="Ms Ada Lau",
                              notify_contact_name_zh="劉女士"))  # fmt: skip
    assert both.contact("zh") == "劉女士" and both.contact("en") == "Ms Ada Lau"


def test_an_exposure_within_one_day_is_told_as_that_day() -> None:
    """ "Between 6 December 2026 and 6 December 2026" (「在2026年12月6日至2026年12月6日期間」)
    is what every patient of a one-evening breach read."""
    sender = Sender("Harbour Clinics", "海港診所", "clinics.example.hk", "+852 2000 0000",
                    "The Data Protection Officer", HONG_KONG, code_days=180)  # fmt: skip
    incident = Incident("INC-68", "t", "open", DECLARED, None, None, {})
    evening = Exposure("a", "confirmed", (DataCategory.IDENTITY,), (),
                       datetime(2026, 12, 6, 11, 5, tzinfo=UTC),
                       datetime(2026, 12, 6, 15, 55, tzinfo=UTC), ())  # fmt: skip
    english = render(sender, incident, evening, _recipient("en"), "K7MX-3HPA-RT9W", at=DECLARED)
    assert "On 6 December 2026, a person" in english.text
    assert "Between" not in english.text and "Between" not in english.html
    chinese = render(sender, incident, evening, _recipient("zh"), "K7MX-3HPA-RT9W", at=DECLARED)
    assert "於2026年12月6日，一名" in chinese.text and "期間" not in chinese.text
    # 15:55 to 16:05 UTC crosses midnight in Hong Kong: two days, told as a range.
    across = Exposure("a", "confirmed", (DataCategory.IDENTITY,), (),
                      datetime(2026, 12, 6, 15, 55, tzinfo=UTC),
                      datetime(2026, 12, 6, 16, 5, tzinfo=UTC), ())  # fmt: skip
    ranged = render(sender, incident, across, _recipient("en"), "K7MX-3HPA-RT9W", at=DECLARED)
    assert "Between 6 December 2026 and 7 December 2026" in ranged.text


def test_an_incident_declared_from_an_alert_says_when_the_alert_was_raised() -> None:
    """The deadlines run from the declaration; an incident declared from an alert says
    when the detectors raised it, in each report (in Hong Kong time for the PCPD), so the
    officer sees how long before the declaration the group was warned (round 68 left the
    reports silent on it)."""
    raised = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
    scope = _scope({"confirmed": _people(3)}, alert="17")
    for regulator, breach in (
        ("pcpd", lambda r: r["parts"]["C. Particulars of the breach"]),
        ("gdpr", lambda r: r["article_33"]["nature_of_breach"]),
        ("hipaa", lambda r: r["hhs_portal"]),
    ):
        report = build_report(regulator, scope, assess(scope, regions=Counter()), ORG,
                              _tally(), regions=Counter(), pcpd_days=5, now=DECLARED,
                              alerted_at=raised)  # fmt: skip
        said = breach(report)["detected_by_alert"]
        assert said["alert"] == "17"
        assert datetime.fromisoformat(said["raised"]) == raised
        assert datetime.fromisoformat(report["deadline"]) > DECLARED  # from the declaration
    pcpd = build_report("pcpd", scope, assess(scope, regions=Counter()), ORG, _tally(),
                        regions=Counter(), pcpd_days=5, now=DECLARED,
                        alerted_at=raised)  # fmt: skip
    particulars = pcpd["parts"]["C. Particulars of the breach"]
    assert particulars["detected_by_alert"]["raised"] == "2026-12-04T17:00:00+08:00"
    plain = _report("gdpr", _scope({"confirmed": _people(3)}))
    assert "detected_by_alert" not in plain["article_33"]["nature_of_breach"]
