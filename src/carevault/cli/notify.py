"""``carevault notify``: notices to the people an incident affected; ``carevault report``:
the regulators' reports and the officer's decisions on them."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from carevault.cli.common import HomeOption, OfficerOption, TotpOption, app, fail, open_services
from carevault.cli.terminal import cell, echo, json_text, progress_console

if TYPE_CHECKING:
    from carevault.bootstrap import Services
    from carevault.notify.scope import Scope

notify_app = typer.Typer(
    help="Notices to the patients an incident affected: preview, send, status.",
    no_args_is_help=True,
)
report_app = typer.Typer(
    help="Regulators' reports (PCPD, HIPAA, GDPR) and the officer's decisions.",
    no_args_is_help=True,
)
app.add_typer(notify_app, name="notify")
app.add_typer(report_app, name="report")

IncidentArgument = Annotated[str, typer.Argument(help="The incident's id.")]
ScopeOption = Annotated[
    Path | None,
    typer.Option("--scope", help="The incident's scope document (JSON); default: from incidents."),
]


def load_scope(services: Services, incident: str, scope_file: Path | None) -> Scope:
    """The scope document of ``incident``: from the file, or from the incidents module."""
    from carevault.notify.scope import ScopeError, parse_scope

    document: Any
    if scope_file is not None:
        try:
            document = json.loads(scope_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise fail(f"cannot read the scope document {scope_file}: {error}", 2) from None
        _kept_if_ours(services, incident, document)
    else:
        try:
            incidents = importlib.import_module("carevault.incidents")
        except ModuleNotFoundError:
            raise fail(
                "the incidents module (carevault.incidents) is not installed: "
                "pass --scope FILE, the incident's scope document as JSON",
                2,
            ) from None
        if not incident.isdigit():
            raise fail(f"incident ids are numbers (got {incident[:40]!r}); or pass --scope FILE", 2)
        document = incidents.scope_document(services, int(incident))
    try:
        scope = parse_scope(document)
    except ScopeError as error:
        raise fail(f"the scope document is malformed: {error}", 2) from None
    if scope.incident.incident_id != incident:
        raise fail(f"the scope document is of incident {scope.incident.incident_id}", 2)
    return scope


def _kept_if_ours(services: Services, incident: str, document: Any) -> None:
    """``--scope`` is for an incident scoped elsewhere (``INC-2026-001``). For one of
    CareVault's own the file must be its latest kept run, as computed (the digest its
    ledger entry holds): a document edited by hand left patients out of the notices and
    the regulators' reports with nothing on record (adversary round 58)."""
    if not incident.isdigit():
        return
    try:
        incidents = importlib.import_module("carevault.incidents")
        runs = importlib.import_module("carevault.incidents.runs")
    except ModuleNotFoundError:
        return  # no incidents here: the incident was scoped elsewhere
    try:
        incidents.incidents_for(services).get(int(incident))
    except incidents.IncidentError:
        return  # none of ours under that number
    try:
        wanted = runs.digest(runs.canonical(document))
    except TypeError:
        wanted = None
    # The latest run: an earlier one, kept before a colleague widened the window, leaves
    # out whom the widening added.
    latest = runs.listing(services.engine, int(incident), 1)
    if wanted is None or not latest or latest[0].sha256 != wanted:
        raise fail(
            f"incident {incident} is CareVault's: --scope must be its latest kept run as "
            f"computed (carevault incident scope {incident} --run latest --format json), or "
            "leave --scope out"
        )


def _tiers(also: str | None) -> tuple[str, ...]:
    from carevault.notify.scope import NOTIFIED_TIERS, TIERS

    extra = tuple(t.strip() for t in (also or "").split(",") if t.strip())
    unknown = [t for t in extra if t not in TIERS]
    if unknown:
        raise fail(f"--also takes tiers among {', '.join(TIERS)}", 2)
    return tuple(t for t in TIERS if t in set(NOTIFIED_TIERS) | set(extra))


@notify_app.command("preview")
def notify_preview(
    incident: IncidentArgument,
    scope_file: ScopeOption = None,
    patient: Annotated[str | None, typer.Option(help="Show this patient's notice in full.")] = None,
    officer: Annotated[
        str | None,
        typer.Option(help="Your privacy-officer username: a notice in full needs your code."),
    ] = None,
    totp: TotpOption = None,
    home: HomeOption = None,
) -> None:
    """Who would be notified, how and in which language; one notice in full (a privacy
    officer's fresh TOTP code, recorded as ``notify:preview:shown``). Sends nothing."""
    from carevault.notify.codes import CodeKeys
    from carevault.notify.decisions import DecisionRefused, decisions_for
    from carevault.notify.job import notice_key_of
    from carevault.notify.notice import render
    from carevault.notify.service import code_keys, reader_of, sender_of
    from carevault.notify.store import NoticeStore

    wanted = patient.removeprefix("Patient/") if patient is not None else None
    with open_services(home) as services:
        scope = load_scope(services, incident, scope_file)
        scope = scope.with_filings(NoticeStore(services.engine).filed(incident))
        exposures = list(scope.notices())
        if wanted is not None and wanted not in {p for e in exposures for p in e.covers}:
            raise fail(
                f"Patient/{wanted} is not among the people incident {incident} would notify "
                "(see the list without --patient)"
            )
        if wanted is not None:
            # A notice in full prints the person's name, address and exposure: the
            # officer's go is in the ledger before anything of theirs is read.
            if not officer:
                raise fail(
                    "give --officer: a notice in full needs a privacy officer's fresh TOTP code",
                    2,
                )
            covering = next(e for e in exposures if wanted in e.covers)
            code_given: str = totp or typer.prompt("TOTP code", hide_input=True)
            try:
                decisions_for(services).show_notice(
                    incident, officer, code_given, covering, source="cli"
                )
            except DecisionRefused as error:
                raise fail(str(error)) from None
        why_not: str | None = None
        reader = reader_of(services)
        keys: CodeKeys = code_keys(services.settings)
        plan: dict[str, int] = {}
        left_out: list[str] = []
        shown = None
        for start in range(0, len(exposures), 200):
            batch = exposures[start : start + 200]
            found = reader.people(batch, scope.changed)
            for exposure in batch:
                entry = found.get(exposure.patient_id)
                if entry is None or entry.recipient.deceased:
                    reason = "no longer on record" if entry is None else "deceased"
                    left_out.append(f"Patient/{cell(exposure.patient_id)}: {reason}")
                    if wanted in exposure.covers:
                        why_not = reason
                    continue
                recipient = entry.recipient
                channel = recipient.channels[0] if recipient.channels else "none"
                who = "guardian" if recipient.guardian else "patient"
                label = f"{channel:7} {cell(recipient.language)}  to {who}"
                plan[label] = plan.get(label, 0) + 1
                if shown is None and (wanted is None or wanted in exposure.covers):
                    code = keys.code_for(notice_key_of(incident, exposure), channel)
                    shown = render(sender_of(services.settings), scope.incident, exposure,
                                   recipient, code, at=services.clock())  # fmt: skip
        echo(f"Incident {incident}: {len(exposures)} people to notify")
        for label, count in sorted(plan.items()):
            echo(f"  {count:7,}  {label}")
        if left_out:
            echo(f"Left out ({len(left_out)}):")
            for line in left_out:
                echo(f"  {line}")
        if shown is not None:
            echo("\n--- " + shown.subject + " ---\n" + shown.text)
            echo("--- SMS ---\n" + shown.sms)
        elif why_not is not None:
            raise fail(f"Patient/{wanted} gets no notice: {why_not}")


@notify_app.command("send")
def notify_send(
    incident: IncidentArgument,
    scope_file: ScopeOption = None,
    also: Annotated[
        str | None,
        typer.Option(
            help="Also notify these tiers (at_rest_only, potentially): the officer's decision."
        ),
    ] = None,
    officer: Annotated[
        str | None,
        typer.Option(help="Your privacy-officer username: sending needs your fresh TOTP code."),
    ] = None,
    totp: TotpOption = None,
    reason: Annotated[str | None, typer.Option(help="Why (with --also; recorded).")] = None,
    home: HomeOption = None,
) -> None:
    """Send every notice (resumable: run it again after any interruption). Notices speak
    to patients in the group's name: a privacy officer's fresh TOTP code starts (and
    resumes) them, recorded as ``notify:job:started``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from carevault.notify.decisions import Decision, DecisionRefused, decisions_for
    from carevault.notify.job import Progress as JobProgress
    from carevault.notify.reporting import open_clocks
    from carevault.notify.service import send_job
    from carevault.notify.store import NoticeStore

    if not officer:
        raise fail("give --officer: sending notices needs a privacy officer's fresh TOTP code", 2)
    if also and not reason:
        raise fail("--also is the officer's decision: give --reason", 2)
    with open_services(home) as services:
        scope = load_scope(services, incident, scope_file)
        tiers = _tiers(also)
        job = NoticeStore(services.engine).job(incident)
        if also is None and job is not None:
            tiers = tuple(str(job["tiers"]).split(","))
        decision = Decision(incident, "notify-tiers", "notify", reason or "", officer)
        code: str = totp or typer.prompt("TOTP code", hide_input=True)
        try:
            decisions_for(services).start_job(
                incident, officer, code, tiers=tiers, source="cli",
                also=decision if also else None,
            )  # fmt: skip
        except DecisionRefused as error:
            raise fail(str(error)) from None
        open_clocks(services, scope)
        with Progress(
            TextColumn("[bold]notices"), BarColumn(), MofNCompleteColumn(),
            TextColumn("sent {task.fields[sent]}, left out {task.fields[skipped]}, "
                       "retrying {task.fields[deferred]}"),
            console=progress_console(),
        ) as bar:  # fmt: skip
            task = bar.add_task("send", total=scope.notice_count(tiers), sent=0, skipped=0,
                                deferred=0)  # fmt: skip

            def advance(progress: JobProgress) -> None:
                bar.update(task, completed=progress.done, sent=progress.sent,
                           skipped=progress.skipped, deferred=progress.deferred)  # fmt: skip

            result = send_job(services).run(scope, tiers, advance)
        echo(
            f"{result.sent:,} notices sent, {result.skipped:,} left out "
            f"(see `carevault notify status {incident}`)"
        )
        if result.down:
            raise fail(
                f"{', '.join(result.down)} unreachable: its notices are pending; fix the "
                f"server and run `carevault notify send {incident}` again"
            )
        if result.print_file is not None:
            echo(f"Letters to print: {result.print_file} (personal data: delete once printed)")


@notify_app.command("status")
def notify_status(incident: IncidentArgument, home: HomeOption = None) -> None:
    """Where the send job stands: notices by state, channel and language; who was left out."""
    from carevault.cli.common import when
    from carevault.notify import store as states
    from carevault.notify.store import NoticeStore

    with open_services(home) as services:
        store = NoticeStore(services.engine)
        job = store.job(incident)
        if job is None:
            raise fail(f"no notices for incident {incident} yet", 1)
        finished = (
            f"finished {when(int(job['finished_us']))}"
            if job["finished_us"]
            else "running or interrupted"
        )
        echo(f"Incident {incident}: {job['total']} people, tiers {job['tiers']}; {finished}")
        counts = store.counts(incident)
        for (state, channel, language), count in sorted(counts.items()):
            echo(f"  {count:7,}  {cell(state):11} {cell(channel):7} {cell(language)}")
        for state in (states.DECEASED, states.UNREACHABLE, states.MISSING):
            rows = store.in_state(incident, state)
            if rows:
                echo(f"Left out, {state} ({len(rows)}):")
                for row in rows[:200]:
                    echo(f"  Patient/{cell(row.patient_id)}")
        waiting = store.in_state(incident, states.PENDING) + store.in_state(
            incident, states.SENDING
        )
        if waiting:
            echo(f"Not sent yet ({len(waiting)}): run `carevault notify send {incident}`")
            for row in waiting[:20]:
                echo(
                    f"  Patient/{cell(row.patient_id)} {cell(row.channel)}: {cell(row.last_error)}"
                )


@notify_app.command("dkim-record")
def notify_dkim_record(home: HomeOption = None) -> None:
    """The DNS TXT record to publish for the notices' DKIM signatures."""
    from carevault.notify.mail import dkim_key, dns_record

    with open_services(home) as services:
        settings = services.settings
        domain = settings.dkim_domain or settings.smtp_from.rsplit("@", 1)[-1]
        key = dkim_key(settings.resolved_dkim_key_path, create=True)
        echo(f'{settings.dkim_selector}._domainkey.{domain}. IN TXT "{dns_record(key)}"')


@notify_app.command("fake-sms")
def notify_fake_sms(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8025,
    outbox: Annotated[Path | None, typer.Option(help="Append each message here.")] = None,
) -> None:
    """A loopback SMS gateway that prints and keeps what it is sent (demo and tests)."""
    import time

    from carevault.notify.sms import FakeSmsGateway

    gateway = FakeSmsGateway(port, str(outbox) if outbox else None).start()
    echo(f"fake SMS gateway on {gateway.url} (Ctrl-C to stop)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        gateway.stop()


def _report(regulator: str, incident: str, scope_file: Path | None, output: Path | None,
            home: Path | None) -> None:  # fmt: skip
    from carevault.notify.letters import FontMissing
    from carevault.notify.reporting import make_report
    from carevault.notify.reports import report_pdf

    with open_services(home) as services:
        scope = load_scope(services, incident, scope_file)
        report = make_report(services, scope, regulator)
        text = json_text(report, ensure_ascii=False, indent=2)
        if output is None:
            echo(text)
            return
        stem = output / f"{regulator}-{incident}"
        try:
            output.mkdir(parents=True, exist_ok=True, mode=0o700)
            stem.with_suffix(".json").write_text(text + "\n", encoding="utf-8")
            stem.with_suffix(".pdf").write_bytes(report_pdf(report, services.settings.pdf_font))
        except FontMissing as error:
            raise fail(str(error)) from None
        except OSError as error:
            raise fail(
                f"cannot write the report into {output}: {error.strerror or error}"
            ) from None
        echo(f"{stem}.json, {stem}.pdf (deadline {report['deadline']})")


OutputOption = Annotated[
    Path | None, typer.Option("--output", help="Write JSON and PDF into this folder.")
]


@report_app.command("pcpd")
def report_pcpd(incident: IncidentArgument, scope_file: ScopeOption = None,
                output: OutputOption = None, home: HomeOption = None) -> None:  # fmt: skip
    """Hong Kong PCPD Data Breach Notification Form, pre-filled."""
    _report("pcpd", incident, scope_file, output, home)


@report_app.command("hipaa")
def report_hipaa(incident: IncidentArgument, scope_file: ScopeOption = None,
                 output: OutputOption = None, home: HomeOption = None) -> None:  # fmt: skip
    """HIPAA: individual notice content, HHS breach portal fields, media notice."""
    _report("hipaa", incident, scope_file, output, home)


@report_app.command("gdpr")
def report_gdpr(incident: IncidentArgument, scope_file: ScopeOption = None,
                output: OutputOption = None, home: HomeOption = None) -> None:  # fmt: skip
    """GDPR Article 33 notification and Article 34 communication."""
    _report("gdpr", incident, scope_file, output, home)


@report_app.command("decide")
def report_decide(
    incident: IncidentArgument,
    regulator: Annotated[str, typer.Option(help="pcpd, hipaa or gdpr.")],
    decision: Annotated[str, typer.Option(help="notify, not-notify or filed.")],
    reason: Annotated[str, typer.Option(help="Why (recorded in the ledger).")],
    officer: OfficerOption,
    totp: TotpOption = None,
    home: HomeOption = None,
) -> None:
    """Record the officer's decision on notifying a regulator (and stop its clock)."""
    from carevault.notify.actions import named_accounts
    from carevault.notify.decisions import DECISIONS, Decision, DecisionRefused, decisions_for
    from carevault.notify.reports import REGULATORS
    from carevault.notify.store import NoticeStore

    if regulator not in REGULATORS or decision not in DECISIONS:
        raise fail(f"--regulator is one of {REGULATORS}; --decision one of {DECISIONS}", 2)
    with open_services(home) as services:
        code: str = totp or typer.prompt("TOTP code", hide_input=True)
        try:
            decisions_for(services).record(
                Decision(incident, regulator, decision, reason, officer),
                code,
                {},
                named=named_accounts(services, incident),
            )
        except DecisionRefused as error:
            raise fail(str(error)) from None
        NoticeStore(services.engine).close_clock(
            incident,
            regulator,
            decision=decision,
            filed_us=services.now_us() if decision != "notify" else None,
        )
    echo(f"{regulator}: {decision} recorded for incident {incident}")


def print_clocks(services: Services) -> None:
    """The regulators' clocks, for ``carevault status``."""
    from carevault.cli.common import when
    from carevault.notify.store import NoticeStore

    clocks = NoticeStore(services.engine).clocks()
    open_ones = [c for c in clocks if c["filed_us"] is None]
    echo(f"Regulators' clocks running: {len(open_ones)}")
    now = services.now_us()
    for clock in open_ones:
        due = int(clock["due_us"])
        left = (due - now) / 3_600_000_000
        state = f"{left:,.1f} h left" if left >= 0 else f"OVERDUE by {-left:,.1f} h"
        echo(f"  {cell(clock['incident_id'])} {clock['regulator']:5} due {when(due)}: {state}")
