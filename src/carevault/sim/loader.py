"""Seeding: the synthetic clinic group written through the gate, like any other write.

Every resource passes the one path (validated, encrypted under its patient's key,
its care relationships derived, its write recorded in the audit ledger), in
transactions of a few dozen patients each. Staff get accounts with a random demo
password and their own TOTP secrets, written to ``<home>/demo-logins.txt`` (0600).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from carevault.bootstrap import Services
from carevault.bulk.checking import Checker, default_workers
from carevault.bulk.journal import Journal
from carevault.bulk.loader import Loader, Position
from carevault.bulk.sources import Item
from carevault.domain.roles import Role
from carevault.fhir import jsonio
from carevault.gate import Caller
from carevault.keys.files import write_private
from carevault.sim.facts import StaffMember
from carevault.sim.group import ClinicGroup, build_group
from carevault.sim.patients import generate_patients

SEED_CALLER = Caller(principal="system:seed", purpose="HOPERAT")
#: Records per transaction when seeding.
BATCH_SIZE = 2000
#: Patients from which a seeding works out the records' search terms, references and
#: categories in a process beside the writer (the demo's 20,000): the process takes about
#: two seconds of CPU to start and each record costs more CPU in all (written out, sent,
#: read again), which a small group (the tests' dozens of patients) would not win back.
CHECKING_FROM = 5000
LOGINS_FILE = "demo-logins.txt"
#: The public app registered with the demo: sign in with it (authorization code + PKCE,
#: or the direct grant the demo turns on).
DEMO_CLIENT_ID = "demo-app"
DEMO_CLIENT_SCOPES = "openid fhirUser offline_access user/*.cruds patient/*.rs"
DEMO_REDIRECT_URIS = ("http://127.0.0.1:8765/callback", "http://localhost:8765/callback")


@dataclass(frozen=True)
class DemoLogin:
    username: str
    display_name: str
    role: str
    clinics: str
    totp_secret: str


@dataclass
class SeedSummary:
    group: str
    clinics: int
    staff: int
    patients: int
    resources: int
    seconds: float
    password: str | None = None
    logins: list[DemoLogin] = field(default_factory=list)
    logins_file: str | None = None

    def describe(self) -> str:
        rate = self.resources / self.seconds if self.seconds else 0.0
        lines = [
            f"Seeded {self.group}: {self.clinics} clinics, {self.staff} staff, "
            f"{self.patients:,} patients, {self.resources:,} FHIR resources "
            f"in {self.seconds:.1f} s ({rate:,.0f} resources/s)."
        ]
        if self.logins_file:
            lines.append(f"Every staff login, with its TOTP secret: {self.logins_file}")
        return "\n".join(lines)

    def login_table(self) -> str:
        """One login per role: enough for a newcomer to sign in as each kind of user."""
        if not self.logins:
            return ""
        seen: dict[str, DemoLogin] = {}
        for login in self.logins:
            seen.setdefault(login.role, login)
        width = max(len(login.username) for login in seen.values())
        rows = [
            f"  {login.role:<16} {login.username:<{width}}  TOTP secret {login.totp_secret}"
            f"  ({login.clinics})"
            for login in seen.values()
        ]
        return "\n".join(
            [
                f"Demo logins (password for every account: {self.password}):",
                *rows,
                f"  Client app: {DEMO_CLIENT_ID} (public; redirect {DEMO_REDIRECT_URIS[0]})",
                "  A TOTP code: python -c \"import pyotp; print(pyotp.TOTP('<secret>').now())\"",
            ]
        )


def register_demo_app(services: Services) -> None:
    """The public app the demo signs in with (once)."""
    if services.clients.get(DEMO_CLIENT_ID) is None:
        services.admin.add_client(
            SEED_CALLER.principal,
            DEMO_CLIENT_ID,
            "CareVault demo app",
            confidential=False,
            scopes=DEMO_CLIENT_SCOPES,
            redirect_uris=DEMO_REDIRECT_URIS,
        )


def already_seeded(services: Services) -> bool:
    return bool(services.accounts.all())


def seed_clinic_group(
    services: Services,
    *,
    patients: int,
    seed: int,
    today: date | None = None,
    progress: bool = False,
    staff_accounts: bool = True,
    batch_size: int = BATCH_SIZE,
) -> SeedSummary:
    started = time.perf_counter()
    group = build_group(seed, today)
    written = 0
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not progress,
    ) as bar:
        task = bar.add_task("patients", total=patients)
        written += seed_patients(
            services, group, patients, seed, batch_size, lambda count: bar.advance(task, count)
        )
    if services.engine.dialect.name == "postgresql":
        # Fresh statistics, so that search plans start from the search-token index
        # rather than every row (autovacuum would get there later, if it is on).
        with services.engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    summary = SeedSummary(
        group=group.name,
        clinics=len(group.clinics),
        staff=len(group.staff),
        patients=patients,
        resources=written,
        seconds=0.0,
    )
    if staff_accounts:
        _add_staff(services, group, summary)
        register_demo_app(services)
    summary.seconds = time.perf_counter() - started
    return summary


def seed_key(group: ClinicGroup, seed: int, patients: int, *, directory: bool) -> str:
    """How a seeding's progress is known in the import journal (``bulk/journal.py``)."""
    text = f"seed:{group.name}:{seed}:{patients}:{group.today.isoformat()}:{directory}"
    return hashlib.sha256(text.encode()).hexdigest()


def seeding_begun(services: Services, group: ClinicGroup, seed: int, patients: int) -> bool:
    """Whether a seeding of ``patients`` without the directory (the demo's, in the
    background) has begun in this home: only such a one is carried on."""
    key = seed_key(group, seed, patients, directory=False)
    return Journal(services.engine, services.keys).progress(key) is not None


def seed_patients(
    services: Services,
    group: ClinicGroup,
    patients: int,
    seed: int,
    batch_size: int = BATCH_SIZE,
    advance: Callable[[int], None] | None = None,
    *,
    directory: bool = True,
) -> int:
    """The group's directory (unless ``directory`` is False: loaded already), then the
    patients and their records, through the bulk
    loader (``bulk/loader.py``): the same path as ``carevault import``, one audit entry
    per patient per batch. The simulator's records are CareVault's own, so only their
    types are checked (the tests validate every kind it makes). Resumable: a seeding
    interrupted carries on after its last committed batch. ``advance`` is told of each
    patient done."""
    journal = Journal(services.engine, services.keys)
    key = seed_key(group, seed, patients, directory=directory)
    progress = journal.start(key, f"seed of {patients} patients", 0, services.now_us())
    if progress.finished:
        return 0
    # The records are CareVault's own: only their types are checked (in the writer, or for
    # a large group beside it, sent as their bytes, as an import sends its lines).
    beside = patients >= CHECKING_FROM
    checker = Checker(services.fhir.limits, default_workers(), validate=False) if beside else None
    loader = Loader(
        services.gate, services.now_us, caller=SEED_CALLER, checker=checker, batch_size=batch_size
    )
    patient_lines: set[int] = set()

    def items() -> Iterator[Item]:
        line = 0
        for resource in group.resources() if directory else ():
            line += 1
            if line > progress.items_done:
                yield Item(line, resource, raw=jsonio.dumps(resource) if beside else None)
        for record in generate_patients(group, patients, seed, group.today):
            for resource in (record.patient, *record.resources):
                line += 1
                if line > progress.items_done:
                    if resource["resourceType"] == "Patient":
                        patient_lines.add(line)
                    yield Item(line, resource, raw=jsonio.dumps(resource) if beside else None)

    counted = progress.items_done

    def done(count: int) -> None:
        nonlocal counted
        counted += count
        finished = {line for line in patient_lines if line <= counted}
        patient_lines.difference_update(finished)
        if advance is not None:
            advance(len(finished))

    try:
        counts = loader.load(
            items(),
            start=progress.items_done,
            position=Position(key, journal),
            pending=progress.pending_lines,
            advance=done,
        )
    finally:
        if checker is not None:
            checker.close()
    journal.finish(key, services.now_us())
    return counts.accepted


def _add_staff(services: Services, group: ClinicGroup, summary: SeedSummary) -> None:
    password = "-".join(secrets.token_urlsafe(6) for _ in range(3))
    # Every demo account shares this password, so it is hashed (argon2id) once, and
    # checked once: the check costs as much as the hash.
    shared_hash = services.accounts.passwords.hash(password)
    checked = services.accounts.passwords.verify(shared_hash, password)

    def add(member: StaffMember) -> DemoLogin:
        account, totp_secret = services.accounts.add(
            member.username,
            member.display_name,
            Role(member.role),
            list(member.clinic_ids),
            password,
            member.practitioner_id,
            password_hash=shared_hash,
            hash_checked=checked,
        )
        clinics = (
            f"all {len(group.clinics)} clinics"
            if len(member.clinic_ids) == len(group.clinics)
            else ", ".join(
                clinic.name for clinic in group.clinics if clinic.id in member.clinic_ids
            )
        )
        return DemoLogin(account.username, member.display_name, member.role, clinics, totp_secret)

    with ThreadPoolExecutor(max_workers=4) as pool:
        summary.logins = list(pool.map(add, group.staff))
    summary.password = password
    lines = [
        "# CareVault demo logins. Keep this file private; it signs in as every staff member.",
        f"# password for every account: {password}",
        "# username\trole\tTOTP secret\tname\tclinics",
        *(
            f"{login.username}\t{login.role}\t{login.totp_secret}\t{login.display_name}\t"
            f"{login.clinics}"
            for login in summary.logins
        ),
    ]
    path = services.settings.home / LOGINS_FILE
    write_private(path, ("\n".join(lines) + "\n").encode())
    summary.logins_file = str(path.resolve())
