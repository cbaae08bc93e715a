"""One seeded data directory per backend, shared by the seeding tests.

Seeding writes the whole clinic group (some 8,800 directory resources, mostly Slots)
and 193 staff accounts before the first patient: about ten seconds on SQLite and a
minute on PostgreSQL. So each backend is seeded once for all these tests, with the
same seed and date: SQLite in-process with ``seed_clinic_group``, PostgreSQL through
the command line (``carevault seed``). Comparing the two checks determinism across two
homes, two backends and both entry points at once.
"""

from __future__ import annotations

import re
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from carevault.bootstrap import Services, build_services
from carevault.config import Settings
from carevault.sim.group import ClinicGroup, build_group
from carevault.sim.loader import LOGINS_FILE, DemoLogin, SeedSummary, seed_clinic_group
from carevault.sim.patients import PatientRecord, generate_patients
from tests.conftest import BACKENDS, make_settings
from tests.support.server import environment, run_cli

SEED = 11
TODAY = date(2026, 11, 28)
PATIENTS = 30
FAST_ARGON2 = {"CAREVAULT_ARGON2_MEMORY_KIB": "8192", "CAREVAULT_ARGON2_TIME_COST": "1"}
_SEEDED = re.compile(
    r"Seeded (?P<group>.+): (?P<clinics>\d+) clinics, (?P<staff>\d+) staff, "
    r"(?P<patients>[\d,]+) patients, (?P<resources>[\d,]+) FHIR resources "
    r"in (?P<seconds>[\d.]+) s"
)
_PASSWORD = re.compile(r"Demo logins \(password for every account: (\S+)\):")


@dataclass(frozen=True)
class SeededHome:
    """A seeded data directory (its services closed), what seeding reported, and what it
    wrote: the group and every patient, regenerated from the same seed and date."""

    backend: str
    settings: Settings
    summary: SeedSummary
    group: ClinicGroup
    records: list[PatientRecord]
    cli: subprocess.CompletedProcess[str] | None = None


@contextmanager
def opened(settings: Settings) -> Iterator[Services]:
    """The services of an existing home, closed afterwards."""
    services = build_services(settings)
    try:
        yield services
    finally:
        services.close()


def expected_records(patients: int = PATIENTS) -> list[PatientRecord]:
    """The patients a seed of ``SEED`` on ``TODAY`` writes: every name, HKID, phone, email."""
    return list(generate_patients(build_group(SEED, TODAY), patients, SEED, TODAY))


def read_logins(path: Path) -> tuple[str, list[DemoLogin]]:
    """The shared password and every login of a demo-logins file."""
    lines = path.read_text().splitlines()
    password = re.fullmatch(r"# password for every account: (\S+)", lines[1])
    assert password is not None, lines[:3]
    logins = []
    for line in lines:
        if not line.startswith("#"):
            username, role, secret, name, clinics = line.split("\t")
            logins.append(DemoLogin(username, name, role, clinics, secret))
    return password[1], logins


@contextmanager
def schema_url(pg_database: str) -> Iterator[str]:
    """A schema of its own in the run's database (the shared fixture's is per test)."""
    schema = f"s_{secrets.token_hex(6)}"
    engine = create_engine(pg_database, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = make_url(pg_database).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with engine.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture(scope="package")
def sqlite_home(tmp_path_factory: pytest.TempPathFactory) -> SeededHome:
    settings = make_settings(tmp_path_factory.mktemp("sqlite") / "home")
    services = build_services(settings, create_keys=True, migrate=True)
    try:
        summary = seed_clinic_group(services, patients=PATIENTS, seed=SEED, today=TODAY)
    finally:
        services.close()
    return SeededHome("sqlite", settings, summary, build_group(SEED, TODAY), expected_records())


def _summary_printed(stdout: str, logins_file: Path) -> SeedSummary:
    """What ``carevault seed`` printed, as the summary it was made from."""
    seeded, password = _SEEDED.search(stdout), _PASSWORD.search(stdout)
    assert seeded is not None and password is not None, stdout
    file_password, logins = read_logins(logins_file)
    assert file_password == password[1]
    return SeedSummary(
        group=seeded["group"],
        clinics=int(seeded["clinics"]),
        staff=int(seeded["staff"]),
        patients=int(seeded["patients"].replace(",", "")),
        resources=int(seeded["resources"].replace(",", "")),
        seconds=float(seeded["seconds"]),
        password=password[1],
        logins=logins,
        logins_file=str(logins_file.resolve()),
    )


@pytest.fixture(scope="package")
def postgres_home(
    pg_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SeededHome]:
    with schema_url(pg_database) as url:
        settings = make_settings(tmp_path_factory.mktemp("postgres") / "home", url)
        env = environment(settings.home, settings.database_url, FAST_ARGON2)
        arguments = ["--patients", str(PATIENTS), "--seed", str(SEED), "--today", str(TODAY)]
        result = run_cli(env, "seed", *arguments, timeout=600)
        assert result.returncode == 0, result.stderr
        summary = _summary_printed(result.stdout, settings.home / LOGINS_FILE)
        yield SeededHome(
            "postgres", settings, summary, build_group(SEED, TODAY), expected_records(), result
        )


@pytest.fixture(scope="package", params=BACKENDS)
def seeded(request: pytest.FixtureRequest) -> SeededHome:
    """The seeded home of each backend in turn."""
    home = request.getfixturevalue(f"{request.param}_home")
    assert isinstance(home, SeededHome)
    return home
