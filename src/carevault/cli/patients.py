"""What a privacy officer does for one patient from the command line: register them at a
clinic once they have confirmed who they are, where ``Patient/$register`` sent the
clinic's desk to them, and correct their identifiers (a desk's mistyped HKID, which the
desk may neither read nor remove) (docs/care-relationships.md)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from carevault.cli.common import (
    UNAVAILABLE,
    HomeOption,
    OfficerOption,
    TotpOption,
    app,
    fail,
    open_services,
)
from carevault.cli.terminal import echo

if TYPE_CHECKING:
    from carevault.bootstrap import Services
    from carevault.gate import Caller, Gate
    from carevault.ledger.events import Tag

T = TypeVar("T")

patients_app = typer.Typer(help="A patient's registrations and identifiers (privacy officer).")
app.add_typer(patients_app, name="patients")

#: Where a command line acts from, as the ledger names it.
SOURCE = "cli"


def _officer(services: Services, officer: str, totp: str | None, tag: Tag, what: str) -> Caller:
    """The privacy officer ``officer`` as a caller of the gate (purpose HOPERAT), once
    confirmed with a fresh TOTP code; a refusal is recorded under ``tag`` (for ``what``)
    and ends the command (1; 3 when the ledger cannot record it)."""
    from carevault.access.accounts import SignInFailed, officer_refusal
    from carevault.domain.policy import Actor
    from carevault.gate import Caller
    from carevault.ledger.events import AuditEvent, Outcome
    from carevault.ledger.trail import AuditUnavailable

    code = totp or typer.prompt("TOTP code", hide_input=True)
    try:
        account = services.accounts.confirm_officer(officer, code, SOURCE)
    except SignInFailed as failure:
        refused = AuditEvent(
            tag=tag,
            outcome=Outcome.DENIED,
            at_us=services.now_us(),
            principal=f"staff:{officer}"[:200],
            source_address=SOURCE,
            reason=f"{what}: {failure.reason}",
        )
        try:
            services.audit_ledger.writer.record([refused])
        except AuditUnavailable:
            raise fail("the audit ledger cannot be written; try again later", UNAVAILABLE) from None
        raise fail(officer_refusal(failure)) from None
    principal = f"staff:{account.username}"
    return Caller(
        principal=principal,
        purpose="HOPERAT",
        source_address=SOURCE,
        actor=Actor(
            principal=principal,
            role=account.role,
            clinic_ids=account.clinic_ids,
            practitioner_id=account.practitioner_id,
            account_id=account.account_id,
        ),
    )


def _as_officer(
    who: tuple[Path | None, str, str | None],
    refused_as: tuple[Tag, str],
    act: Callable[[Gate, Caller], T],
) -> T:
    """``act`` through the gate of the home ``who`` names (home, officer, code), as that
    officer once confirmed (``_officer``: a refusal recorded under ``refused_as``, the
    tag and what was asked), the gate's refusals the command's (``_through_gate``)."""
    home, officer, totp = who
    with open_services(home) as services:
        caller = _officer(services, officer, totp, *refused_as)
        with _through_gate():
            return act(services.gate, caller)


@contextmanager
def _through_gate() -> Iterator[None]:
    """The gate's refusals as the command's: what it says, and exit 1 for an invalid or
    refused request, 3 (try again later) when the ledger, the key service or a
    containment holds it off (503)."""
    from carevault.fhir.outcome import FhirError
    from carevault.rest.errors import translated

    try:
        with translated():
            yield
    except FhirError as error:
        said = error.issues[0].diagnostics if error.issues else str(error)
        raise fail(said, UNAVAILABLE if error.status == 503 else 1) from None


@patients_app.command("register")
def patients_register(
    patient: Annotated[str, typer.Argument(help="The patient's id (Patient/<id>).")],
    clinic: Annotated[str, typer.Option(help="The clinic to register them at.")],
    reason: Annotated[
        str,
        typer.Option(
            help="identity-confirmed, record-corrected or not-seen-before (recorded in the "
            "ledger; not-seen-before makes the clinic the home of a patient whose only care "
            "an app recorded)."
        ),
    ],
    officer: OfficerOption,
    totp: TotpOption = None,
    home: HomeOption = None,
) -> None:
    """Register a patient at a clinic on your confirmation of who they are: for a
    registration the clinic's desk was refused (409, "ask the privacy officer"), whose
    entry in the ledger names the patient. A fresh TOTP code; in the ledger as yours."""
    from carevault.gate.registration import register_confirmed
    from carevault.ledger.events import Tag

    patient_id = patient.removeprefix("Patient/")
    where = clinic.removeprefix("Organization/")
    added = _as_officer(
        (home, officer, totp),
        (Tag.PATIENT_REGISTERED, "register on confirmation"),
        lambda gate, caller: register_confirmed(gate, caller, patient_id, where, reason),
    )
    if added:
        echo(f"Patient/{patient_id} registered at {clinic} ({reason})")
    else:
        echo(f"Patient/{patient_id} was registered at {clinic} already")


@patients_app.command("identifiers")
def patients_identifiers(
    patient: Annotated[str, typer.Argument(help="The patient's id (Patient/<id>).")],
    officer: OfficerOption,
    totp: TotpOption = None,
    home: HomeOption = None,
) -> None:
    """List a patient's identifiers (system|value, type), which their clinics' desks are
    not shown: a read of the record, in the ledger as yours (purpose HOPERAT) before
    anything is printed. A fresh TOTP code."""
    from carevault.gate.correction import identifiers
    from carevault.ledger.events import Tag

    patient_id = patient.removeprefix("Patient/")
    found = _as_officer(
        (home, officer, totp),
        (Tag.FHIR_READ, "list identifiers"),
        lambda gate, caller: identifiers(gate, caller, patient_id),
    )
    shown = "; ".join(f"{item.system}|{item.value} ({item.type})" for item in found)
    echo(f"Patient/{patient_id}: {shown or 'no identifiers'}")


@patients_app.command("remove-identifier")
def patients_remove_identifier(
    patient: Annotated[str, typer.Argument(help="The patient's id (Patient/<id>).")],
    system: Annotated[str, typer.Option(help="The identifier's system, as listed.")],
    value: Annotated[str, typer.Option(help="The identifier's value, as listed.")],
    reason: Annotated[
        str,
        typer.Option(help="mistyped or duplicate-of-another-person (recorded in the ledger)."),
    ],
    officer: OfficerOption,
    totp: TotpOption = None,
    home: HomeOption = None,
) -> None:
    """Take an identifier off a patient (a desk's mistyped HKID, which the desk may
    neither read nor remove): a new version of the Patient without it. The ledger
    records you, the reason and the identifier's system, never its value. A fresh TOTP
    code."""
    from carevault.gate.correction import remove_identifier
    from carevault.ledger.events import Tag

    patient_id = patient.removeprefix("Patient/")
    head = _as_officer(
        (home, officer, totp),
        (Tag.PATIENT_IDENTIFIER_REMOVED, "remove an identifier"),
        lambda gate, caller: remove_identifier(gate, caller, patient_id, system, value, reason),
    )
    echo(f"Patient/{patient_id} version {head.version_id}: an identifier of {system} removed")


@patients_app.command("unregister")
def patients_unregister(
    patient: Annotated[str, typer.Argument(help="The patient's id (Patient/<id>).")],
    clinic: Annotated[str, typer.Option(help="The clinic whose registration ends.")],
    reason: Annotated[
        str,
        typer.Option(help="compromised-account or registered-in-error (recorded in the ledger)."),
    ],
    officer: OfficerOption,
    totp: TotpOption = None,
    home: HomeOption = None,
) -> None:
    """End a patient's registration at a clinic: one a stolen login made (an incident's
    scope lists them as registered) or one made in error. The clinic no longer reaches
    their records and the care its bookings opened there ends. Their home clinic is
    moved by a transfer instead. A fresh TOTP code; in the ledger as yours."""
    from carevault.gate.registration import unregister
    from carevault.ledger.events import Tag

    patient_id = patient.removeprefix("Patient/")
    where = clinic.removeprefix("Organization/")
    ended = _as_officer(
        (home, officer, totp),
        (Tag.PATIENT_UNREGISTERED, "end a registration"),
        lambda gate, caller: unregister(gate, caller, patient_id, where, reason),
    )
    if ended:
        echo(f"Patient/{patient_id}'s registration at {where} ended ({reason})")
    else:
        echo(f"Patient/{patient_id} was not registered at {where}")
