"""Scenario files: every shipped one loads; every kind of mistake is named by its field."""

from __future__ import annotations

import copy
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from carevault.sim.attack.spec import ScenarioError, check_dates, load, parse, shipped

VALID: dict[str, Any] = {
    "scenario": {"name": "t", "description": "a test", "kind": "gate"},
    "who": {"account": "stolen", "role": "physician"},
    "when": {"days": [2], "from_hour": 19, "to_hour": 23},
    "where": {"source_address": "203.0.113.9", "user_agent": "curl/8"},
    "what": {"patients": ["random"], "method": "read", "per_hour": 10, "per_day": 20},
}


def changed(section: str, **fields: Any) -> dict[str, Any]:
    document = copy.deepcopy(VALID)
    document.setdefault(section, {}).update(fields)
    return document


def error_of(document: dict[str, Any]) -> str:
    with pytest.raises(ScenarioError) as caught:
        parse(document, "t.toml")
    return str(caught.value)


def test_every_shipped_scenario_loads_and_the_required_ones_are_there() -> None:
    names = {load(path).name for path in shipped()}
    assert {
        "stolen-clinician-bulk",
        "front-desk-celebrity",
        "slow-drip",
        "compromised-integration",
        "everything-abuse",
        "night-session-new-address",
        "key-unwrap-bypass",
    } <= names


def test_shipped_scenarios_fit_a_month_from_the_default_start() -> None:
    for path in shipped():
        check_dates(load(path), date(2026, 3, 2), 30)


def test_a_valid_document_gives_its_values() -> None:
    scenario = parse(VALID, "t.toml")
    assert scenario.who.account == "stolen"
    assert scenario.when.days == (2,)
    assert scenario.what.per_hour == 10
    assert scenario.where.source_address == "203.0.113.9"


@pytest.mark.parametrize(
    ("document", "field"),
    [
        (changed("what", per_hourz=3), "[what] per_hourz: unknown field"),
        (changed("who", password="x"), "[who] password: unknown field"),
        ({**VALID, "extra": {"a": 1}}, "[extra]: unknown section"),
    ],
)
def test_unknown_fields_and_sections_are_named(document: dict[str, Any], field: str) -> None:
    assert field in error_of(document)


@pytest.mark.parametrize(
    ("document", "field"),
    [
        (changed("what", per_hour="lots"), "[what] per_hour: expected an integer"),
        (changed("what", per_hour=True), "[what] per_hour: expected an integer"),
        (changed("what", per_day=0), "[what] per_day: expected 1 to"),
        (changed("what", patients="random"), "[what] patients: expected a non-empty list"),
        (changed("what", patients=["friends"]), "[what] patients[0]: expected one of"),
        (changed("what", method="steal"), "[what] method: expected one of"),
        (changed("when", days=["three"]), "[when] days[0]: expected an integer"),
        (changed("when", from_hour=25), "[when] from_hour: expected 0 to 23"),
        (changed("where", source_address="not-an-ip"), "[where] source_address: expected an IP"),
        (changed("how", usual_volume_fraction="half"), "[how] usual_volume_fraction: expected"),
        (changed("who", account="hacker"), "[who] account: expected one of"),
        ({**VALID, "what": [1, 2]}, "[what]: expected a table"),
    ],
)
def test_wrong_types_are_named(document: dict[str, Any], field: str) -> None:
    message = error_of(document)
    assert message.startswith("t.toml: ")
    assert field in message


def test_an_impossible_date_is_named(tmp_path: Path) -> None:
    document = changed("when", dates=["2026-02-30"])
    del document["when"]["days"]
    assert "[when] dates[0]: '2026-02-30' is not a real date" in error_of(document)
    # Written as a TOML date literal, the parser refuses it: still a clear error with the file.
    path = tmp_path / "bad.toml"
    path.write_text(
        '[scenario]\nname = "x"\ndescription = "y"\nkind = "gate"\n'
        '[who]\naccount = "stolen"\nrole = "nurse"\n[when]\ndates = [2026-02-30]\n'
    )
    with pytest.raises(ScenarioError, match=r"bad\.toml: not valid TOML"):
        load(path)


def test_dates_outside_the_run_are_named() -> None:
    document = changed("when", dates=["2026-05-01"])
    del document["when"]["days"]
    scenario = parse(document, "t.toml")
    with pytest.raises(ScenarioError, match=r"\[when\] dates: 2026-05-01 is outside the run"):
        check_dates(scenario, date(2026, 3, 2), 30)
    late = parse(changed("when", days=[31]), "t.toml")
    with pytest.raises(ScenarioError, match=r"\[when\] days: day 31 is after the run's 30 days"):
        check_dates(late, date(2026, 3, 2), 30)


@pytest.mark.parametrize(
    ("document", "field"),
    [
        (changed("when", from_hour=20, to_hour=20), "[when] to_hour: must be after from_hour"),
        (changed("when", dates=["2026-03-03"]), "[when] days: give either days"),
        (changed("who", account="integration", role=None), "[who] client:"),
        (changed("who", account="key-service"), "[who] account: 'key-service' is for kind"),
        (changed("scenario", kind="key-unwrap"), "[who] account: a key-unwrap scenario"),
        (changed("who", account="new", username="x"), "[who] username: a new account"),
    ],
)
def test_rules_between_fields_name_the_field_to_change(
    document: dict[str, Any], field: str
) -> None:
    if document["who"].get("role") is None:
        document["who"].pop("role", None)
    assert field in error_of(document)


def test_missing_required_parts_are_named() -> None:
    document = copy.deepcopy(VALID)
    del document["who"]
    assert "[who]: this section is required" in error_of(document)
    document = copy.deepcopy(VALID)
    del document["scenario"]["kind"]
    assert "[scenario] kind: this field is required" in error_of(document)
