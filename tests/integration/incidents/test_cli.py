"""``carevault incident``: the command shapes scripts rely on, and every output format."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

import pyotp
import pytest
from typer.testing import CliRunner

from carevault.bootstrap import build_services
from carevault.cli import app
from carevault.domain.roles import Role
from carevault.ledger.events import AuditEvent, Outcome
from tests.conftest import make_settings
from tests.support.cli_home import cli_services
from tests.support.ledgers import record_reads

runner = CliRunner()
PASSWORD = "correct horse battery staple"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data directory where staff:thief read three patients on 2026-01-01."""
    services = cli_services(tmp_path, monkeypatch)
    home = services.settings.home
    try:
        services.accounts.add("thief", "Thief", Role.FRONT_DESK, ["tm"], PASSWORD)
        services.clients.add("lab-interface", "Lab", confidential=True,
                             scopes="system/*.rs", clinic_ids=["tm"])  # fmt: skip
        record_reads(services, "staff:thief", range(3), source_address="203.0.113.9")
    finally:
        services.close()
    return home


def _run(home: Path, *args: str) -> str:
    result = runner.invoke(app, ["incident", *args, "--home", str(home)])
    assert result.exit_code == 0, result.output
    return result.output


def test_declare_prints_the_id_last_and_the_rest_reads_it(home: Path) -> None:
    output = _run(home, "declare", "--title", "Phished", "--account", "thief",
                  "--address", "203.0.113.0/24", "--since", "2026-01-01", "--until",
                  "2026-01-02T00:00:00+00:00")  # fmt: skip
    incident = output.split()[-1]
    assert incident == "1"
    assert "Phished" in _run(home, "list")
    assert json.loads(_run(home, "show", incident))["compromised"]["accounts"] == ["thief"]
    document = json.loads(_run(home, "scope", incident, "--format", "json"))
    assert set(document) == {"incident", "tiers", "changed", "registered", "counts"}
    assert set(document["tiers"]) == {"confirmed", "decrypted", "at_rest_only", "potentially"}
    assert len(document["tiers"]["confirmed"]) == 3
    assert document["counts"]["people"]["confirmed"] == 3
    assert (
        _run(home, "amend", incident, "--status", "contained", "--note", "reset").split()[-1] == "1"
    )
    kinds = [item["kind"] for item in json.loads(_run(home, "timeline", incident))]
    assert kinds == ["declared", "scoped", "amended"]
    assert _run(home, "segments", "--verify").startswith("sealed 0 new; audit 0, unwrap 0")


def test_a_time_without_a_zone_is_the_groups(home: Path) -> None:
    """``--since 2026-11-30T10:00`` is ten o'clock in Hong Kong (CAREVAULT_TIMEZONE), as the
    console and /admin/incidents read it: 02:00 UTC, not 10:00 UTC."""
    incident = _run(home, "declare", "--title", "t", "--account", "thief",
                    "--since", "2026-11-30T10:00", "--until", "2026-12-01").split()[-1]  # fmt: skip
    shown = json.loads(_run(home, "show", incident))
    assert shown["since"] == "2026-11-30T02:00:00.000Z"
    assert shown["until"] == "2026-11-30T16:00:00.000Z"
    _run(home, "amend", incident, "--since", "2026-11-29T09:30")
    assert json.loads(_run(home, "show", incident))["since"] == "2026-11-29T01:30:00.000Z"


def test_narrowing_or_closing_takes_an_officers_fresh_code(home: Path) -> None:
    """As in the console and over the API: a later start, an earlier end or closing takes
    patients out of who is told, and needs a privacy officer's fresh code (--officer,
    --totp); the shell alone does not do it. Widening stays free."""
    services = build_services(make_settings(home))
    try:
        _, secret = services.accounts.add("po.chan", "PO Chan", Role.PRIVACY_OFFICER, [], PASSWORD)
        services.accounts.add("desk.wong", "Desk Wong", Role.FRONT_DESK, ["tm"], PASSWORD)
    finally:
        services.close()
    incident = _run(home, "declare", "--title", "t", "--account", "thief",
                    "--since", "2026-01-01", "--until", "2026-01-03").split()[-1]  # fmt: skip
    shown = _run(home, "show", incident)
    for narrowing in (["--since", "2026-01-02"], ["--until", "2026-01-02"], ["--status", "closed"]):
        for who in ([], ["--officer", "po.chan", "--totp", "000000"],
                    ["--officer", "desk.wong", "--totp", "000000"]):  # fmt: skip
            refused = runner.invoke(app, ["incident", "amend", incident, *narrowing, *who,
                                          "--home", str(home)])  # fmt: skip
            assert refused.exit_code == 1, refused.output
            assert "code" in refused.output
            assert _run(home, "show", incident) == shown
    assert (
        "--officer"
        in runner.invoke(
            app, ["incident", "amend", incident, "--status", "closed", "--home", str(home)]
        ).output
    )
    services = build_services(make_settings(home))
    try:
        refusals = [
            AuditEvent.from_canonical(data)
            for _, data in services.audit_ledger.store.entries()
            if b"incident:incident:refused" in data
        ]
    finally:
        services.close()
    assert len(refusals) == 10
    assert {event.outcome for event in refusals} == {Outcome.DENIED}
    _run(home, "amend", incident, "--since", "2025-12-31")  # widening: no code
    code = pyotp.TOTP(secret).at(time.time())
    _run(home, "amend", incident, "--status", "closed", "--officer", "po.chan", "--totp", code)
    assert json.loads(_run(home, "show", incident))["status"] == "closed"


def test_an_officer_the_incident_names_does_not_close_it_from_the_shell(home: Path) -> None:
    """The shell runs as its operator, but the fresh code is the officer's: an officer the
    incident names (as a username in another case, or as a full principal) does not
    narrow or close it with their own code from the CLI either (review, stop 40); a
    colleague does."""
    services = build_services(make_settings(home))
    try:
        secrets = {
            name: services.accounts.add(name, name, Role.PRIVACY_OFFICER, [], PASSWORD)[1]
            for name in ("po.lee", "po.kwan", "po.ho", "po.yip")
        }
    finally:
        services.close()
    for named, spelt, colleague in (
        ("po.lee", "PO.Lee", "po.ho"),
        ("po.kwan", "staff:po.kwan", "po.yip"),
    ):
        incident = _run(home, "declare", "--title", "t", "--account", spelt,
                        "--since", "2026-01-01").split()[-1]  # fmt: skip
        code = pyotp.TOTP(secrets[named]).at(time.time())
        refused = runner.invoke(app, ["incident", "amend", incident, "--status", "closed",
                                      "--officer", named, "--totp", code,
                                      "--home", str(home)])  # fmt: skip
        assert refused.exit_code == 1, refused.output
        assert "names as compromised" in refused.output
        assert json.loads(_run(home, "show", incident))["status"] != "closed"
        code = pyotp.TOTP(secrets[colleague]).at(time.time())
        _run(home, "amend", incident, "--status", "closed", "--officer", colleague, "--totp", code)
        assert json.loads(_run(home, "show", incident))["status"] == "closed"


@pytest.mark.parametrize("fmt", ["csv", "html", "fhir"])
def test_scope_in_every_format(home: Path, fmt: str, tmp_path: Path) -> None:
    incident = _run(home, "declare", "--title", "t", "--address", "203.0.113.9",
                    "--since", "2026-01-01").split()[-1]  # fmt: skip
    out = tmp_path / f"scope.{fmt}"
    _run(home, "scope", incident, "--format", fmt, "--output", str(out))
    text = out.read_text()
    if fmt == "csv":
        assert text.splitlines()[0].startswith("tier,patient,categories")
        assert len(text.splitlines()) == 4
    elif fmt == "html":
        assert text.startswith("<!doctype html>") and "<svg" in text
        assert "src=" not in text and "<script" not in text
    else:
        bundle = json.loads(text)
        kinds = [entry["resource"]["resourceType"] for entry in bundle["entry"]]
        assert kinds == ["Group", "DocumentReference"]


def test_bad_input_and_an_unknown_alert_fail_clearly(home: Path) -> None:
    bad = runner.invoke(app, ["incident", "declare", "--title", "t", "--account", "a",
                              "--since", "last week", "--home", str(home)])  # fmt: skip
    assert bad.exit_code == 1 and "since" in bad.output
    alert = runner.invoke(app, ["incident", "declare", "--from-alert", "7", "--home", str(home)])
    assert alert.exit_code == 1 and "no alert 7" in alert.output
    missing = runner.invoke(app, ["incident", "scope", "42", "--home", str(home)])
    assert missing.exit_code == 1 and "no incident 42" in missing.output
    assert runner.invoke(app, ["incident", "list", "--home", str(home)]).output == ""


def _alert(
    home: Path,
    detector: str,
    *,
    account: str | None = "thief",
    client: str | None = None,
    address: str = "203.0.113.9",
) -> None:
    """A detection alert on the thief's three reads (or a client's), as the detectors
    store it; the first alert of ``home`` is alert 1."""
    from sqlalchemy import insert

    from carevault.db import write_transaction
    from carevault.detect.tables import detect_alert

    services = build_services(make_settings(home))
    try:
        with write_transaction(services.engine) as connection:
            connection.execute(
                insert(detect_alert).values(
                    dedup_key=f"{detector}|{account or client}|2026-01-01",
                    case_key=f"case:{account or client}",
                    detector=detector,
                    severity="high",
                    account=account,
                    client=client,
                    source_address=address,
                    patient_count=3,
                    patients="[]",
                    raised_us=1_767_226_000_000_000,
                    updated_us=1_767_226_000_000_000,
                    status="open",
                    explanation="many patients",
                )  # fmt: skip
            )
    finally:
        services.close()


def test_declare_from_an_alert_takes_its_case(home: Path) -> None:
    _alert(home, "two-places")
    # The alert was raised after the reads it is about: the window is widened by hand.
    output = _run(home, "declare", "--from-alert", "1", "--since", "2026-01-01")
    incident = output.split()[-1]
    shown = json.loads(_run(home, "show", incident))
    assert shown["alert"] == "1" and shown["title"].startswith("two-places by thief")
    assert shown["compromised"]["accounts"] == ["thief"]
    # An alert on where the account acted from: that place is the thief's.
    assert shown["compromised"]["addresses"] == ["203.0.113.9/32"]
    document = json.loads(_run(home, "scope", incident))
    assert len(document["tiers"]["confirmed"]) == 3


def test_an_alert_on_a_staff_account_holds_neither_its_app_nor_its_workplace(home: Path) -> None:
    """A desk's ``breadth`` alert, its reads through the EHR app every clinician uses,
    from the clinic's address: the incident holds the desk's account, not the app nor
    the address, or every colleague's reads of the window were confirmed beside the
    desk's (a scope, and notices, for patients no thief touched; stop 64)."""
    services = build_services(make_settings(home))
    try:
        services.clients.add(
            "ehr-app",
            "EHR",
            confidential=False,
            scopes="user/*.rs",
            clinic_ids=["tm"],
            redirect_uris=["https://ehr.example/cb"],
        )
        for principal, numbers in (("staff:thief", range(3, 5)), ("staff:colleague", range(5, 9))):
            record_reads(services, principal, numbers, source_address="10.1.0.20",
                         client_id="ehr-app")  # fmt: skip
    finally:
        services.close()
    _alert(home, "breadth", client="ehr-app", address="10.1.0.20")
    output = _run(home, "declare", "--from-alert", "1", "--since", "2026-01-01")
    shown = json.loads(_run(home, "show", output.split()[-1]))
    compromised = shown["compromised"]
    assert (compromised["accounts"], compromised["clients"], compromised["addresses"]) == (
        ["thief"],
        [],
        [],
    )
    document = json.loads(_run(home, "scope", output.split()[-1]))
    assert sorted(line["patient"] for line in document["tiers"]["confirmed"]) == [
        f"ps{n}" for n in range(5)
    ]


@pytest.mark.parametrize("account", [None, "labfeed"])
def test_an_alert_on_a_client_holds_the_client_and_its_address(
    home: Path, account: str | None
) -> None:
    """A client's alert (or that of the integration account a backend service is bound
    to: the review of stop 64): the client itself (its secret) and where it acted from."""
    if account is not None:
        services = build_services(make_settings(home))
        try:
            services.accounts.add(account, "Lab feed", Role.INTEGRATION, ["tm"], PASSWORD)
        finally:
            services.close()
    _alert(home, "breadth", account=account, client="lab-interface")
    output = _run(home, "declare", "--from-alert", "1", "--since", "2026-01-01")
    compromised = json.loads(_run(home, "show", output.split()[-1]))["compromised"]
    assert (compromised["accounts"], compromised["clients"], compromised["addresses"]) == (
        [account] if account else [],
        ["lab-interface"],
        ["203.0.113.9/32"],
    )


def test_scope_run_prints_a_kept_run_as_it_was_computed(home: Path) -> None:
    incident = _run(home, "declare", "--title", "t", "--account", "thief",
                    "--since", "2026-01-01").split()[-1]  # fmt: skip
    missing = runner.invoke(app, ["incident", "scope", incident, "--run", "latest",
                                  "--home", str(home)])  # fmt: skip
    assert missing.exit_code == 1 and "no kept scope run" in missing.output
    computed = json.loads(_run(home, "scope", incident, "--format", "json"))
    kept = json.loads(_run(home, "scope", incident, "--run", "latest"))
    assert kept == computed
    assert json.loads(_run(home, "scope", incident, "--run", "1")) == computed
    runs = json.loads(_run(home, "runs", incident))
    assert [(run["run"], run["kept"]) for run in runs] == [(1, True)]
    # Printing a kept run computes nothing: still one run.
    assert len(json.loads(_run(home, "runs", incident))) == 1
    kinds = [item["kind"] for item in json.loads(_run(home, "timeline", incident))]
    assert kinds == ["declared", "scoped"]
    bad = runner.invoke(app, ["incident", "scope", incident, "--run", "first",
                              "--home", str(home)])  # fmt: skip
    assert bad.exit_code == 1 and "--run" in bad.output


def test_an_output_that_cannot_be_written_is_said_without_a_traceback(
    home: Path, tmp_path: Path
) -> None:
    incident = _run(home, "declare", "--title", "t", "--account", "thief",
                    "--since", "2026-01-01").split()[-1]  # fmt: skip
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    target = str(not_a_folder / "scope.json")
    result = runner.invoke(
        app, ["incident", "scope", incident, "--output", target, "--home", str(home)]
    )
    assert result.exit_code == 1, result.output
    assert "cannot write" in result.output and "--run latest" in result.output
    assert not isinstance(result.exception, OSError)


def test_the_list_is_filtered_by_status(home: Path) -> None:
    incident = _run(home, "declare", "--title", "Phished", "--account", "thief",
                    "--since", "2026-01-01").split()[-1]  # fmt: skip
    assert _run(home, "list", "--status", "open").split("\t")[0] == incident
    assert _run(home, "list", "--status", "closed") == ""
    assert incident in _run(home, "list")
    bogus = runner.invoke(app, ["incident", "list", "--status", "shut", "--home", str(home)])
    assert bogus.exit_code == 2 and "contained" in bogus.output


def test_an_account_no_one_has_is_refused_and_named(home: Path) -> None:
    """A typo (``thiefs`` for ``thief``) would match no entry, and an empty scope reads as
    "no patient affected": the username is refused (exit 2), named as typed but escaped
    for the terminal, and nothing is declared or amended. Full principals of processes
    and client apps are taken as given."""
    refused = runner.invoke(app, ["incident", "declare", "--title", "t", "--account", "thief",
                                  "--account", "thiefs\u202egnp", "--since", "2026-01-01",
                                  "--home", str(home)])  # fmt: skip
    assert refused.exit_code == 2, refused.output
    assert "no staff account 'thiefs\\u202egnp'" in refused.output
    assert "\u202e" not in refused.output
    assert _run(home, "list") == ""
    incident = _run(home, "declare", "--title", "t", "--account", "Thief",
                    "--account", "system:backup-agent", "--account", "client:lab-interface",
                    "--since", "2026-01-01").split()[-1]  # fmt: skip
    shown = _run(home, "show", incident)
    for wrong in ("chan.tn", "stafff:thief", "staff:nobody"):
        amend = runner.invoke(app, ["incident", "amend", incident, "--account", wrong,
                                    "--home", str(home)])  # fmt: skip
        assert amend.exit_code == 2, amend.output
        assert repr(wrong) in amend.output
        assert _run(home, "show", incident) == shown


def test_a_good_code_of_a_manager_or_nurse_does_not_narrow_or_close_from_the_shell(
    home: Path,
) -> None:
    """``--officer`` must name a privacy officer: another role's own fresh, valid code is
    refused as a code that was never typed, and nothing changes."""
    services = build_services(make_settings(home))
    try:
        secrets = {
            name: services.accounts.add(name, name, role, ["tm"], PASSWORD)[1]
            for name, role in (("mgr.tam", Role.CLINIC_MANAGER), ("rn.poon", Role.NURSE))
        }
    finally:
        services.close()
    incident = _run(home, "declare", "--title", "t", "--account", "thief",
                    "--since", "2026-01-01", "--until", "2026-01-03").split()[-1]  # fmt: skip
    shown = _run(home, "show", incident)
    for name, secret in secrets.items():
        for narrowing in (["--status", "closed"], ["--until", "2026-01-02"]):
            code = pyotp.TOTP(secret).at(time.time())
            refused = runner.invoke(app, ["incident", "amend", incident, *narrowing,
                                          "--officer", name, "--totp", code,
                                          "--home", str(home)])  # fmt: skip
            assert refused.exit_code == 1, refused.output
            assert _run(home, "show", incident) == shown


def test_a_client_clinic_or_session_no_one_has_is_refused_and_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A typo in a client id, a clinic or a session matches no entry either: exit 2, the
    unknown names as typed (escaped), nothing declared or amended. Names are taken as
    the group spells them, and a session ended since is one that was issued."""
    services = cli_services(tmp_path, monkeypatch)
    try:
        services.clients.add("lab-interface", "Lab", confidential=True,
                             scopes="system/*.rs", clinic_ids=["tm"])  # fmt: skip
        session = services.sessions.open(
            subject="lab", account_id=None, client_id="lab-interface", scope="system/*.rs",
            with_refresh=False, source_address=None, user_agent=None,
        ).session_id  # fmt: skip
        services.sessions.revoke(session, "ended")
        home = services.settings.home
    finally:
        services.close()
    for option, wrong, said in (
        ("--client", "lab-interfce", "no client app 'lab-interfce'"),
        ("--clinic", "t\u202em", "no clinic of the group 't\\u202em'"),
        ("--session", session.upper(), f"no session {session.upper()!r} was ever issued"),
    ):
        refused = runner.invoke(app, ["incident", "declare", "--title", "t", option, wrong,
                                      "--since", "2026-01-01", "--home", str(home)])  # fmt: skip
        assert refused.exit_code == 2, refused.output
        assert said in refused.output and "\u202e" not in refused.output
    assert _run(home, "list") == ""
    incident = _run(home, "declare", "--title", "t", "--client", "LAB-interface",
                    "--clinic", "TM", "--session", session,
                    "--since", "2026-01-01").split()[-1]  # fmt: skip
    shown = json.loads(_run(home, "show", incident))["compromised"]
    assert (shown["clients"], shown["clinics"], shown["sessions"]) == (
        ["lab-interface"], ["tm"], [session],
    )  # fmt: skip
    before = _run(home, "show", incident)
    for option, wrong in (("--client", "lab"), ("--clinic", "tn"), ("--session", "s0")):
        amend = runner.invoke(app, ["incident", "amend", incident, option, wrong,
                                    "--home", str(home)])  # fmt: skip
        assert amend.exit_code == 2, amend.output
        assert repr(wrong) in amend.output
        assert _run(home, "show", incident) == before


def test_a_window_that_starts_in_the_future_is_refused_and_nothing_declared(home: Path) -> None:
    """A start in the future (a typo of the year, or a date read the American way) matches
    no entry, and its empty scope reads as "no patient affected" to the script that
    declared it: refused, named, nothing declared; amending to one is refused too."""
    refused = runner.invoke(app, ["incident", "declare", "--title", "t", "--account", "thief",
                                  "--since", "2099-01-01", "--home", str(home)])  # fmt: skip
    assert refused.exit_code == 1, refused.output
    assert "since" in refused.output and "future" in refused.output
    assert _run(home, "list") == ""
    incident = _run(home, "declare", "--title", "t", "--account", "thief",
                    "--since", "2026-01-01").split()[-1]  # fmt: skip
    shown = _run(home, "show", incident)
    amend = runner.invoke(app, ["incident", "amend", incident, "--since", "2099-01-01",
                                "--officer", "po.none", "--totp", "000000",
                                "--home", str(home)])  # fmt: skip
    assert amend.exit_code == 1, amend.output
    assert "future" in amend.output
    assert _run(home, "show", incident) == shown


@pytest.mark.parametrize("command", ["show", "scope", "runs", "timeline"])
def test_an_incident_id_past_64_bits_is_no_incident_without_a_traceback(
    home: Path, command: str
) -> None:
    """``/admin/incidents/{id}`` refuses an id no row can have (web/ids.py); the CLI passed
    it to the driver, which overflowed: a traceback on standard error where a script
    expected "no incident" and exit 1."""
    for wrong in ("99999999999999999999", "0"):
        result = runner.invoke(app, ["incident", command, wrong, "--home", str(home)])
        assert result.exit_code == 1, result.output
        assert f"no incident {wrong}" in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
    amend = runner.invoke(app, ["incident", "amend", "99999999999999999999", "--title", "x",
                                "--home", str(home)])  # fmt: skip
    assert amend.exit_code == 1 and "no incident" in amend.output


def test_a_range_of_every_address_or_with_host_bits_is_refused(home: Path) -> None:
    """``10.0.0.0/0`` (a slip for /8) was taken as 0.0.0.0/0: every read by anyone in the
    window became the attacker's, and every patient read a notice; ``10.1.2.3/8`` became
    10.0.0.0/8 unasked. Both are refused, named, and nothing is declared or amended."""
    for wrong in ("10.0.0.0/0", "::/0", "0.0.0.0/1", "2001::/12", "10.1.2.3/8"):
        refused = runner.invoke(app, ["incident", "declare", "--title", "t", "--address", wrong,
                                      "--since", "2026-01-01", "--home", str(home)])  # fmt: skip
        assert refused.exit_code == 1, (wrong, refused.output)
        assert "addresses" in refused.output and wrong in refused.output
    assert _run(home, "list") == ""
    incident = _run(home, "declare", "--title", "t", "--address", "203.0.113.0/24",
                    "--address", "10.0.0.0/8", "--address", "2001:db8::/32",
                    "--since", "2026-01-01").split()[-1]  # fmt: skip
    shown = _run(home, "show", incident)
    amend = runner.invoke(app, ["incident", "amend", incident, "--address", "0.0.0.0/0",
                                "--home", str(home)])  # fmt: skip
    assert amend.exit_code == 1 and "0.0.0.0/0" in amend.output
    assert _run(home, "show", incident) == shown


def test_the_scope_says_when_each_ledger_begins(home: Path) -> None:
    """A window opening before the ledger's first entry (CareVault installed after the
    breach began) is taken, but nothing from before can be in the scope: the document
    says when each ledger begins, so a script or a firm can see the window reaches back
    past the evidence."""
    incident = _run(home, "declare", "--title", "t", "--account", "thief",
                    "--since", "2001-01-01T00:00:00Z").split()[-1]  # fmt: skip
    document = json.loads(_run(home, "scope", incident, "--format", "json"))
    begins = document["incident"]["ledgers_begin"]
    assert set(begins) == {"audit", "unwrap"}
    audit = datetime.fromisoformat(begins["audit"])
    assert audit.tzinfo is not None
    assert audit > datetime.fromisoformat(document["incident"]["since"])
    assert begins["unwrap"] is None or datetime.fromisoformat(begins["unwrap"]).tzinfo
