"""Where the simulator gets alerts from: the detection engine, when one is installed.

The detection engine (``carevault.detect``) is built separately. Once it is part of the
installation, ``installed_alerts`` asks it for every alert as ``carevault alerts list
--json`` gives them (``carevault.sim.evaluate.ALERT_KEYS``); until then it returns None
and ``carevault sim evaluate`` says so instead of scoring nothing as if it were a result.
The engine is expected to offer ``alerts_as_dicts(services) -> list[dict]``; a saved
``carevault alerts list --json`` output can always be passed as a file instead.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from pathlib import Path
from typing import Any

from carevault.bootstrap import Services

ENGINE = "carevault.detect"
LISTING = "alerts_as_dicts"
NOT_INSTALLED = (
    "no detection engine is installed (the package carevault.detect is not there): "
    "there are no alerts to score. Pass --alerts FILE with the output of "
    "'carevault alerts list --json' to score a saved list."
)


def engine_installed() -> bool:
    return importlib.util.find_spec(ENGINE) is not None


def installed_alerts(services: Services) -> list[dict[str, Any]] | None:
    """The engine's alerts, or None if no engine (or no listing function) is installed."""
    if not engine_installed():
        return None
    engine = importlib.import_module(ENGINE)
    listing = getattr(engine, LISTING, None)
    if listing is None:
        return None
    found = listing(services)
    return [dict(alert) for alert in found]


def alerts_from_file(path: Path) -> list[dict[str, Any]]:
    """A saved ``carevault alerts list --json``: a list of alerts, or {"alerts": [...]}."""
    document = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(document, dict):
        document = document.get("alerts", [])
    if not isinstance(document, list):
        raise ValueError(f"{path}: expected a JSON list of alerts")
    return [dict(alert) for alert in document]
