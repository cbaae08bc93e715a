"""What a privacy officer does for one patient from the command line: register them at a
clinic once they have confirmed who they are, where ``Patient/$register`` sent the
clinic's desk to them (docs/care-relationships.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from carevault.cli.common import HomeOption, OfficerOption, TotpOption, app, fail, open_services
from carevault.cli.terminal import echo

patients_app = typer.Typer(help="A patient's registrations (privacy officer).")
app.add_typer(patients_app, name="patients")

#: Where a command line acts from, as the ledger names it.
SOURCE = "cli"


@patients_app.command("register")
def patients_register(
    patient: Annotated[str, typer.Argument(help="The patient's id (Patient/<id>).")],
    clinic: Annotated[str, typer.Option(help="The clinic to register them at.")],
    reason: Annotated[
        str, typer.Option(help="identity-confirmed or record-corrected (recorded in the ledger).")
    ],
    officer: OfficerOption,
    totp: TotpOption = None,
    home: HomeOption = None,
) -> None:
    """Register a patient at a clinic on your confirmation of who they are: for a
    registration the clinic's desk was refused (409, "ask the privacy officer"), whose
    entry in the ledger names the patient. A fresh TOTP code; in the ledger as yours."""
    from carevault.access.accounts import SignInFailed, officer_refusal
    from carevault.domain.policy import Actor
    from carevault.fhir.outcome import FhirError
    from carevault.gate import Caller
    from carevault.gate.registration import register_confirmed
    from carevault.ledger.events import AuditEvent, Outcome, Tag
    from carevault.ledger.trail import AuditUnavailable
    from carevault.rest.errors import translated

    patient_id = patient.removeprefix("Patient/")
    with open_services(home) as services:
        code = totp or typer.prompt("TOTP code", hide_input=True)
        try:
            account = services.accounts.confirm_officer(officer, code, SOURCE)
        except SignInFailed as failure:
            refused = AuditEvent(
                tag=Tag.PATIENT_REGISTERED,
                outcome=Outcome.DENIED,
                at_us=services.now_us(),
                principal=f"staff:{officer}"[:200],
                source_address=SOURCE,
                reason=f"register on confirmation: {failure.reason}",
            )
            try:
                services.audit_ledger.writer.record([refused])
            except AuditUnavailable:
                raise fail("the audit ledger cannot be written; try again later", 3) from None
            raise fail(officer_refusal(failure)) from None
        principal = f"staff:{account.username}"
        caller = Caller(
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
        try:
            with translated():
                added = register_confirmed(
                    services.gate, caller, patient_id, clinic.removeprefix("Organization/"), reason
                )
        except FhirError as error:
            # 503: the ledger or the key service is unavailable; try again later (exit 3).
            said = error.issues[0].diagnostics if error.issues else str(error)
            raise fail(said, 3 if error.status == 503 else 1) from None
    if added:
        echo(f"Patient/{patient_id} registered at {clinic} ({reason})")
    else:
        echo(f"Patient/{patient_id} was registered at {clinic} already")
