"""``carevault alerts``: the detectors' alerts, for the privacy officer."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from carevault.cli.common import HomeOption, OfficerOption, TotpOption, app, fail, open_services
from carevault.cli.terminal import cell, echo
from carevault.detect.alerts import AlertStatus

alerts_app = typer.Typer(
    help="Alerts raised by the detectors: list, show, acknowledge, dismiss; patient flags.",
    no_args_is_help=True,
)
app.add_typer(alerts_app, name="alerts")

JsonOption = Annotated[bool, typer.Option("--json", help="As JSON.")]


def _officer(username: str, code: str | None) -> Any:
    from carevault.detect.desk import OfficerCode

    fresh: str = code or typer.prompt("TOTP code", hide_input=True)
    return OfficerCode(username, fresh, "cli")


def _alert_number(alert_id: str) -> str:
    """``alert_id`` if it is a number, as ``alerts list --json`` gives ids (``"12"``).
    Anything else is a wrong call, exit 2 as README's "For scripts" says of an id that is
    not a number: it was exit 1, "no alert abc", which a script reads as an alert that
    no longer exists. Checked before anything is opened or a TOTP code asked for."""
    if not (alert_id.isascii() and alert_id.isdigit()):
        raise fail(f"an alert id is a number: {alert_id[:40]!r} is not one", 2)
    return alert_id


def _line(alert: dict[str, Any]) -> str:
    who = cell(alert["account"] or alert["client"] or alert["case"].removeprefix("case:"))
    action = cell(alert["action"] or "-")
    return (
        f"{cell(alert['id']):>5} {cell(alert['raised_at'])[:19]} {cell(alert['severity']):<8} "
        f"{cell(alert['detector']):<22} {who:<20} {cell(alert['patient_count']):>5} pts  "
        f"{action:<10} {cell(alert['status'])}"
    )


@alerts_app.command("list")
def list_alerts(
    # A choice: a status that is not one is refused with the choices (exit 2), not taken
    # for a filter that matches no alert.
    status: Annotated[AlertStatus | None, typer.Option(help="Only alerts in this status.")] = None,
    since: Annotated[
        str | None,
        typer.Option(
            help="Only alerts raised, widened or escalated at or after this ISO-8601 time "
            "(without a zone: CAREVAULT_TIMEZONE's)."
        ),
    ] = None,
    after: Annotated[
        str | None, typer.Option(help="Only alerts whose id is above this one (a poll's last).")
    ] = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Every alert (or those a poll asks for), oldest first (the detectors catch up with
    the ledger first). A malformed --since or --after: exit 2."""
    from zoneinfo import ZoneInfo

    from carevault.detect.listing import PollRefused, described, poll

    with open_services(home) as services:
        detection = services.detection
        assert detection is not None  # noqa: S101 - the composition root always builds it
        try:
            # Before the catch-up: a wrong call is told at once.
            wanted = poll(
                status.value if status else None,
                since,
                after,
                ZoneInfo(services.settings.timezone),
            )
        except PollRefused as refused:
            raise fail(str(refused), 2) from None
        detection.engine.catch_up()
        found = described(
            detection.alerts.list(
                status=wanted.status,
                after_id=wanted.after_id,
                changed_since_us=wanted.changed_since_us,
            ),
            services.audit_ledger.store,
        )
    if as_json:
        echo(json.dumps(found, indent=1))
        return
    if not found:
        echo("no alerts")
    for alert in found:
        echo(_line(alert))


@alerts_app.command("show")
def show(alert_id: str, as_json: JsonOption = False, home: HomeOption = None) -> None:
    """One alert: what was seen, the ledger positions that prove it, what was done."""
    from carevault.detect.listing import described

    _alert_number(alert_id)
    with open_services(home) as services:
        assert services.detection is not None  # noqa: S101
        try:
            alert = services.detection.alerts.get(alert_id)
        except KeyError:
            raise fail(f"no alert {alert_id}") from None
        (shown,) = described([alert], services.audit_ledger.store)
    if as_json:
        echo(json.dumps({**shown, "patients": list(alert.patients)}, indent=1))
        return
    for key, value in shown.items():
        echo(f"{key:>15}: {cell(value)}")
    echo(f"{'patients':>15}: {len(alert.patients)} (pseudonyms; --json lists them)")


def _handle(
    alert_id: str, status: str, officer: str, totp: str | None, reason: str, home: Any
) -> None:
    from carevault.detect.desk import OfficerRefused

    _alert_number(alert_id)
    with open_services(home) as services:
        assert services.detection is not None  # noqa: S101
        try:
            services.detection.desk.handle(_officer(officer, totp), alert_id, status, reason)
        except KeyError:
            raise fail(f"no alert {alert_id}") from None
        except OfficerRefused as refused:
            raise fail(str(refused)) from None
    echo(f"alert {cell(alert_id)}: {status}")


@alerts_app.command("ack")
def ack(
    alert_id: str, officer: OfficerOption, totp: TotpOption = None, home: HomeOption = None
) -> None:
    """Acknowledge an alert (it is being looked into)."""
    _handle(alert_id, "acknowledged", officer, totp, "acknowledged", home)


@alerts_app.command("dismiss")
def dismiss(
    alert_id: str,
    reason: Annotated[str, typer.Option(help="Why it is not a breach (recorded).")],
    officer: OfficerOption,
    totp: TotpOption = None,
    home: HomeOption = None,
) -> None:
    """Dismiss an alert as explained. Containment it caused stays until released
    (``carevault contain release``)."""
    _handle(alert_id, "dismissed", officer, totp, reason, home)


@alerts_app.command("flag")
def flag(
    patient_id: str,
    kind: Annotated[str, typer.Option(help="vip or decoy.")],
    officer: OfficerOption,
    off: Annotated[bool, typer.Option("--off", help="Remove the flag.")] = False,
    totp: TotpOption = None,
    home: HomeOption = None,
) -> None:
    """Mark a patient VIP (unexplained access alerts) or decoy (any access is critical).
    Switching a flag off takes two privacy officers: the second confirms the first."""
    from carevault.detect.desk import OfficerRefused

    with open_services(home) as services:
        assert services.detection is not None  # noqa: S101
        try:
            flagged = services.detection.desk.flag(
                _officer(officer, totp), kind, patient_id, on=not off
            )
        except (KeyError, ValueError, OfficerRefused) as error:
            raise fail(str(error)) from None
    if not flagged.done:
        echo(
            f"Patient/{patient_id}: {kind} stays on until another privacy officer confirms "
            f"within a day (carevault alerts flag {patient_id} --kind {kind} --off)"
        )
        return
    echo(f"Patient/{patient_id}: {kind} {'off' if off else 'on'}")


@alerts_app.command("unthrottle")
def unthrottle(
    username: str, officer: OfficerOption, totp: TotpOption = None, home: HomeOption = None
) -> None:
    """Lift an automatic throttle from an account."""
    from carevault.detect.desk import OfficerRefused

    with open_services(home) as services:
        assert services.detection is not None  # noqa: S101
        try:
            services.detection.desk.unthrottle(_officer(officer, totp), username)
        except OfficerRefused as error:
            raise fail(str(error)) from None
    echo(f"{username}: throttle lifted")


@alerts_app.command("identify")
def identify(
    username: str,
    officer: OfficerOption,
    source: Annotated[
        typer.FileText,
        typer.Option(
            "--from",
            help='JSON from HR: {"surname": "...", "address": ["line", ...], "hkid": "..."} '
            "(any of them; - for standard input). Read from a file, never the command line.",
        ),
    ],
    totp: TotpOption = None,
    home: HomeOption = None,
) -> None:
    """Record a member of staff's surname, home address and HKID number, kept only as
    keyed blind tokens, so that opening a relative's, a neighbour's or a co-worker's
    record (or one's own) is noticed. Replaces what was recorded before."""
    from carevault.detect.desk import OfficerRefused

    try:
        given = json.loads(source.read())
    except json.JSONDecodeError as error:
        raise fail(f"--from: not JSON (line {error.lineno})") from None
    if not isinstance(given, dict) or set(given) - {"surname", "address", "hkid"}:
        raise fail('--from: a JSON object with "surname", "address" and/or "hkid" only')
    address = given.get("address") or []
    if isinstance(address, str):
        address = [address]
    for name, value in (("surname", given.get("surname")), ("hkid", given.get("hkid"))):
        if value is not None and not isinstance(value, str):
            raise fail(f"--from: {name}: expected a string")
    if not isinstance(address, list) or not all(isinstance(line, str) for line in address):
        raise fail("--from: address: expected a list of lines")
    with open_services(home) as services:
        assert services.detection is not None  # noqa: S101
        try:
            kinds = services.detection.desk.identify(
                _officer(officer, totp), username,
                surname=given.get("surname"), address_lines=address, hkid=given.get("hkid"),
            )  # fmt: skip
        except (KeyError, ValueError, OfficerRefused) as error:
            raise fail(str(error).strip("'\"")) from None
    echo(f"{username}: kept as blind tokens: {', '.join(kinds) or 'nothing'}")


@alerts_app.command("decoy-contact")
def decoy_contact(
    kind: Annotated[str, typer.Option(help="email or phone.")],
    officer: OfficerOption,
    domain: Annotated[
        str, typer.Option(help="For a new email address: a domain the group controls.")
    ] = "",
    value_from: Annotated[
        typer.FileText | None,
        typer.Option("--value-from", help="Plant this value (a file; - for standard input)."),
    ] = None,
    totp: TotpOption = None,
    home: HomeOption = None,
) -> None:
    """Plant a decoy email address or phone number: its appearance in any incoming data
    or search is a critical alert. Printed once; kept only as a keyed blind token. Write
    it into a decoy patient's record (flagged with ``alerts flag --kind decoy``)."""
    from carevault.detect.desk import OfficerRefused

    value = value_from.read().strip() if value_from is not None else None
    with open_services(home) as services:
        assert services.detection is not None  # noqa: S101
        try:
            planted = services.detection.desk.decoy_contact(
                _officer(officer, totp), kind, domain=domain, value=value
            )
        except (ValueError, OfficerRefused) as error:
            raise fail(str(error)) from None
    echo(planted)
