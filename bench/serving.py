"""Deployments that benchmarks measure: a data directory, its database, its seed data,
and how full the ledgers are (the server process itself is in ``bench.server``).

Each deployment is built from one dict of ``Settings`` fields, so the in-process
seeding and the server process (which reads ``CAREVAULT_*`` variables) always see the
same configuration. Seeding writes through the gate like ``carevault seed`` does, but
only what a read benchmark needs: the clinic group's directory resources, N patients
(their Patient resource, or their whole chart with ``charts=True``), the staff
accounts of the roles asked for, and the public demo app.
"""

from __future__ import annotations

import os
import random
import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select, text
from sqlalchemy.pool import NullPool

from carevault.bootstrap import Services, build_services, initialise
from carevault.bulk.loader import Loader
from carevault.bulk.sources import Item
from carevault.config import Settings
from carevault.db import temporary_database
from carevault.domain.roles import Role
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.ledger.schema import AUDIT_LEDGER, audit_tables
from carevault.ledger.tables import LedgerTables
from carevault.ledger.unwrap import UNWRAP_LEDGER, unwrap_tables
from carevault.sim.elements import new_id
from carevault.sim.facts import StaffMember
from carevault.sim.group import ClinicGroup, build_group
from carevault.sim.loader import SEED_CALLER, register_demo_app
from carevault.sim.names import person_name, pick_origin
from carevault.sim.patients import Identities, generate_patients
from carevault.vault.tables import resource_head
from carevault.vault.writer import Put

#: Patients per transaction of the benchmarks' own seeding (through ``gate.write``).
PATIENTS_PER_TRANSACTION = 25

PG_ADMIN_URL = os.environ.get(
    "CAREVAULT_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
HKID_SYSTEM = "http://carevault.hk/sid/hkid"


# --- databases ---------------------------------------------------------------------------


def postgres_database(label: str) -> AbstractContextManager[str]:
    """A PostgreSQL database of this run's own; dropped afterwards, whatever happens."""
    return temporary_database(PG_ADMIN_URL, f"carevault_bench_{label}")


def postgres_version() -> str | None:
    try:
        admin = create_engine(PG_ADMIN_URL)
        with admin.connect() as connection:
            version = connection.execute(text("SHOW server_version")).scalar()
        admin.dispose()
    except Exception:  # noqa: BLE001 - only for the record of the machine
        return None
    return str(version)


# --- deployments -------------------------------------------------------------------------


@dataclass(frozen=True)
class Deployment:
    """One configuration of the server: ``Settings`` fields, plus process environment."""

    label: str
    fields: dict[str, Any]
    environment: dict[str, str] = field(default_factory=dict)

    def settings(self) -> Settings:
        return Settings(**self.fields)

    def server_environment(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("CAREVAULT_")}
        for name, value in self.fields.items():
            if value is None:
                continue
            rendered = str(value).lower() if isinstance(value, bool) else str(value)
            env[f"CAREVAULT_{name.upper()}"] = rendered
        env.update(self.environment)
        return env


def deployment(
    label: str,
    home: Path,
    database_url: str | None,
    *,
    encryption: bool = True,
    environment: dict[str, str] | None = None,
    **fields: Any,
) -> Deployment:
    """The benchmark environment's settings: cheap argon2, direct grant, long tokens."""
    values: dict[str, Any] = {
        "environment": "benchmark",
        "home": home,
        "database_url": database_url,
        "encryption": encryption,
        "argon2_memory_kib": 8192,
        "argon2_time_cost": 1,
        "checkpoint_seconds": 0,
        "direct_grant": True,
        # A token must outlive the whole run: a refresh mid-run would be measured.
        "access_token_seconds": 3600,
        # Throughput is what is measured: request rate limits would shape it.
        "rate_limit_source_per_second": 0,
        "rate_limit_account_per_second": 0,
        **fields,
    }
    return Deployment(label, values, environment or {})


# --- seeding -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Login:
    username: str
    password: str
    totp_secret: str
    role: str
    account_id: str
    clinic_ids: frozenset[str]
    practitioner_id: str | None


@dataclass(frozen=True)
class SeededPatient:
    resource_id: str
    hkid: str
    home_clinic_id: str


@dataclass
class Seeded:
    patients: list[SeededPatient]
    logins: dict[str, list[Login]]
    resources: int
    seconds: float

    def login(self, role: str, index: int = 0) -> Login:
        return self.logins[role][index]


def seed(
    services: Services,
    *,
    patients: int,
    seed_value: int = 7,
    charts: bool = False,
    roles: Sequence[str] = ("privacy_officer",),
    accounts_per_role: int = 1,
    today: date | None = None,
) -> Seeded:
    """Write the group's directory, ``patients`` patients and the staff accounts asked for.

    Without ``charts`` only each patient's Patient resource is written (and the
    appointment book's slots are left out): a read of Patient costs the same, and
    seeding takes seconds rather than minutes.
    """
    started = time.perf_counter()
    today = today or date.today()
    group = build_group(seed_value, today)
    directory = [r for r in group.resources() if charts or r["resourceType"] != "Slot"]
    services.gate.write(SEED_CALLER, [_put(resource) for resource in directory])
    written = len(directory)
    seeded: list[SeededPatient] = []
    records = generate_patients(group, patients, seed_value, today)
    while batch := list(islice(records, PATIENTS_PER_TRANSACTION)):
        operations = [
            _put(resource)
            for record in batch
            for resource in ((record.patient, *record.resources) if charts else (record.patient,))
        ]
        services.gate.write(SEED_CALLER, operations)
        written += len(operations)
        seeded += [
            SeededPatient(record.patient["id"], record.hkid, record.home_clinic_id)
            for record in batch
        ]
    logins = add_logins(services, group.staff, roles, accounts_per_role)
    register_demo_app(services)
    return Seeded(seeded, logins, written, time.perf_counter() - started)


def add_logins(
    services: Services,
    staff: Sequence[StaffMember],
    roles: Sequence[str],
    accounts_per_role: int = 1,
) -> dict[str, list[Login]]:
    """Accounts for ``accounts_per_role`` members of each role (spread over the clinics),
    with one random password, and their TOTP secrets."""
    password = "-".join(secrets.token_urlsafe(6) for _ in range(3))
    logins: dict[str, list[Login]] = {}
    for role in roles:
        members = _spread([member for member in staff if member.role == role])
        for member in members[:accounts_per_role]:
            account, totp_secret = services.accounts.add(
                member.username,
                member.display_name,
                Role(member.role),
                list(member.clinic_ids),
                password,
                member.practitioner_id,
            )
            logins.setdefault(role, []).append(
                Login(
                    account.username,
                    password,
                    totp_secret,
                    role,
                    account.account_id,
                    frozenset(member.clinic_ids),
                    member.practitioner_id,
                )
            )
    return logins


def bulk_patients(
    group: ClinicGroup, patients: int, seed_value: int, today: date
) -> Iterator[tuple[dict[str, Any], SeededPatient]]:
    """``patients`` Patient resources alone (no chart), generated in a few microseconds
    each: an HKID (distinct, valid check digit), names as the simulator writes them, a
    phone number, gender, birth date and a home clinic of the group."""
    identities = Identities(seed_value)
    clinics = [clinic.id for clinic in group.clinics]
    for index in range(patients):
        rng = random.Random(f"bench-patient:{seed_value}:{index}")
        female = rng.random() < 0.53
        birth = today - timedelta(days=rng.randrange(95 * 365))
        name = person_name(rng, female, birth.year, pick_origin(rng))
        hkid = identities.hkids.number(index)
        clinic = rng.choice(clinics)
        patient_id = new_id(rng)
        resource: dict[str, Any] = {
            "resourceType": "Patient",
            "id": patient_id,
            "identifier": [{"use": "official", "system": HKID_SYSTEM, "value": hkid}],
            "active": True,
            "name": name.human_names(),
            "telecom": [{"system": "phone", "value": identities.phone(index), "use": "mobile"}],
            "gender": "female" if female else "male",
            "birthDate": birth.isoformat(),
            "managingOrganization": {"reference": f"Organization/{clinic}"},
        }
        yield resource, SeededPatient(patient_id, hkid, clinic)


def seed_bulk(
    services: Services,
    *,
    patients: int,
    seed_value: int = 7,
    roles: Sequence[str] = ("privacy_officer",),
    accounts_per_role: int = 1,
    today: date | None = None,
    progress: bool = False,
) -> Seeded:
    """The group's directory and ``patients`` Patient resources (no charts) through the
    bulk loader ``carevault seed`` and ``carevault import`` use (``bulk/loader.py``:
    batches of 2,000 records, one audit entry per patient per batch, the records
    CareVault's own so only their types are checked), then the staff accounts asked for.
    The fastest path there is to a large group; with ``progress`` a line per tenth."""
    started = time.perf_counter()
    today = today or date.today()
    group = build_group(seed_value, today)
    directory = [r for r in group.resources() if r["resourceType"] != "Slot"]
    seeded: list[SeededPatient] = []

    def resources() -> Iterator[dict[str, Any]]:
        yield from directory
        for resource, patient in bulk_patients(group, patients, seed_value, today):
            seeded.append(patient)
            yield resource

    total = len(directory) + patients
    step = max(total // 10, 1)
    done = 0

    def advance(count: int) -> None:
        nonlocal done
        if progress and (done + count) // step > done // step:
            rate = (done + count) / (time.perf_counter() - started)
            print(f"    {done + count:,} of {total:,} records, {rate:,.0f}/s", flush=True)
        done += count

    loader = Loader(services.gate, services.now_us, caller=SEED_CALLER, checker=None)
    items = (Item(line, resource) for line, resource in enumerate(resources(), 1))
    counts = loader.load(items, advance=advance)
    if counts.rejections or counts.accepted != total:
        raise RuntimeError(f"bulk seeding refused records: {list(counts.rejections.items())[:3]}")
    logins = add_logins(services, group.staff, roles, accounts_per_role)
    register_demo_app(services)
    return Seeded(seeded, logins, counts.accepted, time.perf_counter() - started)


def _spread(members: list[StaffMember]) -> list[StaffMember]:
    """Members in turn from each clinic (as listed), so a few accounts cover several clinics."""
    by_clinics: dict[tuple[str, ...], list[StaffMember]] = {}
    for member in members:
        by_clinics.setdefault(member.clinic_ids, []).append(member)
    queues = list(by_clinics.values())
    spread: list[StaffMember] = []
    while any(queues):
        spread += [queue.pop(0) for queue in queues if queue]
    return spread


def _put(resource: dict[str, Any]) -> Put:
    return Put(RESOURCE_TYPES[resource["resourceType"]], resource["id"], resource)


def prepare(target: Deployment, *, bulk: bool = False, **seed_options: Any) -> Seeded:
    """Initialise the data directory and seed it (``seed``, or with ``bulk`` the bulk
    loader: ``seed_bulk``); every service is closed afterwards.

    On PostgreSQL the new tables are then ANALYZEd, as autovacuum would do soon after a
    bulk load in production; without statistics (the test server runs with autovacuum
    off) the planner scans every Patient for a search by identifier.
    """
    settings = target.settings()
    initialise(settings)
    services = build_services(settings)
    try:
        seeded = (seed_bulk if bulk else seed)(services, **seed_options)
        if not settings.is_sqlite:
            with services.engine.connect() as connection:
                connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
        return seeded
    finally:
        services.close()


def patient_pseudonyms(services: Services) -> dict[str, str]:
    """Patient id → pseudonym, read from the clear metadata (for picking test subjects)."""
    with services.engine.connect() as connection:
        rows = connection.execute(
            select(resource_head.c.resource_id, resource_head.c.patient_pseudonym).where(
                resource_head.c.resource_type == "Patient"
            )
        ).all()
    return {row.resource_id: row.patient_pseudonym for row in rows}


class LedgerSizes:
    """How many entries a deployment's audit and unwrap ledgers hold, read from outside
    the server: the benchmarks check that every read was recorded, and count unwraps."""

    def __init__(self, target: Deployment) -> None:
        settings = target.settings()
        self._audit = create_engine(settings.resolved_database_url, poolclass=NullPool)
        self._keys = create_engine(settings.resolved_keys_database_url, poolclass=NullPool)

    @staticmethod
    def _size(engine: Any, tables: LedgerTables, name: str) -> int:
        head = tables.head
        with engine.connect() as connection:
            size = connection.execute(select(head.c.size).where(head.c.ledger == name)).scalar()
        return int(size or 0)

    def audit(self) -> int:
        return self._size(self._audit, audit_tables, AUDIT_LEDGER)

    def unwraps(self) -> int:
        return self._size(self._keys, unwrap_tables, UNWRAP_LEDGER)

    def close(self) -> None:
        self._audit.dispose()
        self._keys.dispose()
