"""The composition root: builds every service from ``Settings``, in one place."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from carevault.access.accounts import StaffAccounts
from carevault.access.admin import (
    ADMIN_WORDS,
    Administration,
    account_altered,
    care_altered,
    client_altered,
    client_written_back,
    grant_altered,
    register_failed,
    registration_altered,
    session_altered,
    session_written_back,
)
from carevault.access.breakglass import BreakGlass
from carevault.access.care import CareRelationships
from carevault.access.client_marks import mark_client_care
from carevault.access.clients import ClientApps
from carevault.access.control import AccessControl
from carevault.access.identity import IdTokens
from carevault.access.oauth import OAuth
from carevault.access.passwords import Passwords
from carevault.access.ratelimit import RequestLimits
from carevault.access.refusals import RefusalTally
from carevault.access.registrations import Registrations
from carevault.access.review import BreakGlassReview
from carevault.access.sessions import Sessions
from carevault.access.tokens import TokenSigner
from carevault.clock import Clock, to_micros, utc_now
from carevault.config import Settings
from carevault.console.sessions import ConsoleSessions
from carevault.containment.service import ContainmentService, containment_altered
from carevault.containment.state import CONTAINMENT_WORDS, Containment, ContainmentStore
from carevault.db import make_engine
from carevault.detect.desk import ALERT_WORDS
from carevault.detect.service import Detection, build_detection
from carevault.export.files import ExportFiles
from carevault.export.service import EXPORT_WORDS, ExportService, ExportSettings
from carevault.export.worker import ExportThread, ExportWorker, JobThread
from carevault.fhir.content import InputLimits
from carevault.gate import CareSettings, Gate
from carevault.importjobs.service import ImportService, ImportSettings, import_files
from carevault.importjobs.worker import ImportWorker
from carevault.incidents.sealer import SegmentSealer, sealer_for
from carevault.keys.anchors import SealAnchors, anchors_path
from carevault.keys.cache import DataKeyCache
from carevault.keys.envelope import Envelope
from carevault.keys.files import ed25519_key, rsa_key
from carevault.keys.local import LocalKeyring
from carevault.keys.measures import MeasureRegister, measures_path
from carevault.keys.provider import KeyProvider, KeyProviderUnavailable
from carevault.keys.revocations import RevocationRegister, revocations_path
from carevault.keys.service import DIRECTORY_KEY_ID, KeyService
from carevault.keys.shreds import ShredRegister, register_path
from carevault.keys.words import officer_words
from carevault.ledger.activity import ActivityCounter
from carevault.ledger.checkpoints import CheckpointSchedule, CheckpointSigner
from carevault.ledger.runs import VerifyRuns
from carevault.ledger.schema import AUDIT_LEDGER, audit_tables
from carevault.ledger.service import Ledger, open_ledger, report_refusals
from carevault.ledger.unwrap import UNWRAP_LEDGER, LedgerUnwrapRecorder, unwrap_tables
from carevault.ledger.verifier import VerifierKey
from carevault.ledger.witness import DirectoryWitness, HttpWitness, Witness, WitnessCore
from carevault.ledger.writer import LedgerWriter
from carevault.loop_reads import LoopReads
from carevault.migrations import upgrade
from carevault.rest.interactions import FhirInteractions, SearchSettings
from carevault.rest.launch import PatientPicker
from carevault.vault.store import SYSTEM_PRINCIPAL, Vault
from carevault.vault.writer import kin_token

#: How often a server counts new ledger entries for the console's activity chart.
ACTIVITY_SECONDS = 30.0
log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    clock: Clock
    engine: Engine
    key_engine: Engine
    provider: KeyProvider | None
    keys: KeyService | None
    vault: Vault
    audit_ledger: Ledger
    unwrap_ledger: Ledger
    accounts: StaffAccounts
    clients: ClientApps
    sessions: Sessions
    break_glass: BreakGlass
    access: AccessControl
    oauth: OAuth
    admin: Administration
    gate: Gate
    fhir: FhirInteractions
    containment: ContainmentStore
    contain: ContainmentService
    glass_review: BreakGlassReview
    verify_runs: VerifyRuns
    console: ConsoleSessions
    refusals: RefusalTally
    limits: RequestLimits
    schedule: CheckpointSchedule | None = None
    activity: ActivityCounter | None = None
    detection: Detection | None = None
    #: Seals the ledgers' Parquet segments as they grow (incidents.sealer).
    sealer: SegmentSealer | None = None
    #: SMART apps: ID tokens and their JWKS, and the patient launch's picker.
    id_tokens: IdTokens | None = None
    picker: PatientPicker | None = None
    #: Bulk Data export (carevault.export) and its worker thread.
    exports: ExportService | None = None
    export_thread: ExportThread | None = None
    #: ``$import`` by integration clients (carevault.importjobs) and its worker thread.
    imports: ImportService | None = None
    import_thread: JobThread | None = None
    _closed: bool = field(default=False, repr=False)

    @property
    def audit(self) -> LedgerWriter:
        """Where security events go (the AuditTrail of the audit ledger)."""
        return self.audit_ledger.writer

    def now_us(self) -> int:
        return to_micros(self.clock())

    def ledgers(self) -> list[Ledger]:
        return [self.audit_ledger, self.unwrap_ledger]

    def start_background(self) -> None:
        """The checkpoint schedule, the segment sealer and the activity counts, for a
        long-running server."""
        if self.schedule is None:
            self.schedule = CheckpointSchedule(
                [ledger.checkpoints for ledger in self.ledgers()],
                self.settings.checkpoint_seconds,
            )
            self.schedule.start()
        if self.sealer is None:
            self.sealer = sealer_for(self)
            self.sealer.start()
        if self.activity is None:
            self.activity = ActivityCounter(
                self.audit_ledger.store, self.engine, self.now_us, ACTIVITY_SECONDS
            )
            self.activity.start()
            self.refusals.start()
        if self.detection is not None:
            self.detection.start()
        if self.exports is not None and self.export_thread is None and self.settings.export_worker:
            self.export_thread = ExportThread(
                ExportWorker(self.exports), self.settings.export_poll_seconds
            )
            self.export_thread.start()
        if self.imports is not None and self.import_thread is None and self.settings.import_worker:
            self.import_thread = JobThread(
                ImportWorker(self.imports), self.settings.export_poll_seconds, "import"
            )
            self.import_thread.start()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.schedule is not None:
            self.schedule.stop()
        if self.sealer is not None:
            self.sealer.stop()
        if self.activity is not None:
            self.activity.stop()
        if self.export_thread is not None:
            self.export_thread.stop()
        if self.import_thread is not None:
            self.import_thread.stop()
        if self.detection is not None:
            self.detection.close()
        try:
            self.refusals.close()
        except Exception:  # noqa: BLE001 - closing goes on; the first refusals are recorded
            log.exception("the last summary of refused requests could not be recorded")
        self.audit_ledger.close()
        self.unwrap_ledger.close()
        if self.keys is not None:
            self.keys.forget_cached()
        self.engine.dispose()
        self.key_engine.dispose()
        self.containment.engine.dispose()


def _pseudonym(vault: Vault, patient_id: str) -> str | None:
    """A patient's pseudonym from their id (clear metadata; nothing is decrypted)."""
    from carevault.vault.records import NotFound

    try:
        return vault.locate("Patient", patient_id).head.patient_pseudonym
    except NotFound:
        return None


def make_provider(settings: Settings, *, create: bool = False) -> KeyProvider:
    if settings.key_provider == "pkcs11":
        from carevault.keys.pkcs11 import Pkcs11KeyProvider

        pin = settings.pkcs11_pin.get_secret_value() if settings.pkcs11_pin else ""
        provider = Pkcs11KeyProvider(str(settings.pkcs11_module), settings.pkcs11_token_label, pin)
        if create and not provider.versions():
            provider.create_version()
        return provider
    path = settings.resolved_keyring_path
    if create and not path.exists():
        return LocalKeyring.create(path)
    return LocalKeyring(path)


def make_witnesses(settings: Settings, vkeys: list[VerifierKey]) -> list[Witness]:
    witnesses: list[Witness] = []
    if settings.witness_url and settings.witness_vkey:
        witnesses.append(
            HttpWitness(settings.witness_url, VerifierKey.parse(settings.witness_vkey))
        )
    directory = settings.resolved_witness_dir
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        core = WitnessCore(directory, f"{settings.ledger_origin}/witness", vkeys)
        witnesses.append(DirectoryWitness(core))
    return witnesses


def initialise(settings: Settings) -> None:
    """Prepare a data directory and databases: idempotent, never overwrites keys."""
    settings.home.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.home, 0o700)
    services = build_services(settings, create_keys=True, migrate=True)
    services.close()


def _seal_once(
    settings: Settings, table: str, key: bytes | None, seal_unsealed: Callable[[], int]
) -> None:
    """Rows of policy state are sealed with a key derived from the index key (adversary
    round 69). The rows of ``table`` written before sealing began are sealed as they
    stand, once: the note that it was done is kept beside the keyring, where the
    database cannot take it back (a seal stripped from a row would otherwise pass for
    one from before)."""
    if key is None:
        return
    anchors = SealAnchors(anchors_path(settings.resolved_keyring_path))
    if not anchors.holds(table):
        seal_unsealed()
        anchors.add(table)


#: The anchors' note (``keys.anchors``) that the care client apps made before stop 65
#: is marked as theirs (``access.client_marks``, stop 66).
CLIENT_CARE_MARKED = "care-client-marks"


def _mark_client_care_once(settings: Settings, care: CareRelationships) -> None:
    """Care relationships client apps alone made before their makers were marked (stop
    65) are marked once, at the first start after the upgrade (``carevault init``): the
    note that it was done is kept beside the keyring, as that of the rows sealed, so no
    later start reads the whole table again. After the rows are sealed
    (``_begin_sealing``): only a row that matches its seal is marked and sealed again."""
    anchors = SealAnchors(anchors_path(settings.resolved_keyring_path))
    if not anchors.holds(CLIENT_CARE_MARKED):
        mark_client_care(care)
        anchors.add(CLIENT_CARE_MARKED)


class _Sealing(Protocol):
    """What keeps rows of one table sealed: the key, whether every row is sealed, and a
    way to seal the rows from before."""

    seal_key: bytes | None
    all_sealed: bool

    def seal_unsealed(self) -> int: ...


def _begin_sealing(settings: Settings, vault: Vault, table: str, holder: _Sealing) -> None:
    """``holder``'s rows of ``table`` sealed from now on (its key derived for the table),
    those from before sealed once (``_seal_once``)."""
    holder.seal_key = vault.row_seal_key(table)
    _seal_once(settings, table, holder.seal_key, holder.seal_unsealed)
    holder.all_sealed = holder.seal_key is not None


#: The anchors' notes (``keys.anchors``) that are not a table's name: the measures'
#: register begun (``keys.measures``). A table whose rows are all sealed is noted by
#: its name (``_begin_sealing``).
MEASURES_RECORDED = "containment-measures"
#: The revocations' register begun (``keys.revocations``): the revocations and step-ups
#: the sealed rows held before it written to it once.
REVOCATIONS_RECORDED = "revocations"


def _begin_revocations(
    settings: Settings,
    sessions: Sessions,
    clients: ClientApps,
    audit: LedgerWriter,
    now_us: Callable[[], int],
) -> None:
    """The register of revocations and step-ups beside the keyring (``keys.revocations``,
    stop 57), shared by the sessions and the client apps; what the sealed rows held before
    it began written to it once; rewritten without what no longer matters at each start
    (a register out of reach is told, and does not stop the start)."""
    register = RevocationRegister(revocations_path(settings.resolved_keyring_path), now_us)
    failed = register_failed(audit, now_us)
    sessions.register = clients.register = register
    sessions.register_failed = clients.register_failed = failed
    sessions.session_written_back = session_written_back(audit, now_us)
    clients.written_back = client_written_back(audit, now_us)
    _seal_once(
        settings,
        REVOCATIONS_RECORDED,
        sessions.seal_key,
        lambda: sessions.record_standing() + clients.record_revoked(),
    )
    try:
        register.compact()
    except OSError as error:
        log.error("the revocations' register beside the keyring: not rewritten: %s", error)
        failed("not rewritten at start")


def build_services(
    settings: Settings,
    *,
    create_keys: bool = False,
    migrate: bool = False,
    clock: Clock = utc_now,
) -> Services:
    settings.check()
    if not create_keys and not settings.resolved_ledger_key_path.exists():
        # Checked before anything is opened: a mistyped --home must not be left behind
        # as a new directory holding an empty database.
        raise KeyProviderUnavailable(
            f"{settings.home} is not a CareVault data directory (no "
            f"{settings.resolved_ledger_key_path.name}): check --home or CAREVAULT_HOME, "
            "or run `carevault init`"
        )
    engine = make_engine(settings.resolved_database_url, pool_size=settings.database_pool_size)
    key_url = settings.resolved_keys_database_url
    # The key store has its own pool even where it shares the database: a write opens
    # its new patients' data keys in a key-store transaction while it holds its own, and
    # with one pool for both, requests each holding one connection and waiting for a
    # second could take every connection and wait out the pool's timeout (503s under 32
    # clients on PostgreSQL).
    key_engine = make_engine(key_url, pool_size=max(2, settings.database_pool_size // 2))
    if migrate:
        upgrade("records", engine)
        upgrade("keys", key_engine)

    def now_us() -> int:
        return to_micros(clock())

    ledger_key = ed25519_key(settings.resolved_ledger_key_path, create=create_keys)
    audit_signer = CheckpointSigner(f"{settings.ledger_origin}/{AUDIT_LEDGER}", ledger_key)
    unwrap_signer = CheckpointSigner(f"{settings.ledger_origin}/{UNWRAP_LEDGER}", ledger_key)
    witnesses = make_witnesses(settings, [audit_signer.vkey, unwrap_signer.vkey])
    audit_ledger = open_ledger(engine, audit_tables, AUDIT_LEDGER, audit_signer, witnesses, now_us)
    unwrap_ledger = open_ledger(
        key_engine, unwrap_tables, UNWRAP_LEDGER, unwrap_signer, witnesses, now_us
    )
    report_refusals([audit_ledger, unwrap_ledger], audit_ledger)

    provider: KeyProvider | None = None
    keys: KeyService | None = None
    if settings.encryption:
        provider = make_provider(settings, create=create_keys)
        cache = DataKeyCache(settings.dek_cache_size, settings.dek_cache_seconds)
        keys = KeyService(
            key_engine, provider, cache, LedgerUnwrapRecorder(unwrap_ledger.writer), clock
        )
    zone = ZoneInfo(settings.timezone)
    envelope = Envelope(encrypted=settings.encryption)
    if keys is not None:
        keys.register = ShredRegister(register_path(settings.resolved_keyring_path))
    vault = Vault(engine, keys, envelope, zone, clock)
    vault.start()
    if keys is not None:
        keys.ensure_data_key(
            DIRECTORY_KEY_ID, "directory", principal=SYSTEM_PRINCIPAL, purpose="startup"
        )

    issuer = settings.public_base_url or f"urn:carevault:{settings.ledger_origin}"
    signer = TokenSigner(
        ed25519_key(settings.resolved_token_key_path, create=create_keys),
        issuer,
        f"{issuer}/fhir",
    )
    passwords = Passwords(settings.argon2_memory_kib, settings.argon2_time_cost)
    accounts = StaffAccounts(engine, passwords, keys, envelope, clock)
    clients = ClientApps(engine, clock)
    sessions = Sessions(
        engine,
        signer,
        access_seconds=settings.access_token_seconds,
        refresh_seconds=settings.refresh_token_seconds,
        session_seconds=settings.session_max_seconds,
        clock=clock,
    )
    care = CareRelationships(
        engine, lambda practitioner: vault.token("CareRelationship", "practitioner", practitioner)
    )
    break_glass = BreakGlass(engine, keys, envelope, settings.break_glass_minutes, clock)
    registrations = Registrations(engine, clock)
    # Care relationships and registrations open a patient's record (adversary round 70).
    _begin_sealing(settings, vault, "care_relationship", care)
    care.altered.record = care_altered(audit_ledger.writer, now_us)
    _mark_client_care_once(settings, care)
    _begin_sealing(settings, vault, "patient_registration", registrations)
    registrations.altered.record = registration_altered(audit_ledger.writer, now_us)
    access = AccessControl(engine, signer, sessions, care, break_glass, registrations, clock)
    if create_keys and not settings.resolved_id_token_key_path.exists():
        rsa_key(settings.resolved_id_token_key_path)
    id_tokens = IdTokens(
        lambda: rsa_key(settings.resolved_id_token_key_path), lifetime=settings.id_token_seconds
    )
    oauth = OAuth(
        engine,
        accounts,
        clients,
        sessions,
        audit_ledger.writer,
        direct_grant=settings.direct_grant,
        clock=clock,
        id_tokens=id_tokens,
    )
    # Containment is re-read every fraction of a second by whichever request comes first,
    # often one already holding a connection: on its own small pool it never waits for
    # the requests' pool (see key_engine above).
    containment = ContainmentStore(
        make_engine(settings.resolved_database_url, pool_size=2),
        now_us,
        settings.containment_refresh_seconds,
        officer_words(keys, "system:containment", CONTAINMENT_WORDS),
        seal_key=vault.row_seal_key("containment"),
    )
    containment.altered = containment_altered(audit_ledger.writer, now_us)
    _seal_once(settings, "containment", containment.seal_key, containment.seal_unsealed)
    containment.all_sealed = containment.seal_key is not None
    if containment.seal_key is not None:
        containment.register = MeasureRegister(measures_path(settings.resolved_keyring_path))
        # The measures on before the register began are written to it once, as the rows
        # from before sealing were sealed (adversary round 70).
        _seal_once(settings, MEASURES_RECORDED, containment.seal_key, containment.record_active)
    if keys is not None:
        keys.locked = lambda: containment.current().key_lockdown
        keys.shred_check_seconds = settings.containment_refresh_seconds
    gate = Gate(
        vault,
        audit_ledger.writer,
        access,
        CareSettings(zone, settings.care_days_before, settings.care_days_after),
        candidate_limit=settings.sort_candidate_limit,
        containment=containment,
        offline_types=frozenset(
            name.strip() for name in settings.phi_offline_types.split(",") if name.strip()
        ),
    )
    admin = Administration(
        accounts,
        clients,
        sessions,
        audit_ledger.writer,
        clock,
        officer_words(keys, "system:administration", ADMIN_WORDS),
    )
    _begin_sealing(settings, vault, "staff_account", accounts)
    sessions.account_genuine = accounts.genuine_session
    sessions.account_altered = account_altered(audit_ledger.writer, now_us)
    sessions.bound_genuine = accounts.genuine_bound
    _begin_sealing(settings, vault, "client_app", clients)
    clients.altered = client_altered(audit_ledger.writer, now_us)
    sessions.client_genuine = clients.genuine_session
    _begin_sealing(settings, vault, "break_glass", break_glass)
    break_glass.altered.record = grant_altered(audit_ledger.writer, now_us)
    _begin_sealing(settings, vault, "auth_session", sessions)
    sessions.session_altered = session_altered(audit_ledger.writer, now_us)
    if sessions.seal_key is not None:
        _begin_revocations(settings, sessions, clients, audit_ledger.writer, now_us)
    # Refresh tokens under the sessions' key (their own seal's form).
    _seal_once(settings, "refresh_token", sessions.seal_key, sessions.seal_unsealed_refresh)
    _begin_sealing(settings, vault, "auth_code", oauth)
    detection = build_detection(
        settings,
        engine,
        audit_ledger,
        unwrap_ledger,
        lambda practitioner: vault.token("CareRelationship", "practitioner", practitioner),
        lambda kind, term: kin_token(vault, kind, term),
        lambda kind, term: vault.token("DecoyContact", kind, term),
        lambda patient_id: _pseudonym(vault, patient_id),
        containment,
        admin,
        accounts,
        sessions,
        now_us,
        break_glass.genuine,
        care.genuine,
        officer_words(keys, "system:detect", ALERT_WORDS),
    )
    gate.release = detection.budget if settings.detect else None
    gate.decoys = detection.decoys if settings.detect else None
    gate.audit_entries = audit_ledger.store
    if engine.dialect.name == "postgresql":
        gate.loop_reads = LoopReads(engine)
    fhir = FhirInteractions(
        gate,
        SearchSettings(
            zone=zone,
            # A page without _count holds no more than one with it may (integrator round
            # of stop 66: a maximum of 3 served 7 to a search that named no count).
            default_count=min(settings.search_default_count, settings.search_max_count),
            max_count=settings.search_max_count,
        ),
        input_limits(settings),
    )
    services = Services(
        settings=settings,
        clock=clock,
        engine=engine,
        key_engine=key_engine,
        provider=provider,
        keys=keys,
        vault=vault,
        audit_ledger=audit_ledger,
        unwrap_ledger=unwrap_ledger,
        accounts=accounts,
        clients=clients,
        sessions=sessions,
        break_glass=break_glass,
        access=access,
        oauth=oauth,
        admin=admin,
        gate=gate,
        fhir=fhir,
        containment=containment,
        contain=ContainmentService(containment, accounts, admin, break_glass, audit_ledger),
        glass_review=BreakGlassReview(break_glass, accounts, audit_ledger.writer, clock),
        verify_runs=VerifyRuns(engine, audit_ledger, now_us),
        console=ConsoleSessions(
            engine,
            oauth,
            sessions,
            audit_ledger.writer,
            idle_seconds=settings.console_idle_minutes * 60,
            clock=clock,
        ),
        refusals=RefusalTally(audit_ledger.writer, clock),
        limits=RequestLimits.from_settings(settings),
        detection=detection,
        id_tokens=id_tokens,
        picker=PatientPicker(fhir, gate),
        exports=ExportService(
            gate,
            access,
            clients,
            accounts,
            audit_ledger,
            ExportFiles(settings.resolved_export_dir, keys, envelope),
            detection.alerts if settings.detect else None,
            ExportSettings(
                keep_us=int(settings.export_keep_hours * 3600 * 1_000_000),
                batch_patients=settings.export_batch_patients,
                lease_us=int(settings.export_lease_seconds * 1_000_000),
            ),
            officer_words(keys, "system:export", EXPORT_WORDS),
        ),
        imports=ImportService(
            gate,
            access,
            audit_ledger,
            import_files(settings.resolved_import_dir, keys, envelope),
            fhir.limits,
            ImportSettings(
                max_bytes=settings.import_max_bytes,
                batch_lines=settings.import_batch_lines,
                lease_us=int(settings.export_lease_seconds * 1_000_000),
                keep_us=int(settings.export_keep_hours * 3600 * 1_000_000),
            ),
        ),
    )
    # The incidents module sits above containment: an officer an open incident names
    # does not release its containment, no one erases a patient an open incident's scope
    # holds, and a clinic lock names one of the group's clinics (adversary round 58).
    from carevault.incidents import incidents_for, incidents_holding
    from carevault.incidents.registry import Directory

    def named_by(action: Containment, principal: str) -> bool:
        return incidents_for(services).names_in_containment(action, principal)

    def held_by(pseudonym: str, principal: str) -> list[int]:
        return incidents_holding(services, pseudonym, principal)

    services.contain.named_by = named_by
    services.contain.held_by = held_by
    services.contain.clinic_of = Directory(services).clinic
    _begin_sealing(settings, vault, "console_session", services.console)
    return services


def input_limits(settings: Settings) -> InputLimits:
    """The bounds of one request's content (``CAREVAULT_MAX_*``)."""
    return InputLimits(
        name_chars=settings.max_name_chars,
        string_chars=settings.max_string_chars,
        text_chars=max(settings.max_text_chars, settings.max_string_chars),
        bundle_entries=settings.max_bundle_entries,
        transaction_read_seconds=settings.max_transaction_read_seconds,
    )
