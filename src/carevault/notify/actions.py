"""The officer's notification actions as single calls, for every front end (the console
today; ``carevault notify send`` and ``report decide`` do the same steps): the
incident's scope from the incidents module, the send job, the decisions and the
regulators' clocks. Each step is the service the CLI uses, recorded the same way."""

from __future__ import annotations

from typing import TYPE_CHECKING

from carevault.notify.decisions import DECISIONS, Decision, decisions_for
from carevault.notify.job import Advance, Progress
from carevault.notify.reporting import open_clocks
from carevault.notify.reports import REGULATORS
from carevault.notify.scope import NOTIFIED_TIERS, Scope, parse_scope
from carevault.notify.service import send_job
from carevault.notify.store import NoticeStore

if TYPE_CHECKING:
    from carevault.bootstrap import Services


def scope_of(services: Services, incident_id: str, principal: str | None = None) -> Scope:
    """The incident's scope as the incidents module computes it now (a recorded run)."""
    from carevault.incidents import SCOPE_ACTOR, Actor, scope_document

    actor = Actor(principal) if principal else SCOPE_ACTOR
    return parse_scope(scope_document(services, int(incident_id), actor=actor))


def named_accounts(services: Services, incident_id: str) -> tuple[str, ...]:
    """The accounts the incident names as compromised (the holders of the sessions it
    names too), and every other account of their
    people (``Registry.same_people``): none for a reference that is not
    one of CareVault's incidents (notices may be sent for an incident scoped elsewhere,
    ``INC-2026-001`` with ``--scope``), which names no account here. Any other failure
    to read the incident is raised, never taken to name no one."""
    from carevault.incidents import IncidentError, incidents_for
    from carevault.incidents.registry import Directory

    if not incident_id.isdigit():
        return ()
    try:
        compromised = incidents_for(services).get(int(incident_id)).compromised
    except IncidentError:
        return ()  # no such incident here: one scoped elsewhere under a number
    # A session named is its holder named (adversary round 58).
    directory = Directory(services)
    accounts = (*compromised.accounts, *sorted(directory.holders(compromised.sessions)))
    # Every account of the people named: a doctor's officer login does not decide on the
    # incident about their physician login (adversary round 56).
    return (*accounts, *sorted(directory.same_people(accounts)))


def tiers_of(services: Services, incident_id: str) -> tuple[str, ...]:
    """The tiers an incident's notices go to: those of its earlier run, or the default."""
    job = NoticeStore(services.engine).job(incident_id)
    return tuple(str(job["tiers"]).split(",")) if job is not None else NOTIFIED_TIERS


def confirm_start(
    services: Services, incident_id: str, officer: str, totp: str, source: str | None
) -> None:
    """The officer's go for the notices, with a fresh TOTP code: ``notify:job:started``
    naming them is in the ledger when this returns (``StartRefused``, recorded, if not)."""
    decisions_for(services).start_job(
        incident_id, officer, totp, tiers=tiers_of(services, incident_id), source=source
    )


def send_notices(services: Services, incident_id: str, advance: Advance | None = None) -> Progress:
    """Send every notice of the incident (resumable), to the tiers of its earlier run or
    the notified tiers; opens the regulators' clocks first, as ``notify send`` does. Only
    after ``confirm_start``: the officer's go is what lets it speak to patients."""
    scope = scope_of(services, incident_id)
    open_clocks(services, scope)
    return send_job(services).run(scope, tiers_of(services, incident_id), advance)


def decide(
    services: Services, incident_id: str, regulator: str, decision: str, reason: str,
    officer: str, totp: str,
) -> None:  # fmt: skip
    """The officer's decision on notifying ``regulator``: confirmed with a fresh code,
    in the ledger with its reason (``DecisionRefused`` otherwise), then the clock stops."""
    if regulator not in REGULATORS or decision not in DECISIONS:
        raise ValueError(f"regulator: one of {REGULATORS}; decision: one of {DECISIONS}")
    decisions_for(services).record(
        Decision(incident_id, regulator, decision, reason, officer),
        totp,
        {},
        named=named_accounts(services, incident_id),
    )
    NoticeStore(services.engine).close_clock(
        incident_id,
        regulator,
        decision=decision,
        filed_us=services.now_us() if decision != "notify" else None,
    )
