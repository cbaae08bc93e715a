"""The ``carevault`` command line."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from carevault.config import Settings, UnsafeConfiguration, load_settings

app = typer.Typer(
    name="carevault",
    help="CareVault: patient data for clinic groups, built to survive a breach and explain it.",
    no_args_is_help=True,
    add_completion=False,
)

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="Data directory (default: $CAREVAULT_HOME or ./carevault-data)."),
]


def _settings(home: Path | None, **overrides: object) -> Settings:
    if home is not None:
        overrides["home"] = home
    try:
        return load_settings(**overrides)
    except UnsafeConfiguration as error:
        typer.secho(f"refusing to start: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None


@app.command()
def init(home: HomeOption = None) -> None:
    """Create the data directory, the keys and the database schema (safe to run again)."""
    from carevault.bootstrap import initialise

    settings = _settings(home)
    initialise(settings)
    typer.echo(f"data directory ready: {settings.home.resolve()}")
    if settings.key_provider == "local":
        typer.echo(
            f"keyring (keep it apart from backups): {settings.resolved_keyring_path.resolve()}"
        )


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

    settings = _settings(home)
    initialise(settings)
    services = build_services(settings)
    try:
        summary = seed_clinic_group(
            services.gate,
            patients=patients,
            seed=seed_value,
            today=date.fromisoformat(today) if today else None,
            progress=True,
        )
    finally:
        services.close()
    typer.echo(summary.describe())


@app.command()
def serve(
    home: HomeOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Serve an existing data directory over HTTP (FHIR at /fhir)."""
    import uvicorn

    from carevault.web.app import create_app

    settings = _settings(home)
    application = create_app(settings)
    typer.echo(f"CareVault FHIR server: http://{host}:{port}/fhir  (metadata: /fhir/metadata)")
    uvicorn.run(application, host=host, port=port, log_level="info", access_log=False)


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
    from carevault.sim.loader import already_seeded, seed_clinic_group
    from carevault.web.app import create_app

    settings = _settings(home, environment="demo")
    initialise(settings)
    services = build_services(settings)
    if already_seeded(services.gate):
        typer.echo("data directory already seeded; serving it as it is")
    else:
        summary = seed_clinic_group(
            services.gate, patients=patients, seed=seed_value, today=None, progress=True
        )
        typer.echo(summary.describe())
    application = create_app(settings, services)
    base = f"http://{host}:{port}"
    typer.echo("")
    typer.echo(f"FHIR server:        {base}/fhir")
    typer.echo(f"CapabilityStatement: {base}/fhir/metadata")
    typer.echo(f"Try:                curl '{base}/fhir/Patient?name=chan&_count=5'")
    try:
        uvicorn.run(application, host=host, port=port, log_level="info", access_log=False)
    finally:
        services.close()


def main() -> None:
    app()
