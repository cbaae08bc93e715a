"""Risk: a band and recommendations, never a decision. Reports: every part present,
clocks right, media notice at 500 residents of a state."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from carevault.notify.reports import (
    TODO,
    NoticeTally,
    Organisation,
    build_report,
    deadline,
)
from carevault.notify.risk import assess, band_of
from carevault.notify.scope import parse_scope

DECLARED = datetime(2026, 12, 1, 8, tzinfo=UTC)
ORG = Organisation("Harbour Clinics", "Ms Ada Lau", "+852 2000 0000", "dpo@example.hk",
                   "clinics.example.hk")  # fmt: skip
TALLY = NoticeTally({"email": 3, "sms": 1}, 1, 0, 0, DECLARED, DECLARED)


def scope(tiers: dict[str, list[dict[str, Any]]], **compromised: Any) -> Any:
    return parse_scope({
        "incident": {"id": "INC-9", "title": "Stolen laptop", "declared_at": DECLARED.isoformat(),
                     "since": "2026-11-28T00:00:00Z", "until": "2026-11-30T00:00:00Z",
                     "compromised": compromised},
        "tiers": tiers,
    })  # fmt: skip


def people(count: int, *categories: str) -> list[dict[str, Any]]:
    return [{"patient": f"p{i}", "categories": list(categories)} for i in range(count)]


def test_bands_follow_the_design() -> None:
    assert [band_of(x) for x in (1.9, 2.0, 2.99, 3.0, 3.99, 4.0)] == [
        "low", "medium", "medium", "high", "high", "very high"]  # fmt: skip


def test_clinical_data_read_by_an_outsider_is_very_high() -> None:
    result = assess(scope({"confirmed": people(3, "identity", "clinical")}, addresses=["x"]))
    assert result.band == "very high" and result.score == 5.0
    assert result.people == 3 and result.categories == {"clinical": 3, "identity": 3}


def test_encrypted_data_with_safe_keys_is_low_but_never_an_automatic_no() -> None:
    result = assess(scope({"at_rest_only": people(50, "identity", "clinical")}, database=True),
                    malicious=False)  # fmt: skip
    assert result.band == "low" and result.encrypted_only and result.keys_safe
    text = " ".join(line for lines in result.recommendations.values() for line in lines)
    assert "safe harbour" in text and "34(3)(a)" in text and "officer" in text
    assert "no breach" not in text.lower()
    assert result.as_json()["decision"].startswith("not made")


def test_one_persons_two_records_are_one_data_subject_as_the_scope_counts_them() -> None:
    """Adversary round 44: the scope counts people (Patient records of one HKID are one
    person, ``person``), the reports counted records: a person registered at two clinics
    was two data subjects to every regulator, beside a scope that said one."""
    both = [{"patient": "p1", "person": "p1", "categories": ["identity"]},
            {"patient": "p7", "person": "p1", "categories": ["clinical"]},
            {"patient": "p2", "person": "p2", "categories": ["identity"]}]  # fmt: skip
    later = [{"patient": "p9", "person": "p1", "categories": ["contact"]}]
    result = assess(scope({"confirmed": both, "decrypted": later}))
    assert result.people == 2
    assert result.people_by_tier == {"confirmed": 2, "decrypted": 0, "at_rest_only": 0,
                                     "potentially": 0}  # fmt: skip
    assert result.categories == {"clinical": 1, "contact": 1, "identity": 2}
    report = build_report("pcpd", scope({"confirmed": both}), result, ORG, TALLY,
                          regions=Counter(), pcpd_days=5, now=DECLARED)  # fmt: skip
    assert report["parts"]["D. Personal data involved"]["number_of_data_subjects"] == 2
    # A minor with two records is one minor (the review: counted record by record).
    assert assess(scope({"confirmed": both}), minors=frozenset({"p1", "p7"})).minors == 1


def test_a_minor_raises_the_data_score() -> None:
    plain = assess(scope({"confirmed": people(1, "contact")}))
    child = assess(scope({"confirmed": people(1, "contact")}), minors=frozenset({"p0"}))
    assert child.score > plain.score and child.minors == 1


def test_deadlines() -> None:
    assert deadline("gdpr", DECLARED, 5) == DECLARED + timedelta(hours=72)
    assert deadline("hipaa", DECLARED, 5) == DECLARED + timedelta(days=60)
    assert deadline("pcpd", DECLARED, 9) == DECLARED + timedelta(days=9)


def test_reports_have_every_part_prefilled_or_marked() -> None:
    incident = scope({"confirmed": people(600, "identity", "financial")}, host=True)
    result = assess(incident, regions=Counter({"CA": 520, "NV": 80}))
    now = DECLARED + timedelta(hours=80)
    pcpd = build_report("pcpd", incident, result, ORG, TALLY, regions=Counter(), pcpd_days=5,
                        now=now)  # fmt: skip
    assert list(pcpd["parts"]) == ["A. Data user", "B. Contact person",
                                   "C. Particulars of the breach", "D. Personal data involved",
                                   "E. Risk assessment", "F. Remedial actions"]  # fmt: skip
    assert pcpd["parts"]["A. Data user"]["address"] == TODO
    assert pcpd["parts"]["D. Personal data involved"]["number_of_data_subjects"] == 600
    hipaa = build_report("hipaa", incident, result, ORG, TALLY,
                         regions=Counter({"CA": 520, "NV": 80}), pcpd_days=5, now=now)  # fmt: skip
    assert hipaa["media_notice"]["required_in"] == ["CA"]
    assert hipaa["hhs_portal"]["type_of_phi"] == ["Demographic", "Financial"]
    assert hipaa["hhs_portal"]["type_of_breach"] == "Hacking/IT Incident"
    assert "within 60 days of discovery" in hipaa["hhs_portal"]["report_to_hhs"]
    gdpr = build_report("gdpr", incident, result, ORG, TALLY, regions=Counter(), pcpd_days=5,
                        now=now)  # fmt: skip
    assert gdpr["overdue"] is True and gdpr["article_33"]["reasons_for_delay"] == TODO
    assert gdpr["article_33"]["approximate_number_of_data_subjects"] == 600
    assert gdpr["article_34"]["required"] is True


def test_reports_say_how_many_patients_records_were_changed() -> None:
    """Integrity beside confidentiality: the scope's ``changed`` patients are counted in
    the breach particulars of every regulator's report."""
    document = {
        "incident": {"id": "INC-9", "title": "Stolen login", "declared_at": DECLARED.isoformat(),
                     "compromised": {"accounts": ["staff:desk"]}},
        "tiers": {"confirmed": people(3, "identity")},
        "changed": people(2, "contact"),
    }  # fmt: skip
    incident = parse_scope(document)
    result = assess(incident, regions=Counter())
    reports = {
        regulator: build_report(
            regulator, incident, result, ORG, TALLY, regions=Counter(), pcpd_days=5, now=DECLARED
        )  # fmt: skip
        for regulator in ("pcpd", "hipaa", "gdpr")
    }
    assert (
        reports["pcpd"]["parts"]["C. Particulars of the breach"][
            "patients_whose_records_were_changed"
        ]
        == 2
    )
    assert (
        reports["gdpr"]["article_33"]["nature_of_breach"]["patients_whose_records_were_changed"]
        == 2
    )


def _reports(incident: Any) -> dict[str, dict[str, Any]]:
    result = assess(incident, regions=Counter())
    return {
        regulator: build_report(
            regulator, incident, result, ORG, TALLY, regions=Counter(), pcpd_days=5, now=DECLARED
        )  # fmt: skip
        for regulator in ("pcpd", "hipaa", "gdpr")
    }


def _containment_fields(reports: dict[str, dict[str, Any]]) -> list[str]:
    """Each report's statements of what was done to stop the breach, as text."""
    hipaa = reports["hipaa"]
    return [
        " ".join(reports["pcpd"]["parts"]["F. Remedial actions"]["containment"]),
        str(hipaa["individual_notice"]["what_the_entity_is_doing"]),
        " ".join(hipaa["hhs_portal"]["actions_taken_in_response"]),
        " ".join(reports["gdpr"]["article_33"]["measures_taken_or_proposed"]),
    ]


def test_reports_list_the_containment_recorded_for_the_incident() -> None:
    document = {
        "incident": {"id": "INC-9", "title": "Stolen login", "declared_at": DECLARED.isoformat(),
                     "compromised": {"accounts": ["desk"]},
                     "containment": [
                         {"id": 4, "mode": "account-suspended", "target": "desk",
                          "reason": "phished", "started_at": "2026-12-01T09:00:00Z",
                          "released_at": None},
                         {"id": 5, "mode": "block-address", "target": "203.0.113.0/24",
                          "reason": "attacker's range", "started_at": "2026-12-01T09:05:00Z",
                          "released_at": "2026-12-02T09:05:00Z"},
                     ]},
        "tiers": {"confirmed": people(3, "identity")},
    }  # fmt: skip
    for text in _containment_fields(_reports(parse_scope(document))):
        assert "account-suspended on desk" in text and "2026-12-01T09:00:00+00:00" in text
        assert "phished" in text and "still in force" in text
        assert "block-address on 203.0.113.0/24" in text and "released 2026-12-02" in text
        assert TODO not in text


def test_reports_without_recorded_containment_say_it_is_to_complete() -> None:
    incident = scope({"confirmed": people(3, "identity")}, accounts=["desk"])
    for text in _containment_fields(_reports(incident)):
        assert text.startswith(TODO) and "no containment" in text
        assert "cut off" not in text
