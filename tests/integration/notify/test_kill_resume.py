"""The send job killed with SIGKILL at random points, several times, then run to the
end: every patient has exactly one notice, none is missing, none came twice, and every
notice marked sent has exactly one ``notify:notice:sent`` ledger entry."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyotp
import pytest

from carevault.bootstrap import build_services
from carevault.config import Settings
from carevault.domain.roles import Role
from carevault.ledger.events import AuditEvent, Tag
from carevault.notify import store as states
from carevault.notify.job import notice_key
from carevault.notify.sms import FakeSmsGateway
from carevault.notify.store import NoticeStore
from tests.support.notify import Person, attack, scope_from_ledger, smtp_server, write_people
from tests.support.server import environment, run_cli

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
INCIDENT = "INC-KILL-1"
PASSWORD = "correct horse battery staple"


def _people() -> list[Person]:
    people = []
    for index in range(90):
        kind = index % 9
        if kind < 6:
            people.append(Person(f"e{index}", "Chan", f"Email{index}", "yue" if index % 2 else "en",
                                 email=f"patient{index}@example.com"))  # fmt: skip
        elif kind < 8:
            people.append(Person(f"s{index}", "Lee", f"Sms{index}", "en",
                                 phone=f"+852 9{index:03d} 1234"))  # fmt: skip
        else:
            people.append(Person(f"l{index}", "Ho", f"Letter{index}", "zh-HK"))
    return people


def test_killed_at_random_points_sends_each_notice_exactly_once(
    settings: Settings, tmp_path: Path
) -> None:
    smtp, sink = smtp_server(tmp_path / "journal")
    sms = FakeSmsGateway().start()
    try:
        services = build_services(settings, create_keys=True, migrate=True)
        try:
            people = _people()
            ids = write_people(services, people)
            attack(services, people, ids)
            scope = scope_from_ledger(services, INCIDENT)
            # Each run is an officer's go with a fresh TOTP code (a code works once): one
            # officer per run, so that seven runs need not wait for seven 30-second steps.
            secrets = [
                services.accounts.add(
                    f"officer{n}", f"Officer {n}", Role.PRIVACY_OFFICER, [], PASSWORD
                )[1]
                for n in range(7)
            ]
        finally:
            services.close()
        scope_file = tmp_path / "scope.json"
        scope_file.write_text(json.dumps(scope))
        env = environment(
            settings.home,
            settings.database_url,
            {
                "CAREVAULT_SMTP_PORT": str(smtp.port),
                "CAREVAULT_SMTP_FROM": "notices@clinics.example.hk",
                "CAREVAULT_SMS_GATEWAY_URL": sms.url,
                "CAREVAULT_NOTIFY_JOURNAL_DIR": str(tmp_path / "journal"),
                "CAREVAULT_NOTIFY_LETTERS_DIR": str(tmp_path / "letters"),
                "CAREVAULT_NOTIFY_RATE": "40",
                "CAREVAULT_NOTIFY_BATCH": "7",
            },
        )

        def command(run: int) -> list[str]:
            code = pyotp.TOTP(secrets[run]).now()
            return [sys.executable, "-m", "carevault", "notify", "send", INCIDENT, "--scope",
                    str(scope_file), "--officer", f"officer{run}", "--totp", code]  # fmt: skip

        chance = random.Random(20261201)
        kills = 0
        delivered: list[int] = []

        def count() -> int:
            return len(sink.messages) + len(sms.messages)

        for run in range(6):
            before = count()
            with (tmp_path / "killed.log").open("ab") as log:
                process = subprocess.Popen(command(run), env=env, stdout=log, stderr=log)
                # Kill once this run has delivered something, a random moment later: in
                # the middle of sending, wherever the job happens to be.
                deadline = time.monotonic() + 120
                while count() == before and process.poll() is None:
                    assert time.monotonic() < deadline, "the job sends nothing"
                    time.sleep(0.005)
                time.sleep(chance.uniform(0.0, 0.4))
                if process.poll() is None:
                    process.send_signal(signal.SIGKILL)
                    kills += 1
                process.wait(timeout=30)
            delivered.append(count() - before)
        finished = run_cli(env, *command(6)[3:])
        assert finished.returncode == 0, finished.stderr[-2000:]
        status = run_cli(env, "notify", "status", INCIDENT)
        assert status.returncode == 0, status.stderr
        assert "Not sent yet" not in status.stdout
        services = build_services(settings)
        try:
            rows = NoticeStore(services.engine).rows(INCIDENT)
            ledger = [AuditEvent.from_canonical(data)
                      for _, data in services.audit_ledger.store.entries()]  # fmt: skip
        finally:
            services.close()
    finally:
        smtp.stop()
        sms.stop()
    assert kills >= 4, "the job finished before it could be killed: slow it down"
    assert sum(delivered[:kills]) < len(people), delivered
    emails = Counter(to for recipients, _ in sink.messages for to in recipients)
    wanted = {p.email for p in people if p.email}
    assert set(emails) == wanted
    assert [to for to, n in emails.items() if n > 1] == []
    texts = Counter(m["to"] for m in sms.messages)
    assert len(texts) == sum(1 for p in people if p.phone and not p.email)
    assert max(texts.values()) == 1
    letters = {path.stem for path in (tmp_path / "letters" / INCIDENT).glob("*.pdf")}
    assert letters == {notice_key(INCIDENT, ids[p.key]) for p in people if not p.email
                       and not p.phone}  # fmt: skip
    # Every release left its record, once: after the kills, each notice marked sent has
    # exactly one "sent" ledger entry naming it, and no entry names a notice not sent.
    sent = {key for key, row in rows.items() if row.state == states.SENT}
    assert sent == {notice_key(INCIDENT, ids[p.key]) for p in people}
    entries = Counter(
        str(event.detail["notice"])
        for event in ledger
        if event.tag == Tag.NOTIFY_NOTICE_SENT and event.reason == f"incident {INCIDENT}"
    )
    assert set(entries) == sent
    assert {key: n for key, n in entries.items() if n != 1} == {}
