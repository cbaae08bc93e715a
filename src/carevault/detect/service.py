"""The detection service as the composition root builds it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from carevault.access.accounts import StaffAccounts
from carevault.access.admin import Administration
from carevault.access.sessions import Sessions
from carevault.config import Settings
from carevault.containment.state import ContainmentStore
from carevault.detect.alerts import AlertStore
from carevault.detect.budget import Budgets, ReleaseBudget
from carevault.detect.bypass import BypassCheck
from carevault.detect.decoys import DecoyContacts
from carevault.detect.desk import AlertDesk
from carevault.detect.engine import DetectionEngine
from carevault.detect.explain import Explainer
from carevault.detect.flags import Flags
from carevault.detect.kin import Kinship
from carevault.detect.notify import AlertSinks
from carevault.detect.respond import Policy, Responder
from carevault.detect.signals import Detectors
from carevault.domain.care import CareWindow
from carevault.keys.words import SealedWords
from carevault.ledger.service import Ledger


@dataclass
class Detection:
    alerts: AlertStore
    flags: Flags
    kinship: Kinship
    decoys: DecoyContacts
    budget: ReleaseBudget
    engine: DetectionEngine
    responder: Responder
    sinks: AlertSinks
    desk: AlertDesk
    enabled: bool
    #: Whether the engine's thread runs in this process (``Settings.detect_thread``).
    threaded: bool = True

    def start(self) -> None:
        if self.enabled and self.threaded:
            self.engine.start()

    def close(self) -> None:
        self.engine.stop()
        self.sinks.close()


def zone_offset_us(zone: str) -> int:
    offset = datetime.now(ZoneInfo(zone)).utcoffset()
    return int(offset.total_seconds() * 1_000_000) if offset else 0


def build_detection(
    settings: Settings,
    engine: Engine,
    audit_ledger: Ledger,
    unwrap_ledger: Ledger,
    practitioner_token: Callable[[str], bytes],
    kin_token: Callable[[str, str], bytes],
    decoy_token: Callable[[str, str], bytes],
    pseudonym_of: Callable[[str], str | None],
    containment: ContainmentStore,
    admin: Administration,
    accounts: StaffAccounts,
    sessions: Sessions,
    now_us: Callable[[], int],
    grant_genuine: Callable[[Any], bool],
    care_genuine: Callable[[Mapping[Any, Any]], bool],
    words: SealedWords | None = None,
) -> Detection:
    """``words`` seals officers' reasons for handling alerts (``AlertDesk``);
    ``grant_genuine`` and ``care_genuine`` tell a break-the-glass grant and a care
    relationship as CareVault wrote them from ones written in the database
    (``BreakGlass.genuine``, ``CareRelationships.genuine``), which explain no access."""
    offset = zone_offset_us(settings.timezone)
    alerts = AlertStore(engine)
    flags = Flags(engine, now_us)
    kinship = Kinship(engine, kin_token, now_us)
    decoys = DecoyContacts(flags, decoy_token)
    budget = ReleaseBudget(Budgets.parse(settings.release_budget), flags.throttled, offset)
    sinks = AlertSinks(
        smtp_host=settings.alert_smtp_host,
        smtp_port=settings.alert_smtp_port,
        sender=settings.alert_email_from,
        recipients=[a.strip() for a in settings.alert_email_to.split(",") if a.strip()],
        webhook_url=settings.alert_webhook_url,
    )
    responder = Responder(
        Policy.parse(settings.detect_responses),
        alerts,
        containment,
        admin,
        accounts,
        sessions,
        flags,
        audit_ledger.writer,
        sinks,
        now_us,
        audit_ledger.store,
    )
    detection_engine = DetectionEngine(
        engine,
        audit_ledger.store,
        Explainer(
            engine,
            practitioner_token,
            CareWindow.of_days(settings.care_days_before, settings.care_days_after),
            grant_genuine,
            care_genuine,
        ),
        alerts,
        flags,
        now_us,
        bypass=BypassCheck(engine, unwrap_ledger.store, audit_ledger.store, now_us),
        kinship=kinship,
        on_raised=responder,
        offset_us=offset,
        poll_seconds=settings.detect_poll_seconds,
        kin_grace_us=int(settings.detect_kin_grace_seconds * 1_000_000),
        detectors=Detectors(
            settings.detect_client_writes_per_hour,
            settings.detect_break_glass_per_hour,
            settings.detect_staff_changes_per_10_minutes,
            settings.detect_after_step_up,
            settings.detect_client_care_per_10_minutes,
        ),
    )
    threaded = settings.detect and settings.detect_thread
    if threaded:
        # What this process commits is handed to its engine's thread in memory; without
        # the thread, another process reads it back from the ledger.
        audit_ledger.writer.listeners.append(detection_engine.committed)
    desk = AlertDesk(
        alerts, flags, accounts, audit_ledger.writer, pseudonym_of, now_us, kinship, decoys,
        words,
    )  # fmt: skip
    return Detection(
        alerts, flags, kinship, decoys, budget, detection_engine, responder, sinks, desk,
        settings.detect, threaded,
    )  # fmt: skip
