"""Detection: abnormal access noticed from the audit ledger as it is committed, and
contained automatically (see docs/detection.md).

``build_detection`` wires the engine for the composition root; ``alerts_as_dicts``
and ``alert_case`` are what the simulator's scorecard and the incident work read.
"""

from __future__ import annotations

import ipaddress
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from carevault.bootstrap import Services


def alerts_as_dicts(services: Services) -> list[dict[str, Any]]:
    """Every alert, as ``carevault alerts list --json`` gives them, after bringing the
    detectors up to the whole ledger (so an offline run can be scored)."""
    from carevault.detect.listing import described

    detection = services.detection
    if detection is None:
        raise RuntimeError("detection is not configured in these services")
    detection.engine.catch_up()
    return described(detection.alerts.list(), services.audit_ledger.store)


#: Detectors whose alerts are about where an account acted from: the address in them is
#: the suspect's place (a network the account had not used, a second place at once, a
#: download from elsewhere, a run of failed sign-ins), which an incident holds.
PLACE_DETECTORS = frozenset(
    {"two-places", "unusual-hour-new-place", "export-download", "sign-in-failures"}
)


def alert_case(services: Services, alert_id: str | int) -> dict[str, Any]:
    """What an incident needs to know of an alert's case: its title, the accounts,
    client apps and source addresses involved, and the time window (``until`` None
    while the case is open). KeyError for an unknown alert.

    A member of staff's alert holds their account, not the app they used nor the
    address they acted from, unless the alert is about that place (``PLACE_DETECTORS``):
    a desk's ``breadth`` through the EHR app every clinician uses, from the clinic's
    address, held both, and the scope confirmed every colleague's reads of the window
    beside the desk's (left open since stop 39; stop 64). A client's alert, or a bound
    integration account's (``_programs``), holds the client and where it acted from.
    The officer adds an app or an address by hand (``--client``, ``--address``) where
    the thief used it."""
    from carevault.detect.alerts import iso

    detection = services.detection
    if detection is None:
        raise RuntimeError("detection is not configured in these services")
    alert = detection.alerts.get(alert_id)
    case = detection.alerts.list(case=alert.case_key)
    programs = _programs(services, case)
    networks = sorted(
        {
            str(ipaddress.ip_network(a.source_address or ""))
            for a in case
            if _is_address(a.source_address)
            and (not a.account or a.detector in PLACE_DETECTORS or a.client in programs)
        }
    )
    still_open = any(a.status == "open" for a in case)
    who = alert.account or alert.client or alert.case_key.removeprefix("case:")
    # A process that is neither a staff account nor a client app (a gate bypass: the key
    # service's credentials used by something on the host) is named by its principal, as
    # the unwrap ledger names it: the scope's decrypted tier follows that principal.
    processes = {
        principal
        for a in case
        if not (a.account or a.client)
        and (principal := a.case_key.removeprefix("case:")).startswith("system:")
    }
    return {
        "title": f"{alert.detector} by {who}: {alert.explanation}"[:200],
        "accounts": sorted({a.account for a in case if a.account} | processes),
        "clients": sorted(programs),
        "addresses": networks,
        "since": iso(_first_evidence_us(services, case)),
        "until": None if still_open else iso(max(a.updated_us for a in case)),
    }


def _first_evidence_us(services: Services, case: list[Any]) -> int:
    """When the case's evidence begins: the earliest first ledger entry of its alerts
    (what the account did before the alert is what the incident must cover), or the
    start of the hour of a gate bypass's unwraps (its evidence is in the unwrap ledger, and
    the detectors may judge them long after), or the earliest raising time."""
    from carevault.detect.bypass import evidence_start_us

    earliest = int(min(a.raised_us for a in case))
    for alert in case:
        began = evidence_start_us(alert) if alert.first_position is None else None
        if began is not None:
            earliest = min(earliest, began)
    store = services.audit_ledger.store
    for position in {a.first_position for a in case if a.first_position is not None}:
        data = store.entry(int(position))
        if data is not None:
            earliest = min(earliest, int(json.loads(data)["at_us"]))
    return earliest


def _programs(services: Services, case: list[Any]) -> set[str]:
    """The client apps a case's alerts hold compromised: a client acting as itself, or a
    backend service (no redirect URI: its secret is what acts) acting for the
    integration account it is bound to; not the app a member of staff signed in through
    (every clinician's EHR app). An app no longer known is held, as it was named."""
    held: set[str] = set()
    for alert in case:
        if not alert.client or alert.client in held:
            continue
        app = services.clients.get(alert.client) if alert.account else None
        if not alert.account or app is None or not app.redirect_uris:
            held.add(alert.client)
    return held


def _is_address(text: str | None) -> bool:
    try:
        ipaddress.ip_address(text or "")
    except ValueError:
        return False
    return True
