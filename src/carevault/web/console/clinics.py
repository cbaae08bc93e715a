"""Clinic names for labels, read through the gate as the viewer (Organization is
directory data, readable by every console role) and kept for a few minutes, so the
dashboard does not add a ledger entry on every view."""

from __future__ import annotations

import json
import threading
import time
from zoneinfo import ZoneInfo

from carevault.bootstrap import Services
from carevault.containment.state import ContainmentActive
from carevault.fhir.query import parse_query
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate import AccessDenied, Caller

KEEP_SECONDS = 300.0


class ClinicNames:
    """One per app: Organization id → name, refreshed every ``KEEP_SECONDS``."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self._lock = threading.Lock()
        self._names: dict[str, str] = {}
        self._read_at = float("-inf")

    def get(self, caller: Caller) -> dict[str, str]:
        with self._lock:
            if time.monotonic() - self._read_at < KEEP_SECONDS:
                return self._names
        query = parse_query(
            RESOURCE_TYPES["Organization"],
            [("_count", "200")],
            strict=True,
            zone=ZoneInfo(self.svc.settings.timezone),
            default_count=200,
            max_count=max(200, self.svc.settings.search_max_count),
        )
        try:
            found, _ = self.svc.gate.search(caller, query)
        except (AccessDenied, ContainmentActive):
            # Key lockdown refuses every search: label clinics by id until it is released.
            return {}
        names = {
            item.head.resource_id: str(
                json.loads(item.body or b"{}").get("name") or item.head.resource_id
            )
            for item in found
        }
        with self._lock:
            self._names, self._read_at = names, time.monotonic()
        return names
