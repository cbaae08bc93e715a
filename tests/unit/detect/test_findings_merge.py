"""What an alert is told of a sustained read: every patient of every finding, once.

A breadth or drip finding repeats at every entry while the read goes on; it names the
window's patients only when they changed since it last named them, and a batch's
findings are merged into one per alert with the union of their patients."""

from __future__ import annotations

from carevault.detect.alerts import merge_findings
from carevault.detect.model import MINUTE_US, Access, Finding, Severity
from tests.unit.detect.test_signals import MORNING, Feed


def _union(findings: list[Finding], detector: str) -> dict[str, set[str]]:
    named: dict[str, set[str]] = {}
    for finding in findings:
        if finding.detector == detector:
            named.setdefault(finding.dedup_key, set()).update(finding.patients)
    return named


def test_rereading_the_same_patients_names_them_once() -> None:
    feed = Feed()
    for n in range(30):
        feed.entry(MORNING + n * 1_000_000, f"p{n}")
    fresh = len(feed.found)
    for n in range(30):
        feed.entry(MORNING + (30 + n) * 1_000_000, f"p{n}")
    again = [f for f in feed.found[fresh:] if f.detector == "breadth"]
    assert again, "the breadth finding goes on while the read goes on"
    assert all(f.patients == () for f in again), "nothing new to name"
    union = _union(feed.found, "breadth")
    assert all(patients == {f"p{n}" for n in range(30)} for patients in union.values())


def test_every_patient_in_a_window_over_the_limit_is_named() -> None:
    feed = Feed()
    for n in range(60):
        # New patients and old ones, some of them leaving the 10-minute window.
        feed.entry(MORNING + n * 20_000_000, f"p{n % 45}")
    union = _union(feed.found, "breadth")
    ten_minutes = next(key for key in union if "|10 minutes " in key)
    # Each patient was in the window at some entry that was over the limit (21 on).
    assert union[ten_minutes] == {f"p{n}" for n in range(45)}


def test_a_new_patient_renames_the_window() -> None:
    feed = Feed()
    for n in range(25):
        feed.entry(MORNING + n * 1_000_000, f"p{n}")
    found = feed.entry(MORNING + 26 * 1_000_000, "newcomer")
    breadth = [f for f in found if f.detector == "breadth" and "10 minutes" in f.period]
    assert breadth and "newcomer" in breadth[0].patients and len(breadth[0].patients) == 26


def _finding(position: int, severity: Severity, patients: tuple[str, ...]) -> Finding:
    access = Access(position, MORNING + position * MINUTE_US, "fhir:resource:read", "success",
                    "staff:ann")  # fmt: skip
    return Finding("breadth", severity, "hour 1", f"entry {position}", access, patients, 3)


def test_a_batch_merges_into_one_finding_per_alert() -> None:
    merged = merge_findings(
        [
            _finding(10, Severity.MEDIUM, ("a", "b")),
            _finding(11, Severity.HIGH, ()),
            _finding(12, Severity.MEDIUM, ("c",)),
        ]
    )
    assert len(merged) == 1
    only = merged[0]
    assert set(only.patients) == {"a", "b", "c"}
    assert only.severity is Severity.HIGH, "the highest severity seen in the batch"
    assert only.access.position == 12 and only.explanation == "entry 12", "the latest"
    assert only.trigger == 10, "the entry that raised it is the batch's first"
    assert only.first_position == 3
    assert merge_findings(merged)[0].trigger == 10, "merging again changes nothing"


def test_findings_that_together_reach_their_critical_count_merge_critical() -> None:
    """A gate bypass is critical from three patients on, however its unwraps came in."""
    access = Access(position=-1, at_us=MORNING, tag="keys:data-key:unwrapped",
                    outcome="success", principal="system:cron", role="system")  # fmt: skip
    findings = [
        Finding("gate-bypass", Severity.HIGH, "7", "x", access, (patient,), critical_at=3)
        for patient in ("a", "b", "c")
    ]
    merged = merge_findings(findings)
    assert len(merged) == 1 and set(merged[0].patients) == {"a", "b", "c"}
    assert merged[0].severity is Severity.CRITICAL and merged[0].critical_at == 3
    assert merge_findings(findings[:2])[0].severity is Severity.HIGH
