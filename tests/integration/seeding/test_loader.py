"""Seeding: deterministic for a seed, counted truly, with private demo logins and valid HKIDs."""

from __future__ import annotations

import json
import re
import stat
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyotp
import pytest
from sqlalchemy import func, select

import carevault.sim.loader as sim_loader
from carevault.access.tables import care_relationship, staff_account
from carevault.bootstrap import Services, build_services, initialise
from carevault.config import Settings
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate import Caller
from carevault.sim import hkid
from carevault.sim.group import build_group
from carevault.sim.loader import DEMO_CLIENT_ID, LOGINS_FILE, already_seeded
from carevault.sim.patients import HKID_SYSTEM
from carevault.vault.tables import resource_head, search_date, search_token
from tests.integration.seeding.conftest import PATIENTS, SeededHome, opened, read_logins

CALLER = Caller(principal="system:test")
#: Patients whose whole compartment (every resource of theirs) is compared between homes.
COMPARTMENTS = 3


# --- what a home holds ------------------------------------------------------------------------


def _body(raw: bytes | None) -> dict[str, Any]:
    """A resource as read back, without ``meta``: lastUpdated is the time of the write."""
    assert raw is not None
    body: dict[str, Any] = json.loads(raw)
    body.pop("meta", None)
    return body


@dataclass(frozen=True)
class Stored:
    heads: set[tuple[Any, ...]]
    pseudonyms: dict[str, str]
    patients: dict[str, dict[str, Any]]
    compartments: dict[str, dict[tuple[str, str], dict[str, Any]]]


def stored(settings: Settings) -> Stored:
    """What a seeded home holds, read back through the gate as the system."""
    with opened(settings) as services, services.engine.connect() as connection:
        rows = connection.execute(select(resource_head)).all()
        heads = {
            (r.resource_type, r.resource_id, r.version_id, r.deleted, r.clinic_id, r.status)
            for r in rows
        }
        pseudonyms = {
            r.resource_id: r.patient_pseudonym for r in rows if r.resource_type == "Patient"
        }
        patient_ids = sorted(pseudonyms)
        patient = RESOURCE_TYPES["Patient"]
        patients = {
            pid: _body(services.gate.read(CALLER, patient, pid).body) for pid in patient_ids
        }
        compartments = {
            pid: {
                (item.head.resource_type, item.head.resource_id): _body(item.body)
                for item in services.gate.everything(CALLER, pid).records
            }
            for pid in patient_ids[:COMPARTMENTS]
        }
    return Stored(heads, pseudonyms, patients, compartments)


@pytest.fixture(scope="module")
def read_back() -> Callable[[SeededHome], Stored]:
    """``stored`` once per home: each read through the gate is also a ledger append."""
    cache: dict[str, Stored] = {}

    def read(home: SeededHome) -> Stored:
        if home.backend not in cache:
            cache[home.backend] = stored(home.settings)
        return cache[home.backend]

    return read


def test_the_same_seed_gives_the_same_resources_in_two_homes(
    sqlite_home: SeededHome, postgres_home: SeededHome, read_back: Callable[[SeededHome], Stored]
) -> None:
    """One home seeded in-process on SQLite, the other by the CLI on PostgreSQL."""
    first, second = read_back(sqlite_home), read_back(postgres_home)
    assert len(first.heads) == sqlite_home.summary.resources
    assert first.heads == second.heads
    assert first.patients == second.patients
    assert first.compartments == second.compartments
    assert sum(len(resources) for resources in first.compartments.values()) > 3 * COMPARTMENTS


def test_patient_bodies_read_back_are_the_generated_ones(
    seeded: SeededHome, read_back: Callable[[SeededHome], Stored]
) -> None:
    home = read_back(seeded)
    assert home.patients == {
        record.patient["id"]: _body(json.dumps(record.patient).encode())
        for record in seeded.records
    }


def test_patient_pseudonyms_are_random_not_derived_from_the_seed(
    sqlite_home: SeededHome, postgres_home: SeededHome, read_back: Callable[[SeededHome], Stored]
) -> None:
    first, second = read_back(sqlite_home), read_back(postgres_home)
    assert first.pseudonyms.keys() == second.pseudonyms.keys()
    assert all(first.pseudonyms[pid] != second.pseudonyms[pid] for pid in first.pseudonyms)
    assert not set(first.pseudonyms.values()) & set(first.pseudonyms)


# --- the summary ----------------------------------------------------------------------------


def test_the_summary_counts_what_is_stored(seeded: SeededHome) -> None:
    summary, group = seeded.summary, seeded.group
    expected = len(list(group.resources())) + sum(
        1 + len(record.resources) for record in seeded.records
    )
    with opened(seeded.settings) as services, services.engine.connect() as connection:
        heads = connection.execute(select(resource_head)).all()
        accounts = connection.execute(select(staff_account.c.username)).scalars().all()
        demo_app = services.clients.get(DEMO_CLIENT_ID)
    by_type = Counter(row.resource_type for row in heads)
    assert summary.resources == expected == len(heads)
    assert summary.patients == PATIENTS == by_type["Patient"]
    assert summary.clinics == len(group.clinics) == by_type["Location"]
    assert summary.staff == len(group.staff) == len(accounts) == len(summary.logins)
    assert summary.group == group.name
    assert all(row.version_id == 1 and not row.deleted for row in heads)
    assert demo_app is not None


def test_a_fresh_home_is_not_seeded(services: Services) -> None:
    assert not already_seeded(services)


def test_a_seeded_home_is_seeded(seeded: SeededHome) -> None:
    with opened(seeded.settings) as services:
        assert already_seeded(services)


# --- demo logins ----------------------------------------------------------------------------


def test_demo_logins_file_is_private_and_lists_every_staff_member_with_a_totp_secret(
    seeded: SeededHome,
) -> None:
    path = seeded.settings.home / LOGINS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    password, logins = read_logins(path)
    assert password == seeded.summary.password
    assert {login.username: (login.role, login.display_name) for login in logins} == {
        member.username: (member.role, member.display_name) for member in seeded.group.staff
    }
    for login in logins:
        assert re.fullmatch(r"[A-Z2-7]{16,}", login.totp_secret), login
        assert pyotp.TOTP(login.totp_secret).now().isdigit()
    assert len({login.totp_secret for login in logins}) == len(logins)


def test_a_demo_login_signs_in_with_the_listed_password_and_totp_secret(
    seeded: SeededHome,
) -> None:
    password, logins = read_logins(seeded.settings.home / LOGINS_FILE)
    physician = next(login for login in logins if login.role == "physician")
    code = pyotp.TOTP(physician.totp_secret).now()
    with opened(seeded.settings) as services:
        account = services.accounts.authenticate(physician.username, password, code)
    assert account.username == physician.username


# --- the command line -----------------------------------------------------------------------


def test_cli_seed_prints_the_summary_and_a_demo_login_per_role(postgres_home: SeededHome) -> None:
    assert postgres_home.cli is not None
    output = postgres_home.cli.stdout
    group = postgres_home.group
    expected = len(list(group.resources())) + sum(
        1 + len(record.resources) for record in postgres_home.records
    )
    assert (
        f"Seeded {group.name}: {len(group.clinics)} clinics, {len(group.staff)} staff, "
        f"{PATIENTS} patients, {expected:,} FHIR resources in "
    ) in output
    logins_file = (postgres_home.settings.home / LOGINS_FILE).resolve()
    assert f"Every staff login, with its TOTP secret: {logins_file}" in output
    password, logins = read_logins(logins_file)
    table = output.split(f"Demo logins (password for every account: {password}):\n", 1)[1]
    for role in {member.role for member in group.staff}:
        first = next(login for login in logins if login.role == role)
        row = rf"^  {role} +{re.escape(first.username)} +TOTP secret {first.totp_secret} "
        assert re.search(row, table, re.MULTILINE), (role, table)
    assert f"Client app: {DEMO_CLIENT_ID}" in table


# --- HKID numbers -----------------------------------------------------------------------------


def check_digit(prefix: str, digits: str) -> str:
    """The HKID check digit, written here apart from ``carevault.sim.hkid``: a single-letter
    prefix is padded with a space worth 36, letters are A=10 to Z=35, the eight characters
    are weighted 9 to 2, and the check digit makes the sum divisible by 11 (10 is "A")."""
    values = [
        36 if ch == " " else ord(ch) - ord("A") + 10 if ch.isalpha() else int(ch)
        for ch in prefix.rjust(2) + digits
    ]
    remainder = sum(w * v for w, v in zip(range(9, 1, -1), values, strict=True)) % 11
    check = (11 - remainder) % 11
    return "A" if check == 10 else str(check)


def printed_parts(number: str) -> tuple[str, str, str]:
    """Prefix, serial and check digit of an HKID number printed as ``A123456(3)``."""
    match = re.fullmatch(r"([A-Z]{1,2})(\d{6})\(([0-9A])\)", number)
    assert match is not None, number
    prefix, digits, check = match.groups()
    return prefix, digits, check


@pytest.mark.parametrize("number", ["A123456(3)", "G123456(A)", "AB123456(9)", "CA182361(1)"])
def test_the_independent_check_digit_agrees_with_published_examples(number: str) -> None:
    prefix, digits, check = printed_parts(number)
    assert check_digit(prefix, digits) == check == hkid.check_digit(prefix, digits)


def test_seeded_patients_have_hkid_numbers_with_valid_check_digits(
    seeded: SeededHome, read_back: Callable[[SeededHome], Stored]
) -> None:
    numbers = [
        identifier["value"]
        for body in read_back(seeded).patients.values()
        for identifier in body["identifier"]
        if identifier["system"] == HKID_SYSTEM
    ]
    assert len(numbers) == PATIENTS == len(set(numbers))
    for number in numbers:
        prefix, digits, check = printed_parts(number)
        assert check_digit(prefix, digits) == check, number
        assert hkid.is_valid(number)


# --- worked out beside the writer ---------------------------------------------------------------


def _what_a_seeding_stores(services: Services) -> tuple[Any, ...]:
    """Per record: clinic, status, whose (by Patient id: pseudonyms are random), how many
    search tokens (their values are keyed per home), clear dates, care relationships."""
    with services.engine.connect() as connection:
        heads = connection.execute(select(resource_head)).all()
        tokens = connection.execute(
            select(search_token.c.row_id, func.count()).group_by(search_token.c.row_id)
        ).all()
        dates = connection.execute(select(search_date)).all()
        care = connection.execute(select(care_relationship)).all()
    record = {row.row_id: (row.resource_type, row.resource_id) for row in heads}
    whose = {
        row.patient_pseudonym: row.resource_id for row in heads if row.resource_type == "Patient"
    }
    counted = dict(tokens)
    return (
        {
            record[row.row_id]: (
                row.clinic_id,
                row.status,
                whose.get(row.patient_pseudonym),
                counted.get(row.row_id, 0),
            )
            for row in heads
        },
        sorted(
            ((record[row.row_id], row.param, row.low_us, row.high_us) for row in dates), key=repr
        ),
        sorted(
            (
                (
                    record[row.source_row_id],
                    whose[row.patient_pseudonym],
                    row.clinic_id,
                    row.practitioner_token is not None,
                    row.valid_from_us,
                    row.valid_until_us,
                )
                for row in care
            ),
            key=repr,
        ),
    )


def test_a_seeding_worked_out_beside_the_writer_stores_what_one_worked_out_in_it_stores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A large seeding sends each record as its bytes to a process that works out its
    # search terms, references, clear dates and categories: the same as the writer does.
    found = []
    for name, from_patients in (("writer", 10**9), ("beside", 0)):
        monkeypatch.setattr(sim_loader, "CHECKING_FROM", from_patients)
        settings = Settings(home=tmp_path / name, environment="test", checkpoint_seconds=0)
        initialise(settings)
        services = build_services(settings)
        try:
            group = build_group(7, None)
            assert sim_loader.seed_patients(services, group, 8, 7, batch_size=150) > 0
            found.append(_what_a_seeding_stores(services))
        finally:
            services.close()
    assert found[0] == found[1]
    assert found[0][1] and found[0][2]
