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
from carevault.access.breakglass import BreakGlassError
from carevault.access.clients import ClientError
from carevault.access.passwords import WeakPassword
from carevault.config import Settings, UnsafeConfiguration, load_settings
from carevault.containment.service import ContainmentRefused
from carevault.containment.state import Mode
from carevault.domain.roles import Role
from carevault.keys.provider import KeyProviderUnavailable

if TYPE_CHECKING:
    from carevault.bootstrap import Services
    from carevault.containment.service import Officer
    from carevault.keys.service import KeyService
    from carevault.ledger.service import Ledger

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
    typer.echo(f"SMART configuration: {base}/.well-known/smart-configuration")
    typer.echo(f"Audit checkpoint:    {base}/audit/checkpoint")
    typer.echo("Sign in with a login above: README.md, 'Using it', shows a token with curl.")
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
    except (
        AccountError,
        ClientError,
        WeakPassword,
        BreakGlassError,
        ContainmentRefused,
        ValueError,
    ) as error:
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


# --- audit ledger ---------------------------------------------------------------------------

audit_app = typer.Typer(help="The tamper-evident audit ledger: verify, checkpoint, export, report.")
witness_app = typer.Typer(help="Run a witness that cosigns checkpoints (C2SP tlog-witness).")
glass_app = typer.Typer(help="Break-the-glass grants: the privacy officer's review queue.")
app.add_typer(audit_app, name="audit")
app.add_typer(witness_app, name="witness")
app.add_typer(glass_app, name="break-glass")

LedgerChoice = Annotated[
    str, typer.Option("--ledger", help="audit, unwrap or all.", show_default=True)
]


def _chosen(services: Services, name: str) -> list[Ledger]:
    if name == "all":
        return services.ledgers()
    if name not in ("audit", "unwrap"):
        typer.secho("--ledger is audit, unwrap or all", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    return [services.audit_ledger if name == "audit" else services.unwrap_ledger]


@audit_app.command("verify")
def audit_verify(home: HomeOption = None, ledger: LedgerChoice = "all") -> None:
    """Recompute every ledger from its entries; check tiles, head, checkpoints, witnesses.

    Exits 1 and names the first entry or checkpoint that does not match.
    """
    failed = False
    with _services(home) as services:
        for chosen in _chosen(services, ledger):
            report = chosen.verify()
            if report.ok:
                typer.echo(
                    f"{report.ledger}: OK - {report.entries:,} entries, "
                    f"{report.checkpoints} checkpoints, {report.witnesses} witnesses agree"
                )
            else:
                failed = True
                typer.secho(f"{report.ledger}: MISMATCH", fg=typer.colors.RED, err=True)
                for problem in report.problems:
                    typer.secho(f"  - {problem}", fg=typer.colors.RED, err=True)
    if failed:
        raise typer.Exit(1)


@audit_app.command("checkpoint")
def audit_checkpoint(
    home: HomeOption = None,
    ledger: LedgerChoice = "all",
    reason: Annotated[str, typer.Option(help="Why (recorded with it).")] = "on demand",
) -> None:
    """Sign a checkpoint of the ledger now and hand it to the witnesses."""
    with _services(home) as services:
        for chosen in _chosen(services, ledger):
            made = chosen.checkpoints.make(reason)
            witnessed = ", ".join(made.witnessed_by) or "no witness"
            typer.echo(f"{chosen.store.name}: size {made.size}, cosigned by {witnessed}")
            typer.echo(made.note)


@audit_app.command("vkey")
def audit_vkey(home: HomeOption = None) -> None:
    """The verifier keys of the ledgers and witnesses (for the standalone verifier)."""
    with _services(home) as services:
        for chosen in services.ledgers():
            typer.echo(f"{chosen.store.name}: {chosen.checkpoints.signer.vkey.render()}")
        for witness in services.audit_ledger.witnesses:
            typer.echo(f"witness: {witness.verifier_key().render()}")


@audit_app.command("export")
def audit_export(
    form: Annotated[str, typer.Option("--format", help="fhir-ndjson, syslog or csv.")],
    home: HomeOption = None,
    ledger: Annotated[str, typer.Option(help="audit or unwrap.")] = "audit",
    output: Annotated[Path | None, typer.Option(help="File to write (default: stdout).")] = None,
) -> None:
    """Export ledger entries for a SIEM (RFC 5424 syslog), a spreadsheet or FHIR tools."""
    from carevault.ledger.export import EXPORT_FORMATS, export_lines

    if form not in EXPORT_FORMATS or ledger not in ("audit", "unwrap"):
        typer.secho(
            f"--format is one of {', '.join(EXPORT_FORMATS)}", fg=typer.colors.RED, err=True
        )
        raise typer.Exit(2)
    if ledger == "unwrap" and form != "csv":
        form = "csv"
    with _services(home) as services:
        (chosen,) = _chosen(services, ledger)
        entries = chosen.store.entries()
        lines = (
            export_lines(entries, form)
            if ledger == "audit"
            else (data.decode() for _, data in entries)
        )
        handle = output.open("w", encoding="utf-8") if output else sys.stdout
        try:
            for line in lines:
                handle.write(line + "\n")
        finally:
            if output:
                handle.close()


@audit_app.command("report")
def audit_report(
    patient: Annotated[str, typer.Option(help="The patient's id (Patient/<id>).")],
    home: HomeOption = None,
) -> None:
    """A patient's access report: every access to their record, each with its proof."""
    import json

    from carevault.ledger.audit import access_report
    from carevault.web.audit_routes import describe_principal

    with _services(home) as services:
        patient_id = patient.removeprefix("Patient/")
        pseudonyms = services.vault.patient_pseudonyms([patient_id])
        if patient_id not in pseudonyms:
            typer.secho(f"no patient {patient_id}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1)
        checkpoint = services.audit_ledger.checkpoints.make("access report")
        report = access_report(
            services.audit_ledger, pseudonyms[patient_id], checkpoint, describe_principal(services)
        )
    typer.echo(json.dumps({"patient": f"Patient/{patient_id}", **report}, indent=2))


@witness_app.command("serve")
def witness_serve(
    directory: Annotated[Path, typer.Option("--dir", help="The witness's own state directory.")],
    log_key: Annotated[
        list[str], typer.Option("--log-key", help="Verifier key of a log to witness; repeatable.")
    ],
    name: Annotated[str, typer.Option(help="The witness's name (its key name).")] = "witness",
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 7380,
) -> None:
    """Serve a witness over HTTP: POST /add-checkpoint as C2SP tlog-witness specifies."""
    from carevault.ledger.verifier import VerifierKey
    from carevault.ledger.witness import WitnessCore, serve_witness

    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    core = WitnessCore(directory, name, [VerifierKey.parse(key) for key in log_key])
    server = serve_witness(core, host, port)
    typer.echo(f"witness {name} on http://{host}:{port}  vkey: {core.verifier_key().render()}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@glass_app.command("queue")
def glass_queue(home: HomeOption = None) -> None:
    """Break-the-glass grants waiting for the privacy officer's review."""
    with _services(home) as services:
        for grant in services.break_glass.queue():
            account = services.accounts.get(grant.account_id)
            who = account.username if account else grant.account_id
            typer.echo(
                f"{grant.grant_id}\t{who}\t{grant.reason}\tpatient {grant.patient_pseudonym}"
                f"\t{services.break_glass.reason_text(grant.grant_id)}"
            )


@glass_app.command("review")
def glass_review(
    grant_id: str,
    outcome: Annotated[str, typer.Option(help="justified or unjustified.")],
    reviewer: Annotated[str, typer.Option(help="The reviewing privacy officer's username.")],
    home: HomeOption = None,
) -> None:
    """Record the privacy officer's review of a grant."""
    from carevault.ledger.events import AuditEvent, Outcome, Tag

    with _services(home) as services:
        account = services.accounts.find(reviewer)
        if account is None or account.role is not Role.PRIVACY_OFFICER:
            typer.secho("the reviewer must be a privacy officer", fg=typer.colors.RED, err=True)
            raise typer.Exit(1)
        grant = services.break_glass.review(grant_id, account.account_id, outcome)
        services.audit.record(
            [
                AuditEvent(
                    tag=Tag.ACCESS_BREAK_GLASS_REVIEWED,
                    outcome=Outcome.SUCCESS,
                    at_us=services.now_us(),
                    principal=f"staff:{account.username}",
                    role=str(account.role),
                    patient_pseudonym=grant.patient_pseudonym,
                    reason=f"grant {grant_id}: {outcome}",
                )
            ]
        )
    typer.echo(f"grant {grant_id} reviewed: {outcome}")


# --- containment and status ------------------------------------------------------------------

contain_app = typer.Typer(help="Containment: graded switches for an incident (privacy officer).")
app.add_typer(contain_app, name="contain")

OfficerOption = Annotated[str, typer.Option("--officer", help="Your privacy-officer username.")]
TotpOption = Annotated[
    str | None, typer.Option("--totp", help="A fresh TOTP code (prompted if not given).")
]


def _officer(username: str, code: str | None) -> Officer:
    from carevault.containment.service import Officer

    fresh: str = code or typer.prompt("TOTP code", hide_input=True)
    return Officer(username, fresh, "cli")


@contain_app.command("start")
def contain_start(
    mode: Annotated[Mode, typer.Argument(help="The containment mode.")],
    reason: Annotated[str, typer.Option(help="Why (recorded in the ledger).")],
    officer: OfficerOption,
    target: Annotated[
        str | None,
        typer.Option(help="Clinic id, address range, username or client id, as the mode needs."),
    ] = None,
    totp: TotpOption = None,
    home: HomeOption = None,
) -> None:
    """Start a containment mode; it takes effect in every server process within a second."""
    with _services(home) as services:
        started = services.contain.start(_officer(officer, totp), mode, target, reason)
    suffix = f" on {started.target}" if started.target else ""
    typer.echo(f"containment #{started.containment_id}: {started.mode}{suffix} is ON")


@contain_app.command("release")
def contain_release(
    containment_id: int,
    reason: Annotated[str, typer.Option(help="Why (recorded in the ledger).")],
    officer: OfficerOption,
    totp: TotpOption = None,
    home: HomeOption = None,
) -> None:
    """Release a containment mode."""
    with _services(home) as services:
        released = services.contain.release(_officer(officer, totp), containment_id, reason)
    typer.echo(f"containment #{released.containment_id}: {released.mode} released")


@contain_app.command("approve")
def contain_approve(
    grant_id: str, officer: OfficerOption, totp: TotpOption = None, home: HomeOption = None
) -> None:
    """Approve a clinician's emergency access request while patient data is offline."""
    with _services(home) as services:
        grant = services.contain.approve_emergency(_officer(officer, totp), grant_id)
    typer.echo(f"emergency access {grant.grant_id} approved")


@app.command()
def status(home: HomeOption = None) -> None:
    """Active containment, break-the-glass review queue, emergency requests, ledgers."""
    with _services(home) as services:
        state = services.containment.refresh()
        typer.echo("Containment:")
        if not state.active:
            typer.echo("  none active")
        for item in state.active:
            suffix = f" {item.target}" if item.target else ""
            typer.echo(
                f"  #{item.containment_id} {item.mode}{suffix} since {_when(item.started_us)}"
                f" by {item.started_by}: {item.reason}"
            )
        pending = services.break_glass.pending()
        typer.echo(f"Emergency access requests awaiting approval: {len(pending)}")
        for grant in pending:
            typer.echo(f"  {grant.grant_id} {grant.reason} (account {grant.account_id})")
        queue = services.break_glass.queue()
        typer.echo(f"Break-the-glass grants awaiting review: {len(queue)}")
        for grant in queue:
            typer.echo(f"  {grant.grant_id} {grant.reason} at {_when(grant.granted_us)}")
        for ledger in services.ledgers():
            size, _ = ledger.store.head()
            latest = ledger.checkpoints.latest()
            signed = f"last checkpoint at size {latest.size}" if latest else "no checkpoint yet"
            typer.echo(f"Ledger {ledger.store.name}: {size:,} entries, {signed}")


@app.command()
def erase(
    patient: Annotated[str, typer.Option(help="The patient's id.")],
    reason: Annotated[str, typer.Option(help="The erasure request (recorded).")],
    officer: OfficerOption,
    totp: TotpOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    home: HomeOption = None,
) -> None:
    """Erase one patient by crypto-shredding their data key (cannot be undone).

    Backups keep the wrapped key while the old key-encryption key lives: afterwards
    run `carevault keys rotate` and `carevault keys destroy-version` for the old one.
    """
    with _services(home) as services:
        if services.keys is None:
            typer.secho("encryption is off: nothing to shred", fg=typer.colors.RED, err=True)
            raise typer.Exit(1)
        patient_id = patient.removeprefix("Patient/")
        pseudonyms = services.vault.patient_pseudonyms([patient_id])
        if patient_id not in pseudonyms:
            typer.secho(f"no patient {patient_id}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1)
        if not yes:
            typer.confirm(f"Erase Patient/{patient_id} for good?", abort=True)
        services.contain.erase_patient(
            _officer(officer, totp), pseudonyms[patient_id], reason, services.keys
        )
    typer.echo(f"Patient/{patient_id} erased: its data key is destroyed")
    typer.echo("Next: carevault keys rotate, then carevault keys destroy-version <old version>")


keys_app = typer.Typer(help="The key-encryption key: status, rotation, destruction.")
app.add_typer(keys_app, name="keys")


def _key_service(services: Services) -> KeyService:
    if services.keys is None:
        typer.secho("encryption is off", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    return services.keys


@keys_app.command("status")
def keys_status(home: HomeOption = None) -> None:
    """The provider, its KEK versions, and how many data keys await re-wrapping."""
    with _services(home) as services:
        keys = _key_service(services)
        provider = keys.provider
        typer.echo(f"provider: {provider.name}")
        typer.echo(f"versions: {provider.versions()} (active {provider.active_version()})")
        typer.echo(f"data keys to re-wrap: {keys.pending_rewrap()}")


@keys_app.command("rotate")
def keys_rotate(
    home: HomeOption = None,
    resume: Annotated[
        bool, typer.Option(help="Finish an interrupted re-wrap without a new version.")
    ] = False,
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="Keys per transaction.")] = 200,
) -> None:
    """Make a new KEK version and re-wrap every data key under it, with no downtime.

    Safe to interrupt: run it again with --resume and it carries on where it stopped.
    """
    from rich.progress import Progress

    from carevault.ledger.events import AuditEvent, Outcome, Tag

    with _services(home) as services:
        keys = _key_service(services)
        if not resume:
            version = keys.provider.create_version()
            typer.echo(f"new key-encryption key version {version} is active")
        total = keys.pending_rewrap()
        with Progress() as bar:
            task = bar.add_task("re-wrapping data keys", total=total)
            while done := keys.rewrap_batch(batch):
                bar.advance(task, done)
        services.audit.record(
            [
                AuditEvent(
                    tag=Tag.KEY_ROTATED,
                    outcome=Outcome.SUCCESS,
                    at_us=services.now_us(),
                    principal=_operator(),
                    reason=f"active version {keys.provider.active_version()}",
                    detail={"rewrapped": total},
                )
            ]
        )
        services.audit_ledger.checkpoints.make("kek rotation")
    typer.echo(f"re-wrapped {total} data keys; none left on older versions")


@keys_app.command("destroy-version")
def keys_destroy_version(
    version: int,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    home: HomeOption = None,
) -> None:
    """Destroy an old KEK version (refused while any data key still needs it)."""
    from carevault.ledger.events import AuditEvent, Outcome, Tag

    with _services(home) as services:
        keys = _key_service(services)
        if not yes:
            typer.confirm(f"Destroy key-encryption key version {version} for good?", abort=True)
        keys.destroy_kek_version(version)
        services.audit.record(
            [
                AuditEvent(
                    tag=Tag.KEY_VERSION_DESTROYED,
                    outcome=Outcome.SUCCESS,
                    at_us=services.now_us(),
                    principal=_operator(),
                    reason=f"version {version} destroyed",
                )
            ]
        )
        services.audit_ledger.checkpoints.make("kek destroyed")
    typer.echo(f"version {version} destroyed")


def _when(at_us: int) -> str:
    from carevault.clock import fhir_instant, from_micros

    return fhir_instant(from_micros(at_us))


def main() -> None:
    app()
