"""What every command group shares: the data-directory option, settings, services, officers."""

from __future__ import annotations

import getpass
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from sqlalchemy.exc import OperationalError

from carevault.access.accounts import AccountError
from carevault.access.breakglass import BreakGlassError
from carevault.access.clients import ClientError
from carevault.access.passwords import WeakPassword
from carevault.config import Settings, UnsafeConfiguration, load_settings, read_settings
from carevault.containment.service import ContainmentRefused
from carevault.domain.jobs import JobNotFound, JobRefused
from carevault.keys.provider import KeyProviderUnavailable

if TYPE_CHECKING:
    from carevault.bootstrap import Services
    from carevault.containment.service import Officer

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
OfficerOption = Annotated[str, typer.Option("--officer", help="Your privacy-officer username.")]
TotpOption = Annotated[
    str | None, typer.Option("--totp", help="A fresh TOTP code (prompted if not given).")
]

#: The exit status when the database cannot be reached (try again later).
UNAVAILABLE = 3

#: Domain errors a command reports in one red line (exit 1) instead of a traceback.
#: ``JobNotFound`` and ``JobRefused`` (an export or import job that is not there, or
#: refused) were missing: ``export show 999`` printed a traceback of the service's code.
REPORTED_ERRORS: tuple[type[Exception], ...] = (
    AccountError,
    ClientError,
    WeakPassword,
    BreakGlassError,
    ContainmentRefused,
    JobNotFound,
    JobRefused,
    ValueError,
)


def settings_for(home: Path | None, **overrides: object) -> Settings:
    """The settings a command runs with; refused settings stop it (exit 2)."""
    return _settings(load_settings, home, overrides)


def unchecked_settings_for(home: Path | None) -> Settings:
    """``settings_for`` without refusing what ``Settings.check`` refuses: for a command
    that makes what those checks need (``audit log-keys``); settings of the wrong kind
    stop it all the same."""
    return _settings(read_settings, home, {})


def _settings(
    build: Callable[..., Settings], home: Path | None, overrides: dict[str, object]
) -> Settings:
    if home is not None:
        overrides["home"] = home
    try:
        return build(**overrides)
    except UnsafeConfiguration as error:
        typer.secho(f"refusing to start: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None


def operator() -> str:
    """Who runs an administrative command: the operating-system user on the server host."""
    return f"cli:{getpass.getuser()}"


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``message`` in red on standard error (escaped: an error may quote stored or
    typed text); the caller raises what this returns."""
    from carevault.cli.terminal import text

    typer.secho(text(message), fg=typer.colors.RED, err=True)
    return typer.Exit(code)


@contextmanager
def open_services(home: Path | None) -> Iterator[Services]:
    from carevault.bootstrap import build_services

    settings = settings_for(home)
    try:
        services = build_services(settings)
    except KeyProviderUnavailable as error:
        raise fail(f"cannot open the data directory: {error}", 2) from None
    except OperationalError as error:
        raise _unreachable(error) from None
    try:
        yield services
    except REPORTED_ERRORS as error:
        raise fail(str(error)) from None
    except OperationalError as error:
        raise _unreachable(error) from None
    finally:
        services.close()


def _unreachable(error: OperationalError) -> typer.Exit:
    """Exit 3, one line: the database is down or busy, so a script may try again later;
    exit 1 means CareVault refused (no such incident, a bad value) and trying again
    changes nothing. It was a traceback of hundreds of lines, exit 1, like a refusal."""
    said = str(error.orig or error).strip().splitlines() or ["(no reason given)"]
    return fail(f"the database cannot be reached or is busy: {said[0][:200]}", UNAVAILABLE)


def as_officer(username: str, code: str | None) -> Officer:
    from carevault.containment.service import Officer

    fresh: str = code or typer.prompt("TOTP code", hide_input=True)
    return Officer(username, fresh, "cli")


def when(at_us: int) -> str:
    from carevault.clock import fhir_instant, from_micros

    return fhir_instant(from_micros(at_us))
