"""The ``carevault`` command line."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from carevault.access.accounts import AccountError
from carevault.access.clients import ClientError
from carevault.access.passwords import WeakPassword
from carevault.config import Settings, UnsafeConfiguration, load_settings
from carevault.domain.roles import Role
from carevault.keys.provider import KeyProviderUnavailable

if TYPE_CHECKING:
    from carevault.bootstrap import Services

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
    from carevault.sim.loader import LOGINS_FILE, already_seeded, seed_clinic_group
    from carevault.web.app import create_app

    settings = _settings(home, environment="demo", direct_grant=True)
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
    typer.echo(f"Try:                curl '{base}/fhir/Patient?name=chan&_count=5'")
    try:
        uvicorn.run(application, host=host, port=port, log_level="info", access_log=False)
    finally:
        services.close()


# --- staff and client apps -----------------------------------------------------------------

staff_app = typer.Typer(help="Staff accounts: add, list, suspend, reset password or TOTP.")
client_app = typer.Typer(help="Client apps (SMART on FHIR): add, list, revoke.")
app.add_typer(staff_app, name="staff")
app.add_typer(client_app, name="client")


def _operator() -> str:
    """Who runs an administrative command: the operating-system user on the server host."""
    return f"cli:{getpass.getuser()}"


@contextmanager
def _services(home: Path | None) -> Iterator[Services]:
    from carevault.bootstrap import build_services

    settings = _settings(home)
    try:
        services = build_services(settings)
    except KeyProviderUnavailable as error:
        typer.secho(f"cannot open the data directory: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    try:
        yield services
    except (AccountError, ClientError, WeakPassword) as error:
        typer.secho(str(error), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    finally:
        services.close()


def _new_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    value: str = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    return value


def _show_totp(username: str, secret: str) -> None:
    from carevault.access.totp import provisioning_uri

    typer.echo(f"TOTP secret for {username}: {secret}")
    typer.echo(f"Authenticator link: {provisioning_uri(secret, username, 'CareVault')}")
    typer.echo("Shown once: enrol it in an authenticator app now.")


PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input.")
]


@staff_app.command("add")
def staff_add(
    username: str,
    name: Annotated[str, typer.Option(help="Display name.")],
    role: Annotated[Role, typer.Option(help="The staff member's role.")],
    clinic: Annotated[list[str], typer.Option(help="Clinic (Organization id); repeatable.")],
    practitioner: Annotated[
        str | None, typer.Option(help="Their Practitioner id (clinicians).")
    ] = None,
    password_stdin: PasswordStdin = False,
    home: HomeOption = None,
) -> None:
    """Create a staff account; prints its TOTP secret once."""
    password = _new_password(password_stdin)
    with _services(home) as services:
        account, secret = services.admin.add_staff(
            _operator(), username, name, role, clinic, password, practitioner
        )
    typer.echo(f"added {account.username} ({account.role}) as {account.account_id}")
    _show_totp(account.username, secret)


@staff_app.command("list")
def staff_list(home: HomeOption = None) -> None:
    """Every staff account, its role, clinics and state."""
    with _services(home) as services:
        for account in services.accounts.all():
            state = "suspended" if account.suspended else "active"
            clinics = ",".join(sorted(account.clinic_ids))
            typer.echo(f"{account.username}\t{account.role}\t{state}\t{clinics}")


@staff_app.command("suspend")
def staff_suspend(
    username: str,
    reason: Annotated[str, typer.Option(help="Why (recorded).")] = "suspended by administrator",
    reinstate: Annotated[bool, typer.Option(help="Lift the suspension instead.")] = False,
    home: HomeOption = None,
) -> None:
    """Suspend an account: its sessions and tokens stop working at once."""
    with _services(home) as services:
        if reinstate:
            account = services.admin.reinstate(_operator(), username)
            typer.echo(f"{account.username} reinstated")
        else:
            account, ended = services.admin.suspend(_operator(), username, reason=reason)
            typer.echo(f"{account.username} suspended; {ended} live sessions ended")


@staff_app.command("reset-password")
def staff_reset_password(
    username: str, password_stdin: PasswordStdin = False, home: HomeOption = None
) -> None:
    """Set a new password; every session of the account ends."""
    password = _new_password(password_stdin)
    with _services(home) as services:
        ended = services.admin.reset_password(_operator(), username, password)
    typer.echo(f"password changed; {ended} live sessions ended")


@staff_app.command("reset-totp")
def staff_reset_totp(username: str, home: HomeOption = None) -> None:
    """Issue a new TOTP secret (lost phone); every session of the account ends."""
    with _services(home) as services:
        account, secret = services.admin.reset_totp(_operator(), username)
    _show_totp(account.username, secret)


@client_app.command("add")
def client_add(
    client_id: str,
    name: Annotated[str, typer.Option(help="The app's name, shown on the sign-in page.")],
    scope: Annotated[str, typer.Option(help="SMART scopes it may ask for, space separated.")],
    confidential: Annotated[
        bool, typer.Option(help="An integration (service) app with a secret.")
    ] = False,
    redirect_uri: Annotated[
        list[str] | None, typer.Option(help="Registered redirect URI; repeatable.")
    ] = None,
    clinic: Annotated[
        list[str] | None, typer.Option(help="Clinics an integration app may reach.")
    ] = None,
    home: HomeOption = None,
) -> None:
    """Register a client app; a confidential app's secret is printed once."""
    with _services(home) as services:
        app_, secret = services.admin.add_client(
            _operator(),
            client_id,
            name,
            confidential=confidential,
            scopes=scope,
            redirect_uris=redirect_uri or [],
            clinic_ids=clinic or [],
        )
    kind = "confidential" if app_.confidential else "public"
    typer.echo(f"added client {app_.client_id} ({kind})")
    if secret:
        typer.echo(f"client secret (shown once): {secret}")


@client_app.command("list")
def client_list(home: HomeOption = None) -> None:
    """Every registered client app."""
    with _services(home) as services:
        for item in services.clients.all():
            state = "revoked" if item.revoked else "active"
            kind = "confidential" if item.confidential else "public"
            typer.echo(f"{item.client_id}\t{kind}\t{state}\t{item.name}")


@client_app.command("revoke")
def client_revoke(client_id: str, home: HomeOption = None) -> None:
    """Revoke a client app: every session opened through it ends."""
    with _services(home) as services:
        _, ended = services.admin.revoke_client(_operator(), client_id)
    typer.echo(f"client {client_id} revoked; {ended} live sessions ended")


def main() -> None:
    app()
