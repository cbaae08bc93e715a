"""Setting up, seeding and serving a data directory; the demo."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import typer

from carevault.cli.common import HomeOption, app, settings_for
from carevault.config import Settings


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
    }


@app.command()
def init(home: HomeOption = None) -> None:
    """Create the data directory, the keys and the database schema (safe to run again)."""
    from carevault.bootstrap import initialise

    settings = settings_for(home)
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
) -> None:
    """Serve an existing data directory over HTTP (FHIR at /fhir)."""
    import uvicorn

    from carevault.web.app import create_app

    settings = settings_for(home)
    application = create_app(settings)
    typer.echo(f"CareVault FHIR server: http://{host}:{port}/fhir  (metadata: /fhir/metadata)")
    uvicorn.run(application, host=host, port=port, **uvicorn_options(settings))


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
    from carevault.sim.loader import LOGINS_FILE, already_seeded, seed_clinic_group
    from carevault.web.app import create_app

    settings = settings_for(home, environment="demo", direct_grant=True)
    initialise(settings)
    services = build_services(settings)
    if already_seeded(services):
        typer.echo("data directory already seeded; serving it as it is")
        typer.echo(f"demo logins: {settings.home.resolve() / LOGINS_FILE}")
    else:
        summary = seed_clinic_group(
            services, patients=patients, seed=seed_value, today=None, progress=True
        )
        typer.echo(summary.describe())
        typer.echo(summary.login_table())
    application = create_app(settings, services)
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
