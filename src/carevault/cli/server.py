"""Setting up, seeding and serving a data directory; the demo."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from carevault.cli.common import HomeOption, app, open_services, operator, settings_for
from carevault.cli.detector import DetectorProcess
from carevault.config import Settings
from carevault.logformat import configure, logging_config

if TYPE_CHECKING:
    from carevault.bootstrap import Services
    from carevault.sim.group import ClinicGroup

#: Records per transaction of the demo's background seeding: small, so that requests
#: waiting for the write lock wait little.
BACKGROUND_BATCH = 400


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How uvicorn treats X-Forwarded-For/-Proto: believed only from the configured
    proxies. With none configured (the default) the headers are ignored altogether —
    uvicorn's own default would believe any client on 127.0.0.1 (or whatever
    FORWARDED_ALLOW_IPS says), so a process on the same host could pick the address
    that the ledger, the sessions and the blocked-address check see."""
    proxies = settings.trusted_proxy_list
    return {
        "proxy_headers": bool(proxies),
        "forwarded_allow_ips": proxies if proxies else [],
        "log_level": "info",
        "access_log": False,
        "log_config": logging_config(settings.log_format),
    }


@app.command()
def init(
    home: HomeOption = None,
    reindex: Annotated[
        bool,
        typer.Option(
            help="Reindex the stored records if their sensitivity markers were written "
            "under other rules (an upgrade that lists more sensitive codes); with "
            "--no-reindex, run `carevault reindex` while serving instead."
        ),
    ] = True,
) -> None:
    """Create the data directory, the keys and the database schema, or upgrade them and
    the search index of the records stored (safe to run again)."""
    from carevault.bootstrap import initialise

    settings = settings_for(home)
    initialise(settings)
    typer.echo(f"data directory ready: {settings.home.resolve()}")
    if settings.key_provider == "local":
        typer.echo(
            f"keyring (keep it apart from backups): {settings.resolved_keyring_path.resolve()}"
        )
    _mark_again(home, reindex=reindex)


def _mark_again(home: Path | None, *, reindex: bool) -> None:
    """After an upgrade whose rules of what is sensitive differ, the health records'
    sensitivity markers are untrusted (fail closed: searches by roles that may not read
    sensitive records open them, or are refused as too costly): reindex them now, before
    the servers start, unless the operator chose to run ``carevault reindex`` while
    serving."""
    from carevault.vault.reindex import ReindexIncomplete, stale_markers

    with open_services(home) as services:
        if not stale_markers(services.vault):
            return
        if not reindex:
            typer.echo(
                "the health records' sensitivity markers were written under other rules: "
                "run `carevault reindex` (safe while serving); until then searches by "
                "roles that may not read sensitive records open them, or are refused"
            )
            return
        typer.echo("sensitivity markers written under other rules: reindexing")
        try:
            done = services.gate.reindex(operator(), batch=500)
        except ReindexIncomplete as error:
            typer.secho(str(error), fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from None
        typer.echo(f"reindexed {done} records")


@app.command()
def seed(
    home: HomeOption = None,
    patients: Annotated[int, typer.Option(min=0, help="How many patients to create.")] = 20_000,
    seed_value: Annotated[int, typer.Option("--seed", help="Seed of the synthetic data.")] = 7,
    today: Annotated[
        str | None, typer.Option(help="Date the data is built around (YYYY-MM-DD).")
    ] = None,
) -> None:
    """Fill the data directory with a synthetic Hong Kong clinic group and its patients."""
    from carevault.bootstrap import build_services, initialise
    from carevault.sim.loader import seed_clinic_group

    settings = settings_for(home)
    initialise(settings)
    services = build_services(settings)
    try:
        summary = seed_clinic_group(
            services,
            patients=patients,
            seed=seed_value,
            today=date.fromisoformat(today) if today else None,
            progress=True,
        )
    finally:
        services.close()
    typer.echo(summary.describe())
    if summary.logins:
        typer.echo(summary.login_table())


@app.command()
def serve(
    home: HomeOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[
        int | None,
        typer.Option(min=1, max=64, help="Server processes (default: the number of cores)."),
    ] = None,
) -> None:
    """Serve an existing data directory over HTTP (FHIR at /fhir), with the detectors in
    a process of their own (`carevault detect`)."""
    settings = settings_for(home)
    count = workers if workers is not None else os.cpu_count() or 1
    typer.echo(
        f"CareVault FHIR server: http://{host}:{port}/fhir  (metadata: /fhir/metadata), "
        f"{count} process{'es' if count > 1 else ''}"
        + (" and the detectors' own" if settings.detect else "")
    )
    # Before anything logs: the services built for one process, and the supervisor's
    # word on a detection process that died, log as uvicorn's workers will.
    configure(settings.log_format)
    detectors = None
    if settings.detect:
        # The detectors in a process of their own (cli/detector.py); the server processes
        # keep the release budget and the decoy watch, which act on each request.
        os.environ["CAREVAULT_DETECT_THREAD"] = "false"
        settings = settings.model_copy(update={"detect_thread": False})
        detectors = DetectorProcess(settings.home, os.environ)
        # uvicorn (one process) raises the SIGTERM it caught again once it has shut
        # down: by default that killed this process before it stopped the detectors.
        signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        if detectors is not None:
            detectors.start()
        _serve(settings, host, port, count)
    finally:
        if detectors is not None:
            detectors.stop()


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _serve(settings: Settings, host: str, port: int, count: int) -> None:
    import uvicorn

    from carevault.web.app import create_app

    if count == 1:
        application = create_app(settings)
        uvicorn.run(application, host=host, port=port, **uvicorn_options(settings))
        return
    # Each worker builds its own services from the environment (web/workers.py).
    os.environ["CAREVAULT_HOME"] = str(settings.home)
    if "database_pool_size" not in settings.model_fields_set:
        # The default pool is the whole server's: each process gets its share. With a
        # whole pool each, a 2-process server held 49 connections under 32 clients (and
        # a 1-process one beside it 39): other clients of PostgreSQL were refused.
        share = max(4, Settings.model_fields["database_pool_size"].default // count)
        os.environ["CAREVAULT_DATABASE_POOL_SIZE"] = str(share)
    uvicorn.run(
        "carevault.web.workers:app_from_environment",
        factory=True,
        workers=count,
        # A worker answers the supervisor's ping within this, or is restarted; starting
        # one (imports, services) takes seconds on a busy machine.
        timeout_worker_healthcheck=60,
        host=host,
        port=port,
        **uvicorn_options(settings),
    )


def _seed_in_background(services: Services, group: ClinicGroup, patients: int, seed: int) -> None:
    """The demo's patients, while the server answers; a restarted demo carries on."""
    from carevault.sim.loader import seed_patients

    done = [0]
    step = max(1, patients // 10)

    def advance(count: int) -> None:
        before = done[0] // step
        done[0] += count
        if done[0] // step > before or done[0] == patients:
            typer.echo(f"seeding in the background: {done[0]:,} of {patients:,} patients")

    started = time.perf_counter()
    try:
        written = seed_patients(
            services, group, patients, seed, BACKGROUND_BATCH, advance, directory=False
        )
    except Exception as error:  # noqa: BLE001 - reported; the server keeps serving
        typer.secho(f"background seeding stopped: {type(error).__name__}", fg="red", err=True)
        return
    if written:
        seconds = time.perf_counter() - started
        typer.echo(
            f"seeded {patients:,} patients ({written:,} records) in {seconds:.0f} s "
            f"({written / seconds:,.0f} records/s)"
        )


def demo_clinic_names(group: ClinicGroup, environ: Mapping[str, str]) -> dict[str, object]:
    """Letters name the clinics as the configuration does (``CAREVAULT_CLINIC_NAMES`` and
    ``_ZH``): the demo's settings name its synthetic group's, unless the environment
    names them itself."""
    return {
        setting: {clinic.id: getattr(clinic, attribute) for clinic in group.clinics}
        for setting, attribute in (("clinic_names", "name"), ("clinic_names_zh", "name_zh"))
        if f"CAREVAULT_{setting.upper()}" not in environ
    }


@app.command()
def demo(
    home: HomeOption = None,
    patients: Annotated[int, typer.Option(min=0, help="How many patients to create.")] = 20_000,
    seed_value: Annotated[int, typer.Option("--seed", help="Seed of the synthetic data.")] = 7,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Set up a demo data directory (once), seed it, and serve it."""
    import uvicorn

    from carevault.bootstrap import build_services, initialise
    from carevault.sim.group import build_group
    from carevault.sim.loader import (
        LOGINS_FILE,
        already_seeded,
        seed_clinic_group,
        seeding_begun,
    )
    from carevault.web.app import create_app

    group = build_group(seed_value, None)
    names = demo_clinic_names(group, os.environ)
    settings = settings_for(home, environment="demo", direct_grant=True, **names)
    initialise(settings)
    services = build_services(settings)
    background = True
    if already_seeded(services):
        typer.echo("data directory already seeded; serving it as it is")
        typer.echo(f"demo logins: {settings.home.resolve() / LOGINS_FILE}")
        # Carried on only if the demo began it; never on top of another seeding.
        background = seeding_begun(services, group, seed_value, patients)
    else:
        # The clinics, staff and timetable first (seconds); the patients follow in the
        # background while the server answers (sim/loader.py, resumable).
        summary = seed_clinic_group(services, patients=0, seed=seed_value, today=None)
        typer.echo(summary.describe())
        typer.echo(summary.login_table())
    if background and patients:
        threading.Thread(
            target=_seed_in_background,
            args=(services, group, patients, seed_value),
            name="demo-seeding",
            daemon=True,
        ).start()
    application = create_app(settings, services)
    # The app starts no background work for services it was handed (tests own theirs);
    # the demo is a long-running server like `serve`: its checkpoints, sealer, detectors
    # (in a thread: detect_thread) and the export and import workers, without which an
    # approved $export stayed "approved, queued" for ever (integrator round 64).
    services.start_background()
    base = f"http://{host}:{port}"
    typer.echo("")
    typer.echo(f"FHIR server:        {base}/fhir")
    typer.echo(f"CapabilityStatement: {base}/fhir/metadata")
    typer.echo(f"SMART configuration: {base}/.well-known/smart-configuration")
    typer.echo(f"Audit checkpoint:    {base}/audit/checkpoint")
    typer.echo(f"Console:             {base}/console/  (privacy officer, clinic managers)")
    typer.echo("Sign in with a login above: README.md, 'Using it', shows a token with curl.")
    try:
        uvicorn.run(application, host=host, port=port, **uvicorn_options(settings))
    finally:
        services.close()
