"""The scorecard as the README shows it: the Markdown section and its markers."""

from __future__ import annotations

from typing import Any

import pytest

from carevault.sim.evaluate import score_run
from carevault.sim.scorecard import BEGIN, END, markdown, replace_section, table
from tests.unit.sim.test_evaluate import RUN, TRUTH, alert

ABOUT: dict[str, Any] = {
    "generated": "2026-12-01 22:00 UTC",
    "command": "scripts/scorecard",
    "wall_minutes": 12.0,
    "seed_minutes": 3.0,
    "load_before": "9.0 8.0 7.0",
    "load_after": "8.0 8.0 7.0",
    "chart": "docs/scorecard/scorecard.png",
}
SUMMARY = {**RUN, "patients": 2000, "seed": 7, "ledger_entries": 21_000,
           "ledger_entries_per_day": 1000.0}  # fmt: skip


def section() -> str:
    contained = alert("a", "2026-03-10T11:02:30Z", first_position=90, last_position=102,
                      action="suspend", account="dr.bad", severity="high")  # fmt: skip
    false = alert("f", "2026-03-03T03:00:00Z", account="rn.good", action="suspend")
    score = score_run(TRUTH, RUN, [contained, false])
    return markdown(score, SUMMARY, ABOUT)


def test_the_section_has_a_row_per_scenario_and_every_target() -> None:
    text = section()
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert [row.split(" | ")[0] for row in rows[1:]] == ["| bulk", "| bypass", "| drip"]
    # Two patients were given after the account was suspended: shown, not hidden.
    assert "| bulk | bulk | yes | 2 min | 5 | 3 | 3 | 2 |" in rows
    # Neither the bypass nor the drip was found: said plainly, and everything counted.
    assert "| bypass |  | **no** | - | 3 | 3 | 3 (not contained) | - |" in rows
    assert "wrongful automatic suspensions: rn.good" in text
    assert "- [ ] every scenario detected — **not met**" in text
    assert "- [ ] no wrongful suspension — **not met**" in text
    assert "2,000 patients in 8 clinics, 21 days from 2026-03-02" in text
    assert text.endswith("![scorecard chart](docs/scorecard/scorecard.png)")


def test_only_the_text_between_the_markers_is_replaced() -> None:
    readme = f"# Title\n\nbefore\n\n{BEGIN}\nold table\n{END}\n\nafter\n"
    once = replace_section(readme, "new table")
    assert once == f"# Title\n\nbefore\n\n{BEGIN}\nnew table\n{END}\n\nafter\n"
    assert replace_section(once, "new table") == once


def test_a_readme_without_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="no scorecard markers"):
        replace_section("# Title\n", "table")


def test_the_plain_table_shows_what_was_released_after_containment() -> None:
    contained = alert("a", "2026-03-10T11:02:30Z", first_position=90, last_position=102,
                      action="suspend", account="dr.bad", severity="high")  # fmt: skip
    lines = table(score_run(TRUTH, RUN, [contained])).splitlines()
    assert "after contained" in lines[0]
    bulk = next(line for line in lines if line.startswith("bulk "))
    assert bulk.split()[-1] == "2"
