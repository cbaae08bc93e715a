"""Which containment actions are an incident's own (pure).

A containment switch names no incident: it names what it acts on. An action is this
incident's when it acts on something the incident holds compromised (its account
suspended, its client revoked, its addresses blocked, its clinic locked), or when it
acts on everything (patient data offline, read-only, key lockdown) and was started
while the incident's window was open. Either way it must have been in force at some
time from the window's start on: an account suspended and released a year before is
not this incident's containment. The timeline, the scope document (and through it the
notices and regulators' reports) all take the incident's containment from here, so
none of them claims another incident's.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from carevault.containment.state import Containment, Mode
from carevault.incidents.model import Incident, instant, principal_of


def own_actions(incident: Incident, actions: Iterable[Containment]) -> list[Containment]:
    """The actions of ``actions`` that contain ``incident``, oldest first."""
    return sorted(
        (action for action in actions if _contains(incident, action)),
        key=lambda action: (action.started_us, action.containment_id),
    )


def as_json(action: Containment) -> dict[str, Any]:
    """An action as the scope document's ``incident.containment`` lists it."""
    return {
        "id": action.containment_id,
        "mode": action.mode.value,
        "target": action.target,
        "reason": action.reason,
        "started_at": instant(action.started_us),
        "started_by": action.started_by,
        "released_at": instant(action.released_us) if action.released_us is not None else None,
    }


def _contains(incident: Incident, action: Containment) -> bool:
    if action.released_us is not None and action.released_us < incident.since_us:
        return False
    compromised = incident.compromised
    target = action.target or ""
    # Accounts and client ids however the incident spells them (``Chan.TM``, an id
    # typed in another case before clients were checked), as its scope matches them.
    if action.mode is Mode.ACCOUNT_SUSPENDED:
        return principal_of(target) in {principal_of(account) for account in compromised.accounts}
    if action.mode is Mode.CLIENT_REVOKED:
        return target.casefold() in {client.strip().casefold() for client in compromised.clients}
    if action.mode is Mode.CLINIC_LOCK:
        return target in compromised.clinics
    if action.mode is Mode.BLOCK_ADDRESS:
        return _overlaps(target, compromised.addresses)
    # A switch that acts on everything contains every incident whose window it fell in.
    until = incident.until_us
    return action.started_us >= incident.since_us and (until is None or action.started_us <= until)


def _overlaps(target: str, addresses: Iterable[str]) -> bool:
    try:
        blocked = ipaddress.ip_network(target, strict=False)
    except ValueError:
        return False
    for text in addresses:
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            continue
        if network.version == blocked.version and network.overlaps(blocked):
            return True
    return False
