"""Small attack scenarios for the integration tests: every method and kind of account."""

from __future__ import annotations

from carevault.sim.attack.spec import Scenario, parse


def _scenario(name: str, who: dict[str, str], when: dict[str, object],
              what: dict[str, object], **extra: dict[str, str]) -> Scenario:  # fmt: skip
    kind = "key-unwrap" if who["account"] == "key-service" else "gate"
    document = {
        "scenario": {"name": name, "description": f"test scenario {name}", "kind": kind},
        "who": who,
        "when": when,
        "what": what,
        **extra,
    }
    return parse(document, f"{name}.toml")


SCENARIOS = [
    _scenario(
        "stolen-read",
        {"account": "stolen", "role": "physician"},
        {"days": [1], "from_hour": 19, "to_hour": 21},
        {
            "patients": ["one-clinic"],
            "method": "read",
            "resources": ["Observation", "Condition"],
            "per_hour": 60,
            "per_day": 12,
        },  # fmt: skip
        where={"source_address": "203.0.113.66", "user_agent": "curl/8.9.1"},
    ),
    _scenario(
        "everything-random",
        {"account": "existing", "role": "front_desk"},
        {"days": [2], "from_hour": 10, "to_hour": 12},
        {"patients": ["random"], "method": "everything", "per_hour": 30, "per_day": 8},
    ),
    _scenario(
        "integration-search",
        {"account": "integration", "client": "lab-interface"},
        {"days": [2], "from_hour": 1, "to_hour": 3},
        {
            "patients": ["random"],
            "method": "search",
            "page_size": 10,
            "per_hour": 20,
            "per_day": 4,
        },  # fmt: skip
        where={"source_address": "198.51.100.23"},
    ),
    _scenario(
        "new-paging",
        {"account": "new", "role": "clinic_manager"},
        {"days": [1], "from_hour": 20, "to_hour": 22},
        {
            "patients": ["everyone"],
            "method": "paging",
            "page_size": 10,
            "per_hour": 200,
            "per_day": 30,
        },  # fmt: skip
    ),
    _scenario(
        "coworker-snoop",
        {"account": "existing", "role": "front_desk"},
        {"days": [2], "from_hour": 14, "to_hour": 16},
        {"patients": ["coworkers"], "method": "read", "per_hour": 20, "per_day": 3},
    ),
    _scenario(
        "unwrap",
        {"account": "key-service", "principal": "system:backup-agent"},
        {"days": [2], "from_hour": 2, "to_hour": 3},
        {"patients": ["random"], "per_hour": 60, "per_day": 5},
    ),
]
