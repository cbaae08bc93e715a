"""Attack scenarios as TOML files: parsed, checked field by field, never guessed.

The format is documented in docs/scenarios.md. Every error names the file and the
field (``[what] per_hour``) and says what was expected; unknown sections and fields
are errors, so a misspelt field never silently becomes a default.
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

KINDS = ("gate", "key-unwrap")
ACCOUNTS = ("existing", "stolen", "new", "terminated", "integration", "key-service")
ROLES = ("physician", "nurse", "pharmacist", "front_desk", "billing", "clinic_manager")
TARGETS = ("random", "same-surname", "same-address", "vip", "coworkers", "one-clinic", "everyone")
METHODS = ("read", "search", "everything", "paging")
RESOURCES = (
    "Observation", "Condition", "MedicationRequest", "AllergyIntolerance", "Encounter",
    "Appointment", "Coverage", "Claim", "DiagnosticReport", "Immunization", "DocumentReference",
)  # fmt: skip
USUAL = "usual"


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class Who:
    account: str
    role: str | None = None
    username: str | None = None
    client: str | None = None
    principal: str | None = None


@dataclass(frozen=True)
class When:
    days: tuple[int, ...] = ()
    dates: tuple[date, ...] = ()
    from_hour: int = 9
    to_hour: int = 18


@dataclass(frozen=True)
class Where:
    source_address: str = USUAL
    user_agent: str = USUAL


@dataclass(frozen=True)
class What:
    patients: tuple[str, ...] = ("random",)
    anchor: str = "vip"
    clinic: str = "own"
    per_hour: int = 100
    per_day: int = 1000
    total: int | None = None
    method: str = "read"
    page_size: int = 50
    resources: tuple[str, ...] = ()


@dataclass(frozen=True)
class How:
    #: The extra patients a day as a share of the account's usual distinct patients a day.
    usual_volume_fraction: float | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    kind: str
    who: Who
    when: When
    where: Where = field(default_factory=Where)
    what: What = field(default_factory=What)
    how: How = field(default_factory=How)
    source: str = ""


# --- checking values -----------------------------------------------------------------------

Check = Callable[[str, Any], Any]


def _fail(name: str, message: str) -> ScenarioError:
    return ScenarioError(f"{name}: {message}")


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(name, f"expected a non-empty string, got {value!r}")
    return value.strip()


def _one_of(options: tuple[str, ...]) -> Check:
    def check(name: str, value: Any) -> str:
        text = _text(name, value)
        if text not in options:
            raise _fail(name, f"expected one of {', '.join(options)}; got {text!r}")
        return text

    return check


def _integer(low: int, high: int) -> Check:
    def check(name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(name, f"expected an integer, got {value!r}")
        if not low <= value <= high:
            raise _fail(name, f"expected {low} to {high}, got {value}")
        return value

    return check


def _fraction(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(name, f"expected a number, got {value!r}")
    if not 0 < value <= 10:
        raise _fail(name, f"expected more than 0 and at most 10, got {value}")
    return float(value)


def _list_of(item: Check) -> Check:
    def check(name: str, value: Any) -> tuple[Any, ...]:
        if not isinstance(value, list) or not value:
            raise _fail(name, f"expected a non-empty list, got {value!r}")
        return tuple(item(f"{name}[{index}]", entry) for index, entry in enumerate(value))

    return check


def _calendar_date(name: str, value: Any) -> date:
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise _fail(name, f"expected a date (YYYY-MM-DD), got {value!r}")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _fail(name, f"{value!r} is not a real date (YYYY-MM-DD)") from None


def _address(name: str, value: Any) -> str:
    text = _text(name, value)
    if text == USUAL:
        return text
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise _fail(name, f"expected an IP address or {USUAL!r}, got {text!r}") from None
    return text


_FIELDS: dict[str, dict[str, Check]] = {
    "scenario": {"name": _text, "description": _text, "kind": _one_of(KINDS)},
    "who": {
        "account": _one_of(ACCOUNTS),
        "role": _one_of(ROLES),
        "username": _text,
        "client": _text,
        "principal": _text,
    },
    "when": {
        "days": _list_of(_integer(1, 366)),
        "dates": _list_of(_calendar_date),
        "from_hour": _integer(0, 23),
        "to_hour": _integer(1, 24),
    },
    "where": {"source_address": _address, "user_agent": _text},
    "what": {
        "patients": _list_of(_one_of(TARGETS)),
        "anchor": _one_of(("vip", "self")),
        "clinic": _text,
        "per_hour": _integer(1, 100_000),
        "per_day": _integer(1, 1_000_000),
        "total": _integer(1, 10_000_000),
        "method": _one_of(METHODS),
        "page_size": _integer(1, 1000),
        "resources": _list_of(_one_of(RESOURCES)),
    },
    "how": {"usual_volume_fraction": _fraction},
}
_REQUIRED = {"scenario": ("name", "description", "kind"), "who": ("account",), "when": ()}


def _section(document: Mapping[str, Any], section: str) -> dict[str, Any]:
    raw = document.get(section, {})
    if not isinstance(raw, dict):
        raise _fail(f"[{section}]", "expected a table")
    allowed = _FIELDS[section]
    checked: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in allowed:
            raise _fail(f"[{section}] {key}", f"unknown field (known: {', '.join(allowed)})")
        checked[key] = allowed[key](f"[{section}] {key}", value)
    for key in _REQUIRED.get(section, ()):
        if key not in checked:
            raise _fail(f"[{section}] {key}", "this field is required")
    return checked


def parse(document: Mapping[str, Any], source: str = "<scenario>") -> Scenario:
    """A checked scenario from a parsed TOML document; ScenarioError names what is wrong."""
    try:
        return _parse(document, source)
    except ScenarioError as error:
        raise ScenarioError(f"{source}: {error}") from None


def _parse(document: Mapping[str, Any], source: str) -> Scenario:
    for section in document:
        if section not in _FIELDS:
            raise _fail(f"[{section}]", f"unknown section (known: {', '.join(_FIELDS)})")
    for section in _REQUIRED:
        if section not in document:
            raise _fail(f"[{section}]", "this section is required")
    head = _section(document, "scenario")
    who = Who(**_section(document, "who"))
    when = When(**_section(document, "when"))
    where = Where(**_section(document, "where"))
    what = What(**_section(document, "what"))
    how = How(**_section(document, "how"))
    _consistent(head["kind"], who, when, what)
    return Scenario(
        head["name"], head["description"], head["kind"], who, when, where, what, how, source
    )


def _consistent(kind: str, who: Who, when: When, what: What) -> None:
    """Rules between fields, each error naming the field to change."""
    if bool(when.days) == bool(when.dates):
        raise _fail("[when] days", "give either days (of the run) or dates, not both or neither")
    if when.to_hour <= when.from_hour:
        raise _fail("[when] to_hour", f"must be after from_hour ({when.from_hour})")
    if kind == "key-unwrap":
        if who.account != "key-service":
            raise _fail("[who] account", "a key-unwrap scenario acts as 'key-service'")
        if what.method != "read":
            raise _fail("[what] method", "a key-unwrap scenario unwraps keys: method is 'read'")
        return
    if who.account == "key-service":
        raise _fail("[who] account", "'key-service' is for kind = 'key-unwrap'")
    if who.account == "integration":
        if who.client is None:
            raise _fail("[who] client", "an integration scenario names its client app")
    elif who.role is None and who.username is None:
        raise _fail("[who] role", f"a {who.account!r} account needs a role (or a username)")
    if who.account in ("new",) and who.username is not None:
        raise _fail("[who] username", "a new account gets its name from the simulator")
    if "same-address" in what.patients and what.anchor == "self" and who.account == "integration":
        raise _fail("[what] anchor", "an integration has no home address")


def load(path: Path) -> Scenario:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ScenarioError(f"{path}: not valid TOML: {error}") from None
    except OSError as error:
        raise ScenarioError(f"{path}: cannot be read: {error.strerror}") from None
    return parse(document, str(path))


def shipped() -> list[Path]:
    """The scenario files shipped with CareVault."""
    folder = Path(__file__).with_name("scenarios")
    return sorted(folder.glob("*.toml"))


def check_dates(scenario: Scenario, start: date, days: int) -> None:
    """Days and dates must fall inside the run."""
    for number in scenario.when.days:
        if number > days:
            raise ScenarioError(
                f"{scenario.source}: [when] days: day {number} is after the run's {days} days"
            )
    for moment in scenario.when.dates:
        if not 0 <= (moment - start).days < days:
            raise ScenarioError(
                f"{scenario.source}: [when] dates: {moment} is outside the run "
                f"({start} and {days} days)"
            )
