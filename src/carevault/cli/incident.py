"""``carevault incident``: declare, amend, list, show, scope, runs and timeline.

Scripts drive ``declare``: it prints the new incident's id as the last word of its
output, so ``id=$(carevault incident declare ... | awk '{print $NF}')`` works.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from carevault.cli.common import HomeOption, TotpOption, app, fail, open_services, operator
from carevault.cli.terminal import cell, echo
from carevault.incidents.model import Status as IncidentStatus

incident_app = typer.Typer(help="Incidents and their scope: whose data, which kinds, with proof.")
app.add_typer(incident_app, name="incident")

Many = Annotated[list[str] | None, typer.Option()]
Formats = ("json", "csv", "html", "fhir")


def _errors() -> tuple[type[Exception], ...]:
    from carevault.incidents import IncidentError, IncidentNotFound
    from carevault.incidents.segments import SegmentRefused

    return (IncidentError, IncidentNotFound, SegmentRefused)


def _case(
    title: str | None,
    account: list[str] | None,
    client: list[str] | None,
    session: list[str] | None,
    address: list[str] | None,
    clinic: list[str] | None,
    since: str | None,
    until: str | None,
) -> dict[str, Any]:
    case: dict[str, Any] = {
        "accounts": account or [],
        "clients": client or [],
        "sessions": session or [],
        "addresses": address or [],
        "clinics": clinic or [],
    }
    if title is not None:
        case["title"] = title
    if since is not None:
        case["since"] = since
    if until is not None:
        case["until"] = until
    return case


@incident_app.command("declare")
def declare(
    title: Annotated[str | None, typer.Option(help="What happened, in a line.")] = None,
    account: Many = None,
    client: Many = None,
    session: Many = None,
    address: Annotated[list[str] | None, typer.Option(help="An address or CIDR range.")] = None,
    clinic: Many = None,
    database: Annotated[bool, typer.Option("--database", help="Database or backup.")] = False,
    host: Annotated[bool, typer.Option("--host", help="The application host.")] = False,
    key_service: Annotated[bool, typer.Option("--key-service")] = False,
    since: Annotated[str | None, typer.Option(help="ISO-8601 start of the window.")] = None,
    until: Annotated[str | None, typer.Option(help="ISO-8601 end (open if absent).")] = None,
    from_alert: Annotated[str | None, typer.Option("--from-alert", help="An alert's id.")] = None,
    home: HomeOption = None,
) -> None:
    """Declare an incident; prints its id as the last word."""
    from carevault.incidents import Actor, UnknownName, case_from_alert, declare_case

    with open_services(home) as services:
        case = _case(title, account, client, session, address, clinic, since, until)
        if from_alert is not None:
            try:
                case = case_from_alert(services, from_alert, case)
            except _errors() as error:
                raise fail(str(error)) from None
        case.update(database=database, host=host, key_service=key_service)
        if since is None and "since" not in case:
            raise fail("--since is required (or --from-alert)")
        if "title" not in case:
            raise fail("--title is required (or --from-alert)")
        try:
            declared = declare_case(services, Actor(operator()), case, alert_id=from_alert)
        except UnknownName as unknown:
            raise fail(str(unknown), 2) from None
        except _errors() as error:
            raise fail(str(error)) from None
    echo(f"declared incident {declared.incident_id}")


@incident_app.command("amend")
def amend(
    incident_id: int,
    title: Annotated[str | None, typer.Option()] = None,
    status: Annotated[str | None, typer.Option(help="open, contained or closed.")] = None,
    account: Many = None,
    client: Many = None,
    session: Many = None,
    address: Many = None,
    clinic: Many = None,
    database: Annotated[bool, typer.Option("--database")] = False,
    host: Annotated[bool, typer.Option("--host")] = False,
    key_service: Annotated[bool, typer.Option("--key-service")] = False,
    since: Annotated[str | None, typer.Option()] = None,
    until: Annotated[str | None, typer.Option()] = None,
    note: Annotated[str | None, typer.Option(help="A finding, recorded with the change.")] = None,
    officer: Annotated[
        str | None,
        typer.Option(
            "--officer",
            help="Your privacy-officer username: narrowing the window or closing needs it.",
        ),
    ] = None,
    totp: TotpOption = None,
    home: HomeOption = None,
) -> None:
    """Amend an incident: widen what is compromised, move the window, change its status.
    Narrowing the window (a later --since, an earlier --until) or closing it takes a
    privacy officer's fresh code (--officer, --totp)."""
    from carevault.incidents import Actor, StepUpRequired, UnknownName, incidents_for, zone_of
    from carevault.incidents.model import Amendment, instant_in, parse_compromised, parse_title
    from carevault.incidents.model import Status as IncidentStatus

    with open_services(home) as services:
        try:
            amendment = Amendment(
                title=parse_title(title) if title is not None else None,
                status=IncidentStatus(status) if status else None,
                since_us=instant_in(since, zone_of(services), "since") if since else None,
                until_us=instant_in(until, zone_of(services), "until") if until else None,
                adds=parse_compromised(
                    {
                        **_case(None, account, client, session, address, clinic, None, None),
                        "database": database,
                        "host": host,
                        "key_service": key_service,
                    }
                ),
                note=note,
            )
            amended = incidents_for(services).amend(
                Actor(operator()),
                incident_id,
                amendment,
                step_up=None if officer is None else _step_up(services, officer, totp),
            )
        except StepUpRequired as needed:
            raise fail(f"{needed} (--officer, --totp)") from None
        except UnknownName as unknown:
            raise fail(str(unknown), 2) from None
        except ValueError as error:  # IncidentError is one
            raise fail(str(error)) from None
    echo(f"amended incident {amended.incident_id}")


def _step_up(services: Any, officer: str, code: str | None) -> Callable[[str], str]:
    """Confirms ``officer``'s fresh code (asked for when not given) as a privacy
    officer's, when the amendment turns out to need it; gives the officer's username (the
    operator is not the officer: the incident judges whom it names by it)."""
    from carevault.access.accounts import SignInFailed
    from carevault.incidents import IncidentError

    def confirm(action: str) -> str:
        fresh: str = code or typer.prompt("TOTP code", hide_input=True)
        try:
            account = services.accounts.confirm_officer(officer, fresh, None)
        except SignInFailed as failure:
            raise IncidentError(f"{action}: {failure.reason}") from None
        return str(account.username)

    return confirm


@incident_app.command("list")
def list_incidents(
    # A choice, as /admin/incidents?status= answers: another status exits 2.
    status: Annotated[
        IncidentStatus | None, typer.Option(help="Only incidents in this status.")
    ] = None,
    home: HomeOption = None,
) -> None:
    """Incidents, newest first."""
    from carevault.incidents import incidents_for

    with open_services(home) as services:
        found = incidents_for(services).all()
    for item in found:
        if status is not None and item.status is not status:
            continue
        view = item.as_json()
        echo(f"{item.incident_id}\t{item.status.value}\t{view['since']}\t{cell(item.title)}")


@incident_app.command("show")
def show(incident_id: int, home: HomeOption = None) -> None:
    """One incident, as JSON."""
    from carevault.incidents import incidents_for

    with open_services(home) as services:
        try:
            found = incidents_for(services).get(incident_id)
        except _errors() as error:
            raise fail(str(error)) from None
    echo(json.dumps(found.as_json(), indent=2))


@incident_app.command("timeline")
def timeline(incident_id: int, home: HomeOption = None) -> None:
    """Declaration, amendments, scope runs and containment actions, in time order."""
    from carevault.incidents import incidents_for

    with open_services(home) as services:
        try:
            items = incidents_for(services).timeline(incident_id)
        except _errors() as error:
            raise fail(str(error)) from None
    echo(json.dumps(items, indent=2))


def _run_number(text: str | None) -> int | None:
    """``--run``: None for ``latest``, else the run's number."""
    if text is None or text == "latest":
        return None
    if not text.isdigit() or len(text) > 9:
        raise fail(f"--run: a run's number or 'latest' (got {text[:20]!r})")
    return int(text)


@incident_app.command("scope")
def scope(
    incident_id: int,
    format: Annotated[str, typer.Option("--format", help="json, csv, html or fhir.")] = "json",
    engine: Annotated[str, typer.Option(help="auto, duckdb or sql (PostgreSQL).")] = "auto",
    run: Annotated[
        str | None,
        typer.Option(
            "--run",
            help="Print kept run N (or 'latest') as it was computed, checked against its "
            "ledger entry, instead of computing and keeping a new run.",
        ),
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
    home: HomeOption = None,
) -> None:
    """The incident's scope, tier by tier, with the ledger positions that prove it: a new
    run, kept and recorded in the ledger (or, with --run, one kept before)."""
    from carevault.incidents import Actor, kept_scope, scope_document
    from carevault.incidents.report import render

    if format not in Formats:
        raise fail(f"--format: one of {', '.join(Formats)}")
    number = _run_number(run)
    with open_services(home) as services:
        try:
            if run is None:
                document = scope_document(
                    services, incident_id, engine=engine, actor=Actor(operator())
                )
            else:
                document = kept_scope(services, incident_id, number).document or {}
        except _errors() as error:
            raise fail(f"scope refused: {error}") from None
    text = render(document, format)
    changes = document["incident"].get("changes", {})
    if run is None and not changes.get("first_run", True):
        changed = [tier for tier in changes if tier not in ("first_run", "previous_run")]
        summary = ", ".join(changed) if changed else "nothing"
        typer.secho(f"changed since the last run: {summary}", err=True)
    for listed, said in _APART:
        if count := len(document.get(listed) or []):
            typer.secho(f"{count} {said}", err=True)
    if output is None:
        echo(text)
    else:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as error:
            kept = " (the run is kept: print it again with --run latest)" if run is None else ""
            raise fail(f"cannot write {output}: {error.strerror or error}{kept}") from None
        echo(f"wrote {output}")


#: The lists a scope document holds apart from the tiers, and what the CLI says of each.
_APART = (
    (
        "changed",
        "patients' records were written (made, changed or deleted) by a compromised "
        "principal in the window (listed as changed): check them against a backup",
    ),
    (
        "registered",
        "patients were registered at a clinic, moved to another home or had a registration "
        "ended by a compromised principal in the window (listed as registered): review each",
    ),
)


@incident_app.command("runs")
def runs(incident_id: int, home: HomeOption = None) -> None:
    """The incident's kept scope runs, newest first: number, when, by whom, the ledger
    sizes each read, its document's SHA-256 and the ledger entry that records it."""
    from carevault.incidents import incidents_for

    with open_services(home) as services:
        try:
            found = incidents_for(services).scope_runs(incident_id)
        except _errors() as error:
            raise fail(str(error)) from None
    echo(json.dumps([item.as_json() for item in found], indent=2))


@incident_app.command("segments")
def segments(
    verify: Annotated[bool, typer.Option("--verify", help="Also re-check every row.")] = False,
    home: HomeOption = None,
) -> None:
    """Seal the ledgers' complete segments (as a scope would) and check every sealed one."""
    from carevault.incidents.scope import segments_for
    from carevault.incidents.segments import SegmentRefused

    with open_services(home) as services:
        store = segments_for(services)
        try:
            sealed = store.seal_pending(operator())
            for name in ("audit", "unwrap"):
                store.usable(name, 0, None)
                for segment in store.sealed(name) if verify else ():
                    store.verify_rows(segment)
        except SegmentRefused as refused:
            raise fail(f"refused: {refused}") from None
        counts = {name: len(store.sealed(name)) for name in ("audit", "unwrap")}
    echo(
        f"sealed {len(sealed)} new; audit {counts['audit']}, unwrap {counts['unwrap']} "
        "segments checked"
    )
