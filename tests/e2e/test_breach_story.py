"""The breach story end to end, driven the way outside scripts drive CareVault: a
front-desk login pages through its clinic's patients over HTTP until the release budget
stops it; ``carevault alerts list --json`` shows the alert; ``carevault incident declare
--from-alert`` opens an incident (its id the last word printed); ``carevault incident
scope ID --format json`` names exactly the patients the thief was given; ``carevault
notify send ID`` mails each of them once over a real SMTP server; and ``/verify?code=``
confirms the code in each mail and nothing else.

Each step is a separate process against a running ``carevault serve``, on SQLite and
PostgreSQL: the seams between detection, incidents and notices are what is tested here,
each part's own behaviour is tested beside it."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from aiosmtpd.controller import Controller

from carevault.config import Settings
from carevault.notify.codes import ALPHABET
from tests.support.auth import Login, colleagues, login_for, token_for
from tests.support.notify import MailSink, smtp_server
from tests.support.server import RunningServer, environment, run_cli, running_server
from tests.support.template import seed_staff

pytestmark = pytest.mark.e2e
BUDGET = 30
PATIENTS = 60
CODE = re.compile(rf"\b([{ALPHABET}]{{4}}-[{ALPHABET}]{{4}}-[{ALPHABET}]{{4}})\b")


@dataclass(frozen=True)
class Story:
    env: dict[str, str]
    server: RunningServer
    thief: Login
    clerk: Login
    sink: MailSink


@pytest.fixture
def story(settings: Settings, tmp_path: Path) -> Iterator[Story]:
    smtp: Controller
    smtp, sink = smtp_server(tmp_path / "journal")
    env = environment(
        settings.home,
        settings.database_url,
        {
            "CAREVAULT_DIRECT_GRANT": "true",
            "CAREVAULT_ARGON2_MEMORY_KIB": "8192",
            "CAREVAULT_ARGON2_TIME_COST": "1",
            "CAREVAULT_RELEASE_BUDGET": f"front_desk={BUDGET}/{BUDGET * 4}",
            "CAREVAULT_SMTP_HOST": "127.0.0.1",
            "CAREVAULT_SMTP_PORT": str(smtp.port),
            "CAREVAULT_SMTP_FROM": "notices@clinics.example.hk",
            "CAREVAULT_NOTIFY_JOURNAL_DIR": str(tmp_path / "journal"),
            "CAREVAULT_NOTIFY_LETTERS_DIR": str(tmp_path / "letters"),
            "CAREVAULT_NOTIFY_SITE": "clinics.example.hk",
        },
    )
    try:
        seed_staff(settings, env)
        (thief,), clinic = colleagues(settings.home, "front_desk")
        clerk = login_for(settings.home, "front_desk", index=1, clinic=clinic)
        assert clerk.username != thief.username
        with running_server(env, tmp_path) as server:
            yield Story(env, server, thief, clerk, sink)
    finally:
        smtp.stop()


def register(story: Story, count: int) -> dict[str, str]:
    """The clerk registers ``count`` patients, each with an email address; half of them
    read Chinese. Returns patient id -> email address."""
    language = ("en", "zh-HK")
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {
                    "resourceType": "Patient",
                    "name": [{"family": f"Story{n}", "given": ["Pat"]}],
                    "birthDate": "1970-01-01",
                    "telecom": [{"system": "email", "value": f"patient{n}@example.com"}],
                    "communication": [
                        {
                            "language": {
                                "coding": [{"system": "urn:ietf:bcp:47", "code": language[n % 2]}]
                            },
                            "preferred": True,
                        }
                    ],
                },
                "request": {"method": "POST", "url": "Patient"},
            }
            for n in range(count)
        ],
    }
    token = token_for(story.server.url, story.clerk)
    response = httpx.post(
        story.server.fhir,
        content=json.dumps(bundle),
        headers={"authorization": f"Bearer {token}", "content-type": "application/fhir+json"},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    ids = [entry["response"]["location"].split("/")[1] for entry in response.json()["entry"]]
    return {patient: f"patient{n}@example.com" for n, patient in enumerate(ids)}


def page_through(story: Story) -> tuple[set[str], list[int]]:
    """The thief pages through the clinic's patients until it is stopped."""
    token = token_for(story.server.url, story.thief)
    headers = {"authorization": f"Bearer {token}"}
    got: set[str] = set()
    statuses: list[int] = []
    url: str | None = f"{story.server.fhir}/Patient?_count=10"
    with httpx.Client(timeout=30) as client:
        while url is not None and len(statuses) < 20:
            response = client.get(url, headers=headers)
            statuses.append(response.status_code)
            if response.status_code != 200:
                break
            page = response.json()
            got.update(entry["resource"]["id"] for entry in page.get("entry", []))
            url = next((lk["url"] for lk in page.get("link", []) if lk["relation"] == "next"), None)
    return got, statuses


def alert_for(story: Story, username: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        done = run_cli(story.env, "alerts", "list", "--json")
        assert done.returncode == 0, done.stderr
        found = [alert for alert in json.loads(done.stdout) if alert["account"] == username]
        if found:
            return found[0]
        assert time.monotonic() < deadline, done.stdout
        time.sleep(0.3)


def test_a_stolen_front_desk_login_is_noticed_scoped_and_its_patients_told(
    story: Story,
) -> None:
    emails = register(story, PATIENTS)

    got, statuses = page_through(story)
    assert statuses[-1] in (401, 429), statuses
    assert 0 < len(got) <= BUDGET and got <= set(emails)

    alert = alert_for(story, story.thief.username)
    assert alert["patient_count"] >= 1 and alert["severity"]
    # Nobody else did anything alarming.
    listed = json.loads(run_cli(story.env, "alerts", "list", "--json").stdout)
    assert {a["account"] for a in listed} == {story.thief.username}, listed

    declared = run_cli(story.env, "incident", "declare", "--from-alert", str(alert["id"]))
    assert declared.returncode == 0, declared.stderr
    incident = declared.stdout.split()[-1]

    scoped = run_cli(story.env, "incident", "scope", incident, "--format", "json")
    assert scoped.returncode == 0, scoped.stderr
    document = json.loads(scoped.stdout)
    confirmed = {line["patient"]: line for line in document["tiers"]["confirmed"]}
    assert set(confirmed) == got
    for line in confirmed.values():
        # A front desk sees who and how to reach them, never clinical data.
        assert "identity" in line["categories"] and "contact" in line["categories"]
        assert not {"clinical", "medication", "sensitive_clinical"} & set(line["categories"])
        assert line["evidence"]
    assert document["tiers"]["decrypted"] == []

    # Sending is the privacy officer's go, with a fresh TOTP code (then the next step's).
    officer = login_for(Path(story.env["CAREVAULT_HOME"]), "privacy_officer")
    codes_of = pyotp.TOTP(officer.totp_secret)
    sent = run_cli(story.env, "notify", "send", incident, "--officer", officer.username,
                   "--totp", codes_of.at(time.time()))  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    mails = [
        (to, message_from_bytes(data, policy=policy.default)) for to, data in story.sink.messages
    ]
    recipients = [address for to, _ in mails for address in to]
    assert sorted(recipients) == sorted(emails[patient] for patient in got)

    codes: list[str] = []
    for to, message in mails:
        text = message.get_body(preferencelist=("plain",))
        assert text is not None
        body = text.get_content()
        found = CODE.findall(body)
        assert len(found) == 1, body
        codes.append(found[0])
        (address,) = to
        number = int(address.removeprefix("patient").split("@")[0])
        assert ("閣下" in body) == (number % 2 == 1)
    assert len(set(codes)) == len(codes)

    again = run_cli(story.env, "notify", "send", incident, "--officer", officer.username,
                    "--totp", codes_of.at(time.time() + 30))  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert len(story.sink.messages) == len(mails)

    # A patient checks a code from their own address; checks are limited per address
    # (docs/notifications.md), so this client checks a few and then meets the limit.
    accept = {"accept": "application/json"}
    verify = f"{story.server.url}/verify"
    for code in codes[:4]:
        answer = httpx.get(verify, params={"code": code}, headers=accept)
        assert answer.status_code == 200, answer.text
        assert answer.json()["genuine"] is True and answer.json()["channel"] == "email"
    forged = codes[0][:-1] + next(c for c in ALPHABET if c != codes[0][-1])
    answer = httpx.get(verify, params={"code": forged}, headers=accept)
    assert answer.status_code == 200 and answer.json()["genuine"] is False
    for _ in range(20):
        answer = httpx.get(verify, params={"code": codes[-1]}, headers=accept)
        if answer.status_code == 429:
            break
    assert answer.status_code == 429 and int(answer.headers["retry-after"]) > 0
