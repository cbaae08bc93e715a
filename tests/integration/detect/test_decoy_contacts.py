"""Decoy contact details through the gate (SQLite and PostgreSQL): planted by a privacy
officer (kept only as a keyed token), written into a decoy record without an alert; the
same phone number in a new patient's data is a critical alert that is raised only; a
search for the decoy email is critical at once and suspends the searcher."""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import Result
from sqlalchemy import select
from typer.testing import CliRunner

from carevault.cli import app
from carevault.containment.state import Mode
from carevault.db import read_transaction
from carevault.detect import alerts_as_dicts
from carevault.detect.desk import OfficerCode
from carevault.detect.tables import detect_flag
from carevault.domain.roles import Role
from tests.integration.detect.conftest import Clinic
from tests.support.staff import make_staff


def _officer(clinic: Clinic) -> OfficerCode:
    return OfficerCode(clinic.officer.account.username, clinic.officer.totp())


def _plant(clinic: Clinic, decoy: str, phone: str, email: str) -> None:
    """The decoy patient's record written whole with the decoy phone number and email
    address (not read first: opening a decoy patient is an alert of its own)."""
    current = {
        "resourceType": "Patient",
        "id": decoy,
        "name": [{"family": "Chan7", "given": ["Tai Man"]}],
        "telecom": [{"system": "email", "value": email}, {"system": "phone", "value": phone}],
        "managingOrganization": {"reference": "Organization/clinic-a"},
    }
    response = clinic.web.put_json(f"/fhir/Patient/{decoy}", current, **clinic.desk.headers)
    assert response.status_code == 200, response.text


def test_decoy_contacts_in_data_and_searches_raise_critical_alerts(clinic: Clinic) -> None:
    detection = clinic.services.detection
    assert detection is not None
    decoy = clinic.patients[7]
    detection.desk.flag(_officer(clinic), "decoy", decoy)
    email = detection.desk.decoy_contact(_officer(clinic), "email", domain="mail.example.org")
    phone = detection.desk.decoy_contact(_officer(clinic), "phone")
    with read_transaction(clinic.services.engine) as connection:
        subjects = list(
            connection.execute(
                select(detect_flag.c.subject).where(detect_flag.c.kind == "decoy-contact")
            ).scalars()
        )
    assert len(subjects) == 2
    assert not any(email.split("@")[0] in s or phone in s for s in subjects)

    # Planting: the decoy patient's own record carries them; no alert.
    _plant(clinic, decoy, phone, email)
    assert alerts_as_dicts(clinic.services) == []
    # An ordinary search: nothing.
    response = clinic.web.get("/fhir/Patient?phone=91234567", headers=clinic.desk.headers)
    assert response.status_code == 200

    # The phone number comes back in a new registration, spelled otherwise.
    spelled = f"+852 {phone[:4]}-{phone[4:]}"
    response = clinic.web.post_json(
        "/fhir/Patient",
        {
            "resourceType": "Patient",
            "name": [{"family": "Fraud", "given": ["Someone"]}],
            "telecom": [{"system": "phone", "value": spelled}],
            "managingOrganization": {"reference": "Organization/clinic-a"},
        },
        **clinic.desk.headers,
    )
    assert response.status_code == 201, response.text
    (data,) = [a for a in alerts_as_dicts(clinic.services) if a["detector"].startswith("decoy")]
    assert (data["detector"], data["severity"], data["action"]) == (
        "decoy-contact-data", "critical", "raise",
    )  # fmt: skip
    assert "decoy phone number" in data["explanation"]
    assert data["first_position"] is not None

    # Someone searches for the decoy email address: critical at once, suspended.
    response = clinic.web.get(f"/fhir/Patient?email={email.upper()}", headers=clinic.desk.headers)
    assert response.status_code == 200
    found = {a["detector"]: a for a in alerts_as_dicts(clinic.services)}
    search = found["decoy-contact"]
    assert (search["severity"], search["action"]) == ("critical", "suspend")
    assert search["account"] == clinic.desk.account.username
    active = clinic.services.containment.refresh().active
    assert [c.mode for c in active] == [Mode.ACCOUNT_SUSPENDED]
    assert clinic.read(clinic.desk, clinic.patients[0]) == 401


def test_the_cli_plants_decoys_and_records_staff_kin(clinic: Clinic, tmp_path: Path) -> None:
    home = str(clinic.services.settings.home)
    env = {"CAREVAULT_DATABASE_URL": clinic.services.settings.database_url or ""}
    env = {k: v for k, v in env.items() if v}
    runner = CliRunner()
    officer = clinic.officer.account.username

    def run(*args: str, signed: bool = True) -> Result:
        # A code only where the command signs the officer in: each is single-use, three fit
        # in one 30 s step, and a fourth would wait for the next step.
        code = ["--totp", clinic.officer.totp()] if signed else []
        return runner.invoke(
            app, [*args, "--officer", officer, *code, "--home", home], env=env
        )  # fmt: skip

    planted = run("alerts", "decoy-contact", "--kind", "phone")
    assert planted.exit_code == 0, planted.output
    assert re.fullmatch(r"[5679]\d{7}\n", planted.output)

    hr = tmp_path / "hr.json"
    hr.write_text(json.dumps({"surname": "Chan", "address": ["Flat A, 3/F", "12 Hill Road"]}))
    done = run("alerts", "identify", clinic.desk.account.username, "--from", str(hr))
    assert done.exit_code == 0, done.output
    assert "surname, household, building" in done.output
    assert "Chan" not in done.output and "Hill" not in done.output
    hr.write_text(json.dumps({"surname": "Chan", "shoe_size": 9}))
    # Refused before any sign-in: no code is asked for (a prompt would abort otherwise).
    wrong = run("alerts", "identify", clinic.desk.account.username, "--from", str(hr), signed=False)
    assert wrong.exit_code != 0 and '"surname", "address" and/or "hkid" only' in wrong.output
    hr.write_text(json.dumps({"hkid": "not a number"}))
    bad = run("alerts", "identify", clinic.desk.account.username, "--from", str(hr))
    assert bad.exit_code != 0 and "hkid: not an HKID number" in bad.output


def test_a_decoy_is_spotted_however_the_searcher_spells_it(clinic: Clinic) -> None:
    """Dots, spaces, dashes and +852 in a number; an address in another case (folded
    as the index folds it: a KELVIN SIGN for its K) with whitespace around it. Each
    spelling finds the decoy patient, so each is a critical alert."""
    detection = clinic.services.detection
    assert detection is not None
    phone = detection.desk.decoy_contact(_officer(clinic), "phone")
    email = detection.desk.decoy_contact(
        _officer(clinic), "email", value="kai.wong@mail.example.org"
    )
    spellings = [
        ("phone", f"+852.{phone[:4]}.{phone[4:]}"),
        ("phone", f"61234567, +852 {phone[:4]} - {phone[4:]}"),
        ("email", f"  \u212a{email[1:].upper()} "),
    ]
    for param, value in spellings:
        searcher = make_staff(clinic.services, Role.FRONT_DESK, ["clinic-a"])
        response = clinic.web.get("/fhir/Patient", params={param: value}, headers=searcher.headers)
        assert response.status_code == 200, response.text
        (alert,) = [
            a for a in alerts_as_dicts(clinic.services) if a["account"] == searcher.account.username
        ]
        assert (alert["detector"], alert["severity"]) == ("decoy-contact", "critical")


def test_a_decoy_is_spotted_in_every_spelling_the_search_reads_as_it(clinic: Clinic) -> None:
    """Adversary round 40: a spelling the search reads as the decoy, which the decoy
    watch read otherwise. A phone search keeps only the digits of its value and every
    search value drops a backslash before any character (``fhir/query.py:
    split_values``); the watch read the raw value (``x95020794`` a run of digits touching
    a letter, ``9502\\0794`` two short runs, ``kai.wong\\@mail.example.org`` no address).
    Each finds the decoy patient, so a searcher holding taken data (a front desk of
    another clinic, who gets no match and so opens no honeytoken) raised no alert. The
    gate shows the watch the values the search runs on (``gate/core.py:
    _searched_contacts``)."""
    detection = clinic.services.detection
    assert detection is not None
    decoy = clinic.patients[7]
    detection.desk.flag(_officer(clinic), "decoy", decoy)
    phone = detection.desk.decoy_contact(_officer(clinic), "phone")
    email = detection.desk.decoy_contact(
        _officer(clinic), "email", value="kai.wong@mail.example.org"
    )
    _plant(clinic, decoy, phone, email)
    spellings = [
        ("phone", f"x{phone}"),
        ("phone", f"tel{phone}"),
        ("phone", f"{phone[:4]}\\{phone[4:]}"),
        ("email", email.replace("@", "\\@")),
        ("email", email.replace(".", "\\.", 1)),
    ]
    missed = []
    for param, value in spellings:
        # The searcher's own clinic holds the decoy: the search finds it, as the index
        # reads the value (the decoy is this spelling's match).
        finder = make_staff(clinic.services, Role.FRONT_DESK, ["clinic-a"])
        found = clinic.web.get("/fhir/Patient", params={param: value}, headers=finder.headers)
        assert found.status_code == 200 and found.json()["total"] == 1, (value, found.text)
        # A front desk of another clinic, searching with data taken elsewhere.
        searcher = make_staff(clinic.services, Role.FRONT_DESK, ["clinic-b"])
        response = clinic.web.get("/fhir/Patient", params={param: value}, headers=searcher.headers)
        assert response.status_code == 200, response.text
        assert response.json()["total"] == 0
        raised = [
            a["detector"]
            for a in alerts_as_dicts(clinic.services)
            if a["account"] == searcher.account.username
        ]
        if raised != ["decoy-contact"]:
            missed.append((value, raised))
    assert missed == []
