"""Settings: the one place configuration is read (environment prefix ``CAREVAULT_``).

``Settings`` is built by the composition root and passed down; nothing imports a
global instance. Defaults are safe for a demo on one machine. In production mode
``check_production`` refuses to start when a setting is unsafe.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
import unicodedata
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

Environment = Literal["development", "demo", "test", "benchmark", "production"]


#: A FHIR id (an Organization's, for a clinic).
_CLINIC_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
#: Unicode categories a name in a mail header may not hold: controls, format characters,
#: surrogates, private use, unassigned, and line and paragraph separators.
_NOT_IN_A_HEADER = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


class UnsafeConfiguration(RuntimeError):
    """Raised when the settings would make a production deployment unsafe."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CAREVAULT_", extra="ignore", frozen=True)

    environment: Environment = "development"
    home: Path = Path("./carevault-data")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; defaults to an embedded SQLite file in the data directory.",
    )

    keys_database_url: str | None = Field(
        default=None,
        description=(
            "The key store's database; defaults to <home>/keys/keys.db with SQLite, "
            "or the records database with PostgreSQL."
        ),
    )
    database_pool_size: int = Field(
        default=16,
        ge=2,
        le=256,
        description=(
            "PostgreSQL: connections each server process keeps for requests (and as many "
            "more while busy; the key store half as many). `carevault serve --workers N` "
            "divides the default among its processes: the server's total stays within "
            "what PostgreSQL allows (max_connections, 100 by default)."
        ),
    )
    timezone: str = Field(
        default="Asia/Hong_Kong",
        description="Time zone for dates written without one (search values, birth dates).",
    )

    # Keys
    key_provider: Literal["local", "pkcs11"] = "local"
    keyring_path: Path | None = Field(
        default=None, description="Local keyring file; defaults to <home>/keys/keyring.json."
    )
    pkcs11_module: Path = Path("/usr/lib/softhsm/libsofthsm2.so")
    pkcs11_token_label: str = "carevault"  # noqa: S105 - a label, not a secret
    pkcs11_pin: SecretStr | None = None
    dek_cache_size: int = Field(default=4096, ge=0, le=1_000_000)
    dek_cache_seconds: float = Field(default=60.0, ge=0, le=3600)

    # Ledger reports
    access_report_limit: int = Field(
        default=10_000,
        ge=10,
        le=1_000_000,
        description=(
            "Most lines of one patient access report: the newest; the report says what it "
            "leaves out, and ?before= lists the older ones."
        ),
    )

    # FHIR server
    public_base_url: str | None = Field(
        default=None,
        description=(
            "The server's public root, e.g. https://ehr.example.hk (a trailing /fhir is "
            "dropped): the only Host accepted, and the base of every link the server builds."
        ),
    )
    trusted_proxies: str = Field(
        default="",
        description=(
            "Reverse proxies whose X-Forwarded-For/-Proto are believed: comma-separated "
            "addresses or networks. Empty (the default): no one's."
        ),
    )
    max_body_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    max_bundle_entries: int = Field(
        default=500, ge=1, le=100_000, description="Most entries a batch or transaction may hold."
    )
    max_transaction_read_seconds: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description=(
            "Longest a transaction's GET entries may run while the transaction holds the audit "
            "ledger and the record writes (every other request waits); past it the "
            "transaction is refused whole, nothing written (reads that long go in a batch)."
        ),
    )
    max_name_chars: int = Field(
        default=256,
        ge=16,
        description="Longest name part, identifier value, telecom value or address part.",
    )
    max_string_chars: int = Field(
        default=4096, ge=64, description="Longest value of any other FHIR string element."
    )
    max_text_chars: int = Field(
        default=64 * 1024,
        ge=1024,
        description="Longest narrative, markdown or attachment data; no string may be longer.",
    )
    search_default_count: int = Field(default=20, ge=1)
    search_max_count: int = Field(default=1000, ge=1)
    sort_candidate_limit: int = Field(
        default=5000,
        ge=1,
        description="Most resources a search may decrypt to sort or filter on encrypted values.",
    )
    max_decrypts_per_request: int = Field(
        default=20_000,
        ge=1,
        description="Most records one request (a batch or transaction included) may decrypt.",
    )

    # Sign-in and tokens
    token_signing_key_path: Path | None = Field(
        default=None,
        description="Ed25519 key that signs access tokens; <home>/keys/token-signing.pem.",
    )
    access_token_seconds: int = Field(default=300, ge=30, le=3600)
    refresh_token_seconds: int = Field(default=8 * 3600, ge=60)
    session_max_seconds: int = Field(default=12 * 3600, ge=60)
    direct_grant: bool = Field(
        default=False,
        description="Token endpoint takes username + password + TOTP directly (scripts, demo).",
    )
    argon2_memory_kib: int = Field(default=65_536, ge=8192)
    argon2_time_cost: int = Field(default=3, ge=1)
    care_days_before: int = Field(
        default=30, ge=0, description="A visit opens the record this early."
    )
    care_days_after: int = Field(default=90, ge=0, description="A visit keeps it open this long.")
    break_glass_minutes: int = Field(default=60, ge=1, le=24 * 60)

    # Request rate limits (token buckets, per server process); a rate of 0 turns one off.
    rate_limit_source_per_second: float = Field(
        default=100.0, ge=0, description="Requests per second from one source address."
    )
    rate_limit_source_burst: int = Field(default=1000, ge=1)
    rate_limit_account_per_second: float = Field(
        default=30.0, ge=0, description="Requests per second by one account or client app."
    )
    rate_limit_account_burst: int = Field(default=300, ge=1)
    rate_limit_sign_in_per_second: float = Field(
        default=1.0,
        ge=0,
        description="Sign-in and token requests per second from one source address.",
    )
    rate_limit_sign_in_burst: int = Field(default=60, ge=1)

    # Audit ledger
    ledger_origin: str = Field(
        default="carevault.local",
        description=(
            "This deployment's name in its checkpoints (a schema-less URL such as "
            "ehr.example.hk); the ledgers are <origin>/audit and <origin>/unwrap."
        ),
    )
    ledger_signing_key_path: Path | None = Field(
        default=None,
        description="Ed25519 key that signs checkpoints; <home>/keys/ledger-signing.pem.",
    )
    checkpoint_seconds: float = Field(
        default=60.0, ge=0, description="A signed checkpoint this often while the ledger grows."
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description=(
            "The server's log lines on standard error: text (time, level, logger, process, "
            "message) or json (one object a line, for a log shipper)."
        ),
    )
    witness_dir: Path | None = Field(
        default=None,
        description=(
            "A witness kept in this directory (another host's mount in production); "
            "defaults to <home>/witness."
        ),
    )
    witness_url: str | None = Field(
        default=None, description="An HTTP witness (C2SP tlog-witness), e.g. http://w:7380"
    )
    witness_vkey: str | None = Field(
        default=None, description="The HTTP witness's verifier key (name+id+key)."
    )

    # Containment
    phi_offline_types: str = Field(
        default="Appointment,Schedule,Slot,Location,Practitioner,PractitionerRole,Organization",
        description="Resource types still served while patient data is offline (scheduling).",
    )
    containment_refresh_seconds: float = Field(
        default=0.5, gt=0, le=1.0, description="How often each process re-reads containment."
    )

    # The privacy officer's console (/console/)
    console_idle_minutes: int = Field(
        default=15, ge=1, le=240, description="A console session ends after this long unused."
    )
    pdf_font: Path | None = Field(
        default=None,
        description=(
            "A TrueType font (.ttf or .ttc) with Chinese glyphs for PDF letters; "
            "by default the first of Debian's CJK fonts that is installed."
        ),
    )

    # Incidents and their scope (incidents/): the ledgers' sealed Parquet segments
    incident_segment_entries: int = Field(
        default=65_536,
        description="Entries per sealed Parquet segment of a ledger: 256**L (256, 65536, ...).",
    )
    segments_dir: Path | None = Field(
        default=None, description="Where sealed segments are kept; defaults to <home>/segments."
    )
    # Breach notices (carevault.notify): the sender, its channels, the verification page.
    notify_group_name: str = Field(
        default="CareVault Clinics", description="The clinic group's name as patients know it."
    )
    notify_group_name_zh: str = Field(default="CareVault 診所", description="Its Chinese name.")
    clinic_names: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "The clinics' names as letters print them, by Organization id, as JSON: "
            '{"clinic-tm": "Tuen Mun Clinic"}. A clinic not named is printed by its id, '
            "never by its Organization record's name (text anyone who may write it typed)."
        ),
    )
    clinic_names_zh: dict[str, str] = Field(
        default_factory=dict,
        description="Their Chinese names, the same way (a clinic not named: its English name).",
    )
    notify_site: str | None = Field(
        default=None,
        description=(
            "The address patients are told to type themselves to reach /verify "
            "(e.g. clinics.example.hk); defaults to the host of CAREVAULT_PUBLIC_BASE_URL."
        ),
    )
    notify_hotline: str = Field(default="+852 2000 0000", description="The incident hotline.")
    notify_contact_name: str = Field(
        default="The Data Protection Officer", description="The named contact in every notice."
    )
    notify_contact_name_zh: str | None = Field(
        default=None,
        description=(
            "The named contact in Chinese notices; by default 保障資料主任 while the English "
            "contact is the default one, else the English name as it is (a person's name)."
        ),
    )
    notify_contact_email: str = Field(default="privacy@example.hk")
    notify_rate: float = Field(
        default=50.0, gt=0, description="Notices sent per second at most (all channels)."
    )
    notify_attempts: int = Field(
        default=4, ge=1, le=20, description="Tries of one channel before falling back."
    )
    notify_retry_seconds: float = Field(
        default=2.0, ge=0, description="First retry delay; it doubles with each try."
    )
    notify_batch: int = Field(default=20, ge=1, le=1000, description="Notices per batch.")
    notify_lanes: int = Field(
        default=4,
        ge=1,
        le=32,
        description="Notices delivered at once (threads, each with its own SMTP connection); "
        "without a relay journal, a kill can leave this many in doubt.",
    )
    notify_verify_per_minute: float = Field(
        default=10.0, gt=0, description="Verification checks per minute from one address."
    )
    notify_verify_per_network_per_minute: float = Field(
        default=30.0,
        gt=0,
        description="Verification checks per minute from one IPv6 /48 (every address in it).",
    )
    notify_verify_global_per_second: float = Field(
        default=20.0, gt=0, description="Verification checks per second from everyone together."
    )
    notify_letters_dir: Path | None = Field(
        default=None, description="Where letters are written; <home>/notify/letters."
    )
    notify_dsn_dir: Path | None = Field(
        default=None, description="A Maildir of delivery status notifications (bounces)."
    )
    notify_journal_dir: Path | None = Field(
        default=None,
        description=(
            "A Maildir where the mail relay keeps a copy of every message it accepts: "
            "settles a notice whose send was interrupted without sending it twice."
        ),
    )
    notify_pcpd_days: int = Field(
        default=5, ge=1, description="Days after declaring an incident to notify the PCPD."
    )
    notify_code_days: int = Field(
        default=180,
        ge=1,
        description="Days a notice's verification code is in use after the notice was sent; "
        "then /verify says it has expired.",
    )
    smtp_host: str = Field(default="127.0.0.1")
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: Literal["auto", "required", "off"] = Field(
        default="auto", description="auto: STARTTLS when the server offers it."
    )
    smtp_ca_file: Path | None = Field(default=None, description="CA bundle for STARTTLS.")
    smtp_timeout: float = Field(default=30.0, gt=0)
    smtp_from: str = Field(default="notices@example.hk", description="Envelope and From address.")
    dkim_domain: str | None = Field(
        default=None, description="The d= domain of DKIM signatures; the From domain if unset."
    )
    dkim_selector: str = Field(default="carevault")
    dkim_key_path: Path | None = Field(
        default=None, description="PEM RSA key that signs notices; <home>/keys/dkim.pem."
    )
    sms_gateway_url: str | None = Field(
        default=None, description="The SMS gateway's HTTP endpoint (POST JSON)."
    )
    sms_gateway_token: SecretStr | None = None

    #: Only a benchmark may turn encryption off, to measure the unencrypted baseline.
    encryption: bool = True

    # Bulk Data export (carevault.export, docs/export.md)
    export_dir: Path | None = Field(
        default=None, description="Where encrypted export files go (default: HOME/exports)."
    )
    export_keep_hours: float = Field(
        default=24,
        gt=0,
        le=24 * 30,
        description="How long a finished export's files are kept before they are deleted.",
    )
    export_batch_patients: int = Field(
        default=500,
        ge=1,
        le=10_000,
        description="Patients per export batch (one file per resource type and batch).",
    )
    export_lease_seconds: float = Field(
        default=30,
        gt=0,
        le=3600,
        description=(
            "How long a server process holds an export job between batches; a job whose "
            "process died is taken over once its lease runs out."
        ),
    )
    export_poll_seconds: float = Field(
        default=1.0, gt=0, le=60, description="How often the export worker looks for work."
    )
    export_worker: bool = Field(
        default=True, description="Run approved exports in this server process."
    )

    # $import by an integration client (carevault.importjobs, docs/operations.md)
    import_dir: Path | None = Field(
        default=None,
        description="Where sealed $import bodies wait for the worker (default: HOME/imports).",
    )
    import_max_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1,
        le=4 * 1024 * 1024 * 1024,
        description="The largest $import body accepted (413 above it, nothing stored).",
    )
    import_batch_lines: int = Field(
        default=500,
        ge=1,
        le=10_000,
        description="Lines of an $import body per batch (one transaction, one journal step).",
    )
    import_worker: bool = Field(
        default=True,
        description=(
            "Run queued $import jobs in this server process (polling and leases as the "
            "export worker's: export_poll_seconds, export_lease_seconds)."
        ),
    )

    # Detection and automatic containment (carevault.detect, docs/detection.md)
    detect: bool = Field(
        default=True,
        description=(
            "Detection on: the detectors judge the audit ledger, and the gate keeps each "
            "account's release budget and watches for decoy contact details."
        ),
    )
    detect_thread: bool = Field(
        default=True,
        description=(
            "Judge the ledger in a thread of this process. `carevault serve` turns it "
            "off in its server processes and runs the detectors in a process of their "
            "own (`carevault detect`): in a server process the thread shared the "
            "interpreter with the requests."
        ),
    )
    detect_poll_seconds: float = Field(
        default=0.2, gt=0, le=10, description="How often the detectors look for new entries."
    )
    detect_kin_grace_seconds: float = Field(
        default=600,
        ge=0,
        le=86_400,
        description=(
            "How long after opening a relative's, a neighbour's or a co-worker's record "
            "the snooping detectors wait for a care relationship (a booking made just "
            "after the look-up) before judging it."
        ),
    )
    detect_client_writes_per_hour: int = Field(
        default=2000,
        ge=1,
        le=10_000_000,
        description=(
            "Records an integration client may write in an hour (by $import or one by "
            "one) before an alert, whatever its history; above it, its own usual peak "
            "decides. Raise it for a planned migration."
        ),
    )
    detect_client_care_per_10_minutes: int = Field(
        default=40,
        ge=1,
        le=1_000_000,
        description=(
            "Distinct patients one client app may create care for (a booking, a visit, a "
            "care team, a referral) in ten minutes before a client-care alert. Care for "
            "patients the client itself registered does not count. Raise it for a feed "
            "that books in batches or a planned migration of bookings."
        ),
    )
    detect_staff_changes_per_10_minutes: int = Field(
        default=40,
        ge=1,
        le=1_000_000,
        description=(
            "Distinct patients whose stored records one member of staff may change "
            "(update, patch, delete), or for whom it may create care (a booking, a "
            "visit), in ten minutes before a staff-changes alert. Other new records, and "
            "care for patients the account itself registered, do not count."
        ),
    )
    detect_after_step_up: int = Field(
        default=20,
        ge=1,
        le=1_000_000,
        description=(
            "Distinct patients without a care relationship an account may open within a "
            "day of a step-up response before an after-step-up alert (high: suspended). "
            "Whoever holds a stolen password and TOTP seed passes the step-up."
        ),
    )
    detect_break_glass_per_hour: int = Field(
        default=5,
        ge=1,
        le=10_000,
        description=(
            "Distinct patients one clinician may break the glass for within an hour "
            "before a break-glass-volume alert (high at twice as many); within a day, "
            "four times as many; within a week, eight times as many."
        ),
    )
    release_budget: str = Field(
        default="",
        description=(
            "Distinct patients an account may be given per hour and per day, per role, "
            "over the built-in table: 'physician=120/400,front_desk=150/600'."
        ),
    )
    detect_responses: str = Field(
        default="",
        description=(
            "Automatic responses over the built-in policy: 'high=suspend,medium=step-up' or "
            "per role 'nurse:high=throttle'; actions raise, step-up, throttle, suspend, "
            "phi-offline."
        ),
    )
    alert_smtp_host: str | None = Field(default=None, description="SMTP relay for alerts.")
    alert_smtp_port: int = Field(default=25, ge=1, le=65535)
    alert_email_from: str = "carevault-alerts@localhost"
    alert_email_to: str = Field(default="", description="Comma-separated alert recipients.")
    alert_webhook_url: str | None = Field(default=None, description="POST each alert here.")

    # Browser SMART apps and OpenID Connect (docs/smart-apps.md)
    cors_origins: str = Field(
        default="",
        description=(
            "Origins (scheme://host[:port], comma-separated) a browser app may call the token "
            "endpoint and /fhir from, besides those of registered public apps' redirect URIs."
        ),
    )
    cors_refresh_seconds: float = Field(
        default=5.0, gt=0, le=300, description="How often the registered apps' origins are re-read."
    )
    id_token_key_path: Path | None = Field(
        default=None,
        description="RSA key that signs OpenID Connect ID tokens; <home>/keys/id-token.pem.",
    )
    id_token_seconds: int = Field(default=300, ge=30, le=3600)

    @field_validator("public_base_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        if not value:
            return value
        value = value.rstrip("/")
        # The FHIR base is always <root>/fhir: accept the FHIR base too.
        return value.removesuffix("/fhir") if value.endswith("/fhir") else value

    @field_validator("clinic_names", "clinic_names_zh")
    @classmethod
    def _clinic_names(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        setting = f"CAREVAULT_{str(info.field_name).upper()}"
        for clinic, name in value.items():
            if not _CLINIC_ID.fullmatch(clinic):
                raise ValueError(f"{setting}: {clinic[:60]!r} is not a clinic's id")
            if not name.strip() or len(name) > 120:
                raise ValueError(f"{setting}: the name of {clinic} is empty or over 120 characters")
            if any(unicodedata.category(char)[0] == "C" for char in name):
                raise ValueError(f"{setting}: the name of {clinic} has control characters")
        return {clinic: name.strip() for clinic, name in value.items()}

    @field_validator("notify_group_name", "notify_group_name_zh")
    @classmethod
    def _group_name(cls, value: str, info: ValidationInfo) -> str:
        """The From display name and part of the Subject of every notice: a line break
        (U+2028 and U+0085 are ones to the email package) is not injected there, but it
        stopped a send job midway, after some notices had gone."""
        setting = f"CAREVAULT_{str(info.field_name).upper()}"
        if not value.strip() or len(value) > 120:
            raise ValueError(f"{setting}: the group's name is empty or over 120 characters")
        if any(unicodedata.category(char) in _NOT_IN_A_HEADER for char in value):
            raise ValueError(f"{setting}: the group's name has control or line-break characters")
        return value.strip()

    def clinic_names_in(self, language: str) -> dict[str, str]:
        """Clinic id → name for a letter in ``language`` (``zh``: the Chinese name, else the
        English one)."""
        if language.startswith("zh"):
            return {**self.clinic_names, **self.clinic_names_zh}
        return dict(self.clinic_names)

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: str) -> str:
        for item in _items(value):
            # "*" or a /0 would make every client a proxy, which is what the setting prevents.
            try:
                network = ipaddress.ip_network(item, strict=False)
            except ValueError:
                network = None
            if network is None or network.prefixlen == 0:
                raise ValueError(
                    f"CAREVAULT_TRUSTED_PROXIES: {item[:60]!r} is not a proxy's address or network"
                )
        return ",".join(_items(value))

    @field_validator("cors_origins")
    @classmethod
    def _cors_origins(cls, value: str) -> str:
        for item in _items(value):
            # An origin exactly: "*" or a path would let any page, or a guess, in.
            if browser_origin(item) != item.lower():
                raise ValueError(
                    f"CAREVAULT_CORS_ORIGINS: {item[:60]!r} is not an origin (scheme://host[:port])"
                )
        return ",".join(item.lower() for item in _items(value))

    @property
    def cors_origin_list(self) -> frozenset[str]:
        return frozenset(_items(self.cors_origins))

    @property
    def trusted_proxy_list(self) -> list[str]:
        return _items(self.trusted_proxies)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'carevault.db').resolve()}"

    @property
    def resolved_keys_database_url(self) -> str:
        if self.keys_database_url:
            return self.keys_database_url
        if self.is_sqlite:
            return f"sqlite:///{(self.home / 'keys' / 'keys.db').resolve()}"
        return self.resolved_database_url

    @property
    def resolved_keyring_path(self) -> Path:
        return self.keyring_path or self.home / "keys" / "keyring.json"

    @property
    def resolved_token_key_path(self) -> Path:
        return self.token_signing_key_path or self.home / "keys" / "token-signing.pem"

    @property
    def resolved_id_token_key_path(self) -> Path:
        return self.id_token_key_path or self.home / "keys" / "id-token.pem"

    @property
    def resolved_ledger_key_path(self) -> Path:
        return self.ledger_signing_key_path or self.home / "keys" / "ledger-signing.pem"

    @property
    def resolved_witness_dir(self) -> Path | None:
        if self.witness_url:
            return self.witness_dir
        return self.witness_dir or self.home / "witness"

    @property
    def resolved_export_dir(self) -> Path:
        return self.export_dir or self.home / "exports"

    @property
    def resolved_import_dir(self) -> Path:
        return self.import_dir or self.home / "imports"

    @property
    def resolved_segments_dir(self) -> Path:
        return self.segments_dir or self.home / "segments"

    @property
    def resolved_dkim_key_path(self) -> Path:
        return self.dkim_key_path or self.home / "keys" / "dkim.pem"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    def check(self) -> None:
        """Refuse settings that are never acceptable, then the production rules."""
        if not self.encryption and self.environment != "benchmark":
            raise UnsafeConfiguration(
                "encryption can be turned off only in the benchmark environment"
            )
        if (
            "search_default_count" in self.model_fields_set
            and self.search_default_count > self.search_max_count
        ):
            # Set alone, a maximum below the default cuts the default; set both, they
            # contradict each other and the operator meant one of them.
            raise UnsafeConfiguration(
                f"CAREVAULT_SEARCH_DEFAULT_COUNT ({self.search_default_count}) is above "
                f"CAREVAULT_SEARCH_MAX_COUNT ({self.search_max_count})"
            )
        if self.environment == "production":
            check_production(self)


def check_production(settings: Settings) -> None:
    problems: list[str] = []
    if settings.is_sqlite:
        problems.append("production needs PostgreSQL: set CAREVAULT_DATABASE_URL")
    for path in (
        settings.resolved_keyring_path,
        settings.resolved_token_key_path,
        settings.resolved_ledger_key_path,
        settings.resolved_id_token_key_path,
        # Integrator round 70: the secret of the notices' codes (whoever reads it mints
        # codes that /verify calls genuine) and the notices' DKIM key were not checked.
        settings.home / "keys" / "notice-codes.key",
        settings.resolved_dkim_key_path,
    ):
        if path.exists() and stat.S_IMODE(path.stat().st_mode) & 0o077:
            problems.append(f"key file {path} is readable by others: chmod 600")
    if settings.direct_grant:
        problems.append("CAREVAULT_DIRECT_GRANT must be off in production")
    if settings.key_provider == "pkcs11" and settings.pkcs11_pin is None:
        problems.append("CAREVAULT_PKCS11_PIN is required with the pkcs11 key provider")
    if not (settings.public_base_url or "").startswith("https://"):
        problems.append("CAREVAULT_PUBLIC_BASE_URL must be set to an https:// URL in production")
    if any(not origin.startswith("https://") for origin in settings.cors_origin_list):
        problems.append("CAREVAULT_CORS_ORIGINS must name only https:// origins in production")
    if settings.witness_url and not settings.witness_vkey:
        problems.append("CAREVAULT_WITNESS_VKEY is required with CAREVAULT_WITNESS_URL")
    if not settings.witness_url and settings.witness_dir is None:
        problems.append(
            "production needs a witness outside the data directory: set CAREVAULT_WITNESS_URL "
            "or CAREVAULT_WITNESS_DIR"
        )
    if settings.smtp_starttls != "required" and settings.smtp_host not in (
        "127.0.0.1",
        "::1",
        "localhost",
    ):
        problems.append(
            "CAREVAULT_SMTP_STARTTLS must be 'required' when the mail relay is not on this host"
        )
    if problems:
        raise UnsafeConfiguration("; ".join(problems))


def browser_origin(uri: str) -> str | None:
    """The origin (RFC 6454) of an http(s) URL, lower-cased, default port dropped; None if
    it has none (another scheme, no host, user info)."""
    try:
        parts = urlsplit(uri.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or "@" in parts.netloc:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _items(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, with explicit overrides (CLI flags, tests),
    and refuse those never acceptable (``Settings.check``)."""
    settings = read_settings(**overrides)
    settings.check()
    return settings


def read_settings(**overrides: object) -> Settings:
    """Settings from the environment and ``overrides``, unchecked. A setting that is not
    what it must be is refused (``UnsafeConfiguration``) by its variable's name and what
    is wrong with it, not with the value typed, which may be a password or a PIN (a
    setting's own check may quote part of a value that is no secret: a proxy's
    address, an origin, a clinic's id)."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise UnsafeConfiguration(
            "; ".join(
                f"{_variable(problem['loc'])}: {problem['msg']}"
                for problem in error.errors(include_url=False, include_input=False)
            )
        ) from None
    except SettingsError as error:
        # A JSON setting that is no JSON: pydantic-settings names the field, not the value.
        raise UnsafeConfiguration(str(error)) from None


def _variable(where: tuple[int | str, ...]) -> str:
    """The environment variable of a setting's place in an error (``()``: the whole)."""
    if not where:
        return "settings"
    prefix = str(Settings.model_config.get("env_prefix", ""))
    return f"{prefix}{where[0]}".upper()


def private_file_mode() -> int:
    return 0o600 if os.name == "posix" else 0o666
