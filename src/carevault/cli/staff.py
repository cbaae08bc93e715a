"""Staff accounts and client apps."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from carevault.cli.common import HomeOption, app, fail, open_services, operator
from carevault.cli.terminal import cell, echo
from carevault.domain.roles import Role

if TYPE_CHECKING:
    from carevault.access.accounts import Account
    from carevault.bootstrap import Services

staff_app = typer.Typer(
    help="Staff accounts: add, list, suspend, reset password or TOTP, recovery codes, back-off."
)
client_app = typer.Typer(help="Client apps (SMART on FHIR): add, list, revoke.")
app.add_typer(staff_app, name="staff")
app.add_typer(client_app, name="client")


def _new_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    value: str = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    return value


def _show_totp(account: Account, secret: str) -> None:
    """Show a new TOTP secret once, except an integration account's: it never signs in
    with one (only through its bound app's client credentials), so a secret shown would
    be a credential to keep safe for nothing."""
    from carevault.access.totp import provisioning_uri

    username = account.username
    if account.role is Role.INTEGRATION:
        echo(
            f"{username} is an integration account: it signs in only through the client "
            f"credentials of a confidential app bound to it (carevault client add … "
            f"--confidential --account {username}); no TOTP secret is shown"
        )
        return
    echo(f"TOTP secret for {username}: {secret}")
    echo(f"Authenticator link: {provisioning_uri(secret, username, 'CareVault')}")
    echo("Shown once: enrol it in an authenticator app now.")


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
    with open_services(home) as services:
        account, secret = services.admin.add_staff(
            operator(), username, name, role, clinic, password, practitioner
        )
        codes = (
            services.admin.issue_recovery_codes(operator(), account.username)[1]
            if account.role is Role.PRIVACY_OFFICER
            else []
        )
        unknown = _unknown_clinics(services, clinic)
    echo(f"added {account.username} ({account.role}) as {account.account_id}")
    _warn_unknown(unknown)
    _show_totp(account, secret)
    if codes:
        _show_recovery_codes(codes)


def _show_recovery_codes(codes: list[str]) -> None:
    echo("One-time recovery codes (each signs in once, in place of a TOTP code):")
    for code in codes:
        echo(f"  {code}")
    echo("Shown once: print them and keep them apart from the phone.")


@staff_app.command("recovery-codes")
def staff_recovery_codes(username: str, home: HomeOption = None) -> None:
    """Issue a new set of one-time recovery codes; unused old ones stop working."""
    with open_services(home) as services:
        _, codes = services.admin.issue_recovery_codes(operator(), username)
    _show_recovery_codes(codes)


@staff_app.command("clear-back-off")
def staff_clear_back_off(username: str, home: HomeOption = None) -> None:
    """Empty an account's sign-in back-off (every address) and its registration wait,
    after checking with its owner."""
    with open_services(home) as services:
        removed = services.admin.clear_throttle(operator(), username)
    echo(f"sign-in back-off of {username} cleared ({removed} levels)")


@staff_app.command("list")
def staff_list(home: HomeOption = None) -> None:
    """Every staff account, its role, clinics and state."""
    with open_services(home) as services:
        for account in services.accounts.all():
            state = "suspended" if account.suspended else "active"
            clinics = ",".join(sorted(account.clinic_ids))
            echo(f"{cell(account.username)}\t{account.role}\t{state}\t{cell(clinics)}")


@staff_app.command("suspend")
def staff_suspend(
    username: str,
    reason: Annotated[str, typer.Option(help="Why (recorded).")] = "suspended by administrator",
    reinstate: Annotated[bool, typer.Option(help="Lift the suspension instead.")] = False,
    home: HomeOption = None,
) -> None:
    """Suspend an account: its sessions and tokens stop working at once."""
    with open_services(home) as services:
        if reinstate:
            # A suspension an officer made as containment is lifted by releasing it, with
            # an officer's fresh code and on record (adversary round 58).
            from carevault.containment.state import Mode

            wanted = username.strip().casefold()
            for item in services.containment.refresh().active:
                if item.mode is Mode.ACCOUNT_SUSPENDED and (
                    (item.target or "").strip().casefold() == wanted
                ):
                    raise fail(
                        f"{wanted} is suspended by containment #{item.containment_id}: "
                        f"release it (carevault contain release {item.containment_id} "
                        "--officer NAME)"
                    )
            account = services.admin.reinstate(operator(), username)
            echo(f"{account.username} reinstated")
        else:
            account, ended = services.admin.suspend(operator(), username, reason=reason)
            echo(f"{account.username} suspended; {ended} live sessions ended")


@staff_app.command("reset-password")
def staff_reset_password(
    username: str, password_stdin: PasswordStdin = False, home: HomeOption = None
) -> None:
    """Set a new password; every session of the account ends."""
    password = _new_password(password_stdin)
    with open_services(home) as services:
        ended = services.admin.reset_password(operator(), username, password)
    echo(f"password changed; {ended} live sessions ended")


@staff_app.command("reset-totp")
def staff_reset_totp(username: str, home: HomeOption = None) -> None:
    """Issue a new TOTP secret (lost phone); every session of the account ends."""
    with open_services(home) as services:
        account, secret = services.admin.reset_totp(operator(), username)
    _show_totp(account, secret)


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
    account: Annotated[
        str | None,
        typer.Option(help="The integration account a confidential app acts for (username)."),
    ] = None,
    jwks: Annotated[
        Path | None,
        typer.Option(
            help="A confidential app's public JWK Set (RS384 or ES384 keys): it signs "
            "assertions (SMART Backend Services) and gets no secret.",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ] = None,
    home: HomeOption = None,
) -> None:
    """Register a client app; a confidential app's secret is printed once (none for an
    app registered with its public keys)."""
    key_set = jwks.read_text(encoding="utf-8") if jwks is not None else None
    with open_services(home) as services:
        app_, secret = services.admin.add_client(
            operator(),
            client_id,
            name,
            confidential=confidential,
            scopes=scope,
            redirect_uris=redirect_uri or [],
            clinic_ids=clinic or [],
            account=account,
            jwks=key_set,
        )
        unknown = _unknown_clinics(services, clinic or [])
    kind = "confidential" if app_.confidential else "public"
    if app_.jwks is not None:
        kind += ", signs assertions with its registered keys"
    echo(f"added client {app_.client_id} ({kind})")
    _warn_unknown(unknown)
    if secret:
        echo(f"client secret (shown once): {secret}")


@client_app.command("list")
def client_list(home: HomeOption = None) -> None:
    """Every registered client app."""
    with open_services(home) as services:
        for item in services.clients.all():
            state = "revoked" if item.revoked else "active"
            kind = "confidential" if item.confidential else "public"
            echo(f"{cell(item.client_id)}\t{kind}\t{state}\t{cell(item.name)}")


@client_app.command("revoke")
def client_revoke(client_id: str, home: HomeOption = None) -> None:
    """Revoke a client app: every session opened through it ends."""
    with open_services(home) as services:
        _, ended = services.admin.revoke_client(operator(), client_id)
    echo(f"client {client_id} revoked; {ended} live sessions ended")


@staff_app.command("sessions")
def staff_sessions(home: HomeOption = None) -> None:
    """Who is signed in now: every live session of a staff account."""
    from carevault.cli.common import when

    with open_services(home) as services:
        people = {account.account_id: account for account in services.accounts.all()}
        for item in services.sessions.live():
            person = people.get(item.account_id or "")
            name = person.username if person else item.account_id
            echo(
                f"{item.session_id}\t{cell(name)}\t{cell(item.client_id)}\t"
                f"{cell(item.source_address or '-')}\tsince {when(item.created_us)}"
            )


@staff_app.command("end-session")
def staff_end_session(
    session_id: str,
    reason: Annotated[str, typer.Option(help="Why (recorded).")] = "ended by administrator",
    home: HomeOption = None,
) -> None:
    """End one live session (a lost device, a shared screen), as the console's staff page."""
    with open_services(home) as services:
        ended = services.admin.end_session(operator(), session_id, reason=reason)
    if not ended:
        typer.secho(f"no live session {session_id}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    echo(f"session {session_id} ended")


def _unknown_clinics(services: Services, clinics: list[str]) -> list[str]:
    """Those of ``clinics`` that no Organization record held names. A clinic is named by
    its Organization id: a clinic's name (as the demo's sign-in list prints it) was taken
    as an id no patient has, and a client's export completed with no files (integrator
    round 60). Told, not refused: staff and apps may be set up before the directory is
    loaded."""
    from carevault.vault.records import VaultError

    unknown: list[str] = []
    for clinic_id in dict.fromkeys(clinics):
        try:
            held = services.vault.locate("Organization", clinic_id)
        except VaultError:
            unknown.append(clinic_id)
            continue
        if held.head.deleted:
            unknown.append(clinic_id)
    return unknown


def _warn_unknown(clinics: list[str]) -> None:
    for clinic_id in clinics:
        echo(
            f"warning: no Organization/{cell(clinic_id)} is held: a clinic is named by its "
            "Organization id, and this one reaches no patient until the directory holds it",
            err=True,
        )
