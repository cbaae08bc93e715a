"""``carevault sim``: a simulated month of the clinic group's work, attacks, the scorecard."""

from __future__ import annotations

import json
import time
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from carevault.cli.common import HomeOption, app, fail, settings_for

if TYPE_CHECKING:
    from collections.abc import Callable

    from carevault.sim.evaluate import RunScore
    from carevault.sim.workload.run import DayFigures
    from carevault.sim.workload.timeline import SimClock

sim_app = typer.Typer(
    help="Simulate the group's normal work with attacks injected, and score the detectors.",
    no_args_is_help=True,
)
app.add_typer(sim_app, name="sim")

DEFAULT_START = "2026-03-02"
#: The default month's group: the demo's 8 clinics and staff, with 2,000 patients rather
#: than the demo's 20,000 so that the month runs in minutes on a shared 2-core machine
#: (docs/simulation.md, "Why 2,000 patients").
DEFAULT_PATIENTS = 2_000
ScenariosOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--scenario",
        help="A scenario file or a folder of them (repeatable; default: the shipped ones).",
    ),
]


def _scenario_files(given: list[Path] | None) -> list[Path]:
    from carevault.sim.attack.spec import shipped

    if not given:
        return shipped()
    files: list[Path] = []
    for path in given:
        files.extend(sorted(path.glob("*.toml")) if path.is_dir() else [path])
    return files


def _run_folder(home: Path, out: Path | None) -> Path:
    return out if out is not None else home / "sim-run"


@sim_app.command("check")
def check(scenarios: ScenariosOption = None) -> None:
    """Check scenario files (unknown fields, wrong types, impossible dates)."""
    from carevault.sim.attack.spec import ScenarioError, load

    failed = False
    for path in _scenario_files(scenarios):
        try:
            scenario = load(path)
        except ScenarioError as error:
            typer.secho(str(error), fg=typer.colors.RED, err=True)
            failed = True
            continue
        typer.echo(f"ok  {scenario.name}  ({path})")
    if failed:
        raise typer.Exit(1)


@sim_app.command("run")
def run(
    home: HomeOption = None,
    days: Annotated[int, typer.Option(min=1, max=366, help="Simulated days.")] = 30,
    start: Annotated[str, typer.Option(help="First day (YYYY-MM-DD).")] = DEFAULT_START,
    patients: Annotated[int, typer.Option(min=1, help="Patients to seed.")] = DEFAULT_PATIENTS,
    seed_value: Annotated[int, typer.Option("--seed", help="Seed of the synthetic data.")] = 7,
    scenarios: ScenariosOption = None,
    no_attacks: Annotated[bool, typer.Option("--no-attacks", help="Normal work only.")] = False,
    visit_scale: Annotated[
        float,
        typer.Option(
            min=0.01, max=1000, help="Visits relative to the seeded history (small groups: more)."
        ),
    ] = 1.0,  # fmt: skip
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for run.json and ground-truth.json (default: HOME/sim-run)."),
    ] = None,  # fmt: skip
) -> None:
    """Seed a fresh home (once), then replay days of work through the gate on a simulated
    clock, with the attack scenarios on their days."""
    _simulate(home, days, start, patients, seed_value, scenarios, no_attacks, visit_scale, out)


def _simulate(
    home: Path | None,
    days: int,
    start: str,
    patients: int,
    seed_value: int,
    scenarios: list[Path] | None,
    no_attacks: bool,
    visit_scale: float,
    out: Path | None,
) -> dict[str, Any]:
    from carevault.bootstrap import build_services, initialise
    from carevault.sim.attack.spec import ScenarioError, load
    from carevault.sim.runner import RunRequest, prepare, start_clock
    from carevault.sim.runner import run as run_simulation

    try:
        first = date.fromisoformat(start)
        loaded = [] if no_attacks else [load(path) for path in _scenario_files(scenarios)]
    except (ValueError, ScenarioError) as error:
        raise fail(str(error), 2) from None
    settings = settings_for(home)
    initialise(settings)
    clock = start_clock(first)
    services = build_services(settings, clock=clock)
    folder = _run_folder(settings.home, out)
    request = RunRequest(first, days, patients, seed_value, loaded, folder, visit_scale)
    seeding = time.perf_counter()
    try:
        typer.echo(f"home {prepare(services, request, settings.home)}: {settings.home}")
        seed_seconds = time.perf_counter() - seeding
        if services.detection is not None:
            # Detectors live during the run, on its clock: automatic containment shows.
            services.detection.engine.catch_up()
            pace_detectors(clock, services.detection.engine.catch_up)
        summary = run_simulation(services, clock, request, _print_day)
    except (ValueError, LookupError, ScenarioError) as error:
        raise fail(str(error)) from None
    finally:
        services.close()
    typer.echo(
        f"simulated {summary['days']} days from {summary['start']} in "
        f"{summary['wall_seconds']:.0f} s: {summary['ledger_entries']:,} ledger entries "
        f"({summary['ledger_entries_per_day']:,.0f} a day), {len(loaded)} scenarios"
    )
    typer.echo(f"run and ground truth: {folder}")
    return {**summary, "seed_seconds": round(seed_seconds, 1)}


def pace_detectors(clock: SimClock, catch_up: Callable[[], object], every: float = 30.0) -> None:
    """Keep the detectors at most ``every`` simulated seconds behind the run.

    A live server judges each entry within a second of wall time; the run compresses
    hours into seconds, so a detector thread would lag by simulated minutes. Instead
    the detectors catch up whenever the clock is about to move ``every`` seconds past
    where they last did, so their alerts (and containment) land on the run's clock."""
    original = clock.set
    last = [clock.now]

    def set_and_judge(moment: datetime) -> None:
        if (moment - last[0]).total_seconds() >= every:
            catch_up()
            last[0] = moment
        original(moment)

    clock.set = set_and_judge  # type: ignore[method-assign]


def _print_day(figures: DayFigures) -> None:
    typer.echo(
        f"{figures.day} {figures.kind:<8} {figures.visits:>5} visits {figures.requests:>7,} "
        f"requests {figures.ledger_entries:>7,} ledger entries {figures.wall_seconds:>7.1f} s"
    )


@sim_app.command("evaluate")
def evaluate(
    home: HomeOption = None,
    out: Annotated[
        Path | None, typer.Option(help="The run's folder (default: HOME/sim-run).")
    ] = None,  # fmt: skip
    alerts: Annotated[
        Path | None,
        typer.Option(
            help="Alerts saved from 'carevault alerts list --json' (default: ask the engine)."
        ),
    ] = None,  # fmt: skip
    as_json: Annotated[bool, typer.Option("--json", help="The scorecard as JSON.")] = False,
    chart: Annotated[
        Path | None, typer.Option(help="Where to write the chart (PNG; default: the run's folder).")
    ] = None,  # fmt: skip
) -> None:
    """Score the detectors against a run's ground truth: a table, a PNG chart, or JSON."""
    from carevault.sim import scorecard

    score = _score(home, out, alerts)
    folder = _run_folder(settings_for(home).home, out)
    picture = scorecard.chart(score, chart or folder / "scorecard.png")
    (folder / "scorecard.json").write_text(json.dumps(score.as_json(), indent=1) + "\n")
    if as_json:
        typer.echo(json.dumps(score.as_json(), indent=1))
        return
    typer.echo(scorecard.table(score))
    typer.echo(f"\nchart: {picture}")


def _score(home: Path | None, out: Path | None, alerts: Path | None) -> RunScore:
    from carevault.sim import detection
    from carevault.sim.evaluate import AlertFormatError, score_run
    from carevault.sim.runner import RUN_FILE, TRUTH_FILE

    settings = settings_for(home)
    folder = _run_folder(settings.home, out)
    if not (folder / TRUTH_FILE).exists():
        raise fail(f"no run in {folder}: run 'carevault sim run' first", 2)
    truth = json.loads((folder / TRUTH_FILE).read_text())
    run_summary = json.loads((folder / RUN_FILE).read_text())
    if alerts is not None:
        found = detection.alerts_from_file(alerts)
    elif not detection.engine_installed():
        raise fail(detection.NOT_INSTALLED, 3)
    else:
        from carevault.bootstrap import build_services

        services = build_services(settings)
        try:
            listed = detection.installed_alerts(services)
        finally:
            services.close()
        if listed is None:
            raise fail(detection.NOT_INSTALLED, 3)
        found = listed
    try:
        return score_run(truth, run_summary, found)
    except AlertFormatError as error:
        raise fail(str(error), 2) from None


def _load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


@sim_app.command("scorecard")
def scorecard_command(
    home: Annotated[
        Path, typer.Option(help="A fresh folder for the run's data (it must not hold a run).")
    ],
    results: Annotated[Path, typer.Option(help="Where scorecard.md, .json and .png go.")] = Path(
        "docs/scorecard"
    ),  # fmt: skip
    readme: Annotated[
        Path | None,
        typer.Option(help="A README whose scorecard section (between the markers) is rewritten."),
    ] = Path("README.md"),  # fmt: skip
    days: Annotated[int, typer.Option(min=1, max=366, help="Simulated days.")] = 30,
    start: Annotated[str, typer.Option(help="First day (YYYY-MM-DD).")] = DEFAULT_START,
    patients: Annotated[int, typer.Option(min=1, help="Patients to seed.")] = DEFAULT_PATIENTS,
    seed_value: Annotated[int, typer.Option("--seed", help="Seed of the synthetic data.")] = 7,
    scenarios: ScenariosOption = None,
) -> None:
    """The default simulated month, scored, in one go: run it on a fresh home, score the
    detectors, write the table (Markdown and JSON) and the chart, and rewrite the README's
    scorecard section. Exit status 1 if a target is not met."""
    from carevault.sim import scorecard

    load_before, started = _load_average(), time.perf_counter()
    summary = _simulate(home, days, start, patients, seed_value, scenarios, False, 1.0, None)
    score = _score(home, None, None)
    results.mkdir(parents=True, exist_ok=True)
    picture = scorecard.chart(score, results / "scorecard.png")
    (results / "scorecard.json").write_text(
        json.dumps({"run": summary, "score": score.as_json()}, indent=1, default=str) + "\n"
    )
    argv = [f"--patients {patients}" if patients != DEFAULT_PATIENTS else "",
            f"--days {days}" if days != 30 else "", f"--seed {seed_value}" if seed_value != 7
            else "", f"--start {start}" if start != DEFAULT_START else ""]  # fmt: skip
    about = {
        "generated": datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "command": " ".join(["scripts/scorecard", *(a for a in argv if a)]),
        "wall_minutes": (time.perf_counter() - started) / 60,
        "seed_minutes": summary["seed_seconds"] / 60,
        "load_before": load_before,
        "load_after": _load_average(),
        "chart": picture.as_posix(),
    }
    section = scorecard.markdown(score, summary, about)
    alone = scorecard.markdown(score, summary, {**about, "chart": picture.name})
    (results / "scorecard.md").write_text("# Detection scorecard\n\n" + alone + "\n")
    typer.echo(scorecard.table(score))
    typer.echo(f"\nwrote {results}/scorecard.md, .json and .png")
    if readme is not None:
        readme.write_text(scorecard.replace_section(readme.read_text(), section))
        typer.echo(f"rewrote the scorecard section of {readme}")
    if any(ok is False for ok in score.targets.values()):
        raise typer.Exit(1)
