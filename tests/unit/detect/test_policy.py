"""The response policy and the release budgets as configured: defaults, overrides, and
clear errors for settings that do not parse."""

from __future__ import annotations

from dataclasses import replace

import pytest

from carevault.detect.alerts import Alert
from carevault.detect.budget import DEFAULT_BUDGETS, Budgets
from carevault.detect.model import Severity
from carevault.detect.respond import Policy


def alert(severity: Severity, role: str = "physician", detector: str = "breadth") -> Alert:
    return Alert(
        alert_id=1, case_key="case:staff:amy", detector=detector, severity=severity,
        account="amy", role=role, client=None, session=None, source_address=None,
        patient_count=1, patients=(), first_position=0, last_position=0, raised_us=0,
        updated_us=0, action=None, containment_id=None, status="open", explanation="",
        handled_by=None,
    )  # fmt: skip


def test_default_policy() -> None:
    policy = Policy.parse("")
    assert policy.action(alert(Severity.LOW)) == "raise"
    assert policy.action(alert(Severity.MEDIUM)) == "step-up"
    assert policy.action(alert(Severity.HIGH)) == "suspend"
    assert policy.action(alert(Severity.CRITICAL)) == "suspend"


def test_overrides_per_severity_and_role() -> None:
    policy = Policy.parse("critical=phi-offline, nurse:high=throttle")
    assert policy.action(alert(Severity.CRITICAL)) == "phi-offline"
    assert policy.action(alert(Severity.HIGH, role="nurse")) == "throttle"
    assert policy.action(alert(Severity.HIGH)) == "suspend"


def test_a_privacy_officer_is_never_suspended_automatically() -> None:
    assert Policy.parse("").action(alert(Severity.HIGH, role="privacy_officer")) == "step-up"


def test_some_detectors_only_raise() -> None:
    policy = Policy.parse("")
    assert policy.action(alert(Severity.CRITICAL, detector="gate-bypass")) == "raise"
    assert policy.action(alert(Severity.HIGH, detector="detector-failure")) == "raise"


@pytest.mark.parametrize(
    ("text", "names"),
    [("high=explode", "action must be one of"), ("severe=raise", "unknown severity")],
)
def test_bad_policy_says_what_is_wrong(text: str, names: str) -> None:
    with pytest.raises(ValueError, match=names):
        Policy.parse(text)


def test_budgets() -> None:
    budgets = Budgets.parse("front_desk=10/40, nurse=5")
    assert budgets.of("front_desk") == (10, 40)
    assert budgets.of("nurse") == (5, 20)
    assert budgets.of("physician") == DEFAULT_BUDGETS["physician"]
    with pytest.raises(ValueError, match="is not role=HOUR/DAY"):
        Budgets.parse("front_desk=many")
    with pytest.raises(ValueError, match="at least 1"):
        Budgets.parse("front_desk=0/10")


def test_a_client_app_that_cannot_step_up_is_suspended_instead() -> None:
    # Its sessions ended, it would take a new token with its secret and read on.
    lab = replace(alert(Severity.MEDIUM, role="integration"), account=None, client="lab")
    assert Policy.parse("").action(lab) == "suspend"
    assert Policy.parse("integration:medium=step-up").action(lab) == "suspend"
    assert Policy.parse("").action(replace(lab, severity=Severity.LOW)) == "raise"


def test_a_privacy_officer_is_suspended_only_while_another_can_undo_it() -> None:
    officer = alert(Severity.HIGH, role="privacy_officer")
    assert Policy.parse("").action(officer, covered=True) == "suspend"
    assert Policy.parse("high=throttle").action(officer, covered=True) == "throttle"
    assert Policy.parse("high=throttle").action(officer) == "step-up"


def test_a_low_alert_of_a_read_under_a_grant_is_raised_only_whatever_the_policy() -> None:
    """A VIP or close kin opened under a break-the-glass grant (adversary round 60): an
    officer is told; an emergency is never paused, even where low alerts suspend."""
    policy = Policy.parse("low=suspend")
    for detector in ("vip", "co-worker", "same-address", "own-record"):
        assert policy.action(alert(Severity.LOW, detector=detector)) == "raise"
        assert policy.action(alert(Severity.HIGH, detector=detector)) == "suspend"
    assert policy.action(alert(Severity.LOW, detector="breadth")) == "suspend"
