"""The scorecard as people read it: a plain-text table and a PNG chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from carevault.sim.evaluate import RunScore, ScenarioScore


def _number(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def table(score: RunScore) -> str:
    header = (
        f"{'scenario':<28} {'detected':>8} {'to alert (sim)':>14} {'(wall)':>8} "
        f"{'released':>8} {'before alert':>12} {'before contained':>16} {'after contained':>15}"
    )
    lines = [header, "-" * len(header)]
    for s in score.scenarios:
        contained = _number(s.released_before_containment) + ("" if s.contained else " (not)")
        lines.append(
            f"{s.name:<28} {'yes' if s.detected else 'NO':>8} "
            f"{_duration(s.seconds_to_first_alert):>14} "
            f"{_duration(s.wall_seconds_to_first_alert):>8} "
            f"{s.patients_released:>8,} {s.released_before_detection:>12,} {contained:>16} "
            f"{_after(s):>15}"
        )
    lines += [
        "",
        f"alerts: {score.alerts:,}, of which false: {score.false_alerts:,}",
        "false alerts per clinic-week (attack-free weeks "
        f"{', '.join(score.attack_free_weeks) or 'none'}): "
        f"{_number(score.false_alerts_per_clinic_week, 2)}",
        f"wrongful automatic suspensions: {', '.join(score.wrongful_blocks) or 'none'}",
        f"mean precision of each day's top 10 alerts: {_number(score.mean_top_precision, 2)}",
        "",
        "targets:",
        *(
            f"  [{'pass' if ok else 'FAIL' if ok is False else ' -- '}] {name}"
            for name, ok in score.targets.items()
        ),
    ]
    return "\n".join(lines)


def chart(score: RunScore, path: Path) -> Path:
    """Four panels: records released per scenario, time to first alert, false alerts per
    week, and the daily top-10 precision."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 2, figsize=(13, 9))
    names = [s.name for s in score.scenarios]
    positions = range(len(names))
    released = axes[0][0]
    released.bar([p - 0.27 for p in positions], [s.released_before_detection for s in
                 score.scenarios], width=0.27, label="before first alert")  # fmt: skip
    released.bar(list(positions), [s.released_before_containment for s in
                 score.scenarios], width=0.27, label="before containment")  # fmt: skip
    released.bar([p + 0.27 for p in positions], [s.released_after_containment for s in
                 score.scenarios], width=0.27, label="after containment began")  # fmt: skip
    released.axhline(50, color="grey", linestyle="--", linewidth=1, label="50 (bulk target)")
    released.set_yscale("symlog")
    released.set_title("Patients released per scenario")
    released.set_xticks(list(positions), names, rotation=30, ha="right", fontsize=8)
    released.legend(fontsize=8)
    timing = axes[0][1]
    minutes = [(s.seconds_to_first_alert or 0) / 60 for s in score.scenarios]
    timing.bar(list(positions), minutes, color=["tab:green" if s.detected else "tab:red"
                                                for s in score.scenarios])  # fmt: skip
    timing.set_yscale("symlog")
    timing.set_title("Simulated minutes to first alert (red: not detected)")
    timing.set_xticks(list(positions), names, rotation=30, ha="right", fontsize=8)
    weekly = axes[1][0]
    weeks = list(score.false_alerts_by_week)
    weekly.bar(weeks, list(score.false_alerts_by_week.values()), color="tab:orange")
    weekly.set_title("False alerts per week (all clinics)")
    weekly.tick_params(axis="x", labelrotation=30, labelsize=8)
    daily = axes[1][1]
    days = [d["day"][5:] for d in score.daily_top_precision]
    daily.plot(days, [d["precision"] for d in score.daily_top_precision], marker="o")
    daily.set_ylim(-0.05, 1.05)
    daily.set_title("Precision of each day's top 10 alerts")
    daily.tick_params(axis="x", labelrotation=60, labelsize=7)
    figure.suptitle("CareVault detection scorecard (simulated run)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


# --- the README's section ------------------------------------------------------------------------

BEGIN = "<!-- scorecard:begin (written by scripts/scorecard; do not edit by hand) -->"
END = "<!-- scorecard:end -->"


def _released(s: ScenarioScore) -> str:
    return f"{s.released_before_containment:,}" + ("" if s.contained else " (not contained)")


def _after(s: ScenarioScore) -> str:
    """Released after containment began; "-" where nothing contained the scenario."""
    return f"{s.released_after_containment:,}" if s.contained else "-"


def _detected(s: ScenarioScore) -> str:
    if not s.detected:
        return "**no**"
    if s.drip and s.working_days_to_detection is not None:
        return f"yes (working day {s.working_days_to_detection})"
    return "yes"


def markdown(score: RunScore, run: dict[str, Any], about: dict[str, Any]) -> str:
    """The scorecard as a Markdown section: what was run, per scenario, the run's figures
    and the issue's targets. ``about`` says how it was made (command, load, wall time)."""
    lines = [
        f"Generated {about['generated']} by `{about['command']}`: "
        f"{run['patients']:,} patients in {run['clinics']} clinics, {run['days']} days from "
        f"{run['start']} (seed {run['seed']}), {len(score.scenarios)} scenarios; "
        f"{run['ledger_entries']:,} audit entries ({run['ledger_entries_per_day']:,.0f} a "
        f"day); {about['wall_minutes']:.1f} min wall (seeding {about['seed_minutes']:.1f} "
        f"min), load average {about['load_before']} before and {about['load_after']} after.",
        "",
        "| scenario | bulk / drip | detected | to first alert (simulated) | released in all "
        "| before first alert | before containment | after containment began |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in score.scenarios:
        kind = "bulk" if s.bulk else "drip" if s.drip else ""
        lines.append(
            f"| {s.name} | {kind} | {_detected(s)} | {_duration(s.seconds_to_first_alert)} "
            f"| {s.patients_released:,} | {s.released_before_detection:,} | {_released(s)} "
            f"| {_after(s)} |"
        )
    per_week = _number(score.false_alerts_per_clinic_week, 2)
    lines += [
        "",
        f"Alerts {score.alerts:,}, of which false {score.false_alerts:,}; false alerts per "
        f"clinic-week on attack-free weeks ({', '.join(score.attack_free_weeks) or 'none'}): "
        f"{per_week}; wrongful automatic suspensions: "
        f"{', '.join(score.wrongful_blocks) or 'none'}; mean precision of each day's top 10 "
        f"alerts: {_number(score.mean_top_precision, 2)}.",
        "",
        *(
            f"- [{'x' if ok else ' '}] {name}"
            + ("" if ok is not None else " (nothing to judge)")
            + (" — **not met**" if ok is False else "")
            for name, ok in score.targets.items()
        ),
        "",
        f"![scorecard chart]({about['chart']})",
    ]
    return "\n".join(lines)


def replace_section(text: str, section: str) -> str:
    """``text`` with what lies between the markers replaced by ``section``."""
    begin, end = text.find(BEGIN), text.find(END)
    if begin < 0 or end < begin:
        raise ValueError(f"the README has no scorecard markers ({BEGIN} ... {END})")
    return text[: begin + len(BEGIN)] + "\n" + section.strip() + "\n" + text[end:]
