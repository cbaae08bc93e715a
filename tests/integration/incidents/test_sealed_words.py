"""An incident's title and an amendment's title and note are what a privacy officer types,
and may name a patient: a thief with the home's files or a ``pg_dump`` (without the key
files) finds none of their words, and every place that shows them still does (adversary
round 67, stop 54). Round 67's ``haystacks``, ``needles`` and ``find`` do the looking."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy import insert, select
from typer.testing import CliRunner

from carevault.bootstrap import Services
from carevault.cli import app
from carevault.domain.roles import Role
from carevault.incidents import Actor, compute_scope, declare_case, incidents_for, runs
from carevault.incidents.model import Amendment
from carevault.incidents.service import AMENDED_REASON, DECLARED_REASON
from carevault.incidents.tables import incident
from carevault.incidents.words import PREFIX
from carevault.ledger.events import AuditEvent, Tag
from tests.integration.access.group import Group, build_group
from tests.integration.seeding.plaintext import Haystack, describe, find
from tests.integration.seeding.test_no_plaintext import pg_dump
from tests.integration.vault.test_adversary_round67 import Secret, haystacks, hkid, needles
from tests.support.client import FhirTestClient
from tests.support.ledgers import record_reads

pytestmark = pytest.mark.postgres

runner = CliRunner()


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


OFFICER = Actor("staff:officer1", "198.51.100.7")
PATIENT_HKID = hkid("K", "135790")
TITLE = f"Dr Lam looked up Marzipanolo Quibbleworth, {PATIENT_HKID}"
NEW_TITLE = "Dr Lam also looked up Fennelbrook Ostrichplume"
NOTE = "Marzipanolo's mother Gooseberrylane rang the clinic"
SECRETS = [
    Secret("Marzipanolo", "a patient's given name in the title"),
    Secret("Quibbleworth", "a patient's family name in the title"),
    Secret(PATIENT_HKID, "a patient's HKID in the title"),
    Secret(PATIENT_HKID[:-3], "a patient's HKID without its check digit"),
    Secret("Fennelbrook", "a patient's name in the amended title"),
    Secret("Ostrichplume", "a patient's name in the amended title"),
    Secret("Gooseberrylane", "a relative's name in the amendment's note"),
]


def _declared_and_amended(services: Services) -> int:
    services.accounts.add("thief", "Thief", Role.FRONT_DESK, ["tm"], "correct horse battery")
    record_reads(services, "staff:thief", range(2))
    found = declare_case(
        services,
        OFFICER,
        {
            "title": TITLE,
            "accounts": ["thief"],
            "since": "2026-01-01T00:00:00+00:00",
            "until": "2026-01-02T00:00:00+00:00",
        },  # fmt: skip
    )
    incidents_for(services).amend(OFFICER, found.incident_id, Amendment(title=NEW_TITLE, note=NOTE))
    return found.incident_id


def _stolen(services: Services) -> list[Haystack]:
    """The home without the key custodian's part (as round 67's thief), and a pg_dump."""
    taken = [
        found
        for found in haystacks(services.settings.home, "home")
        if not found.name.startswith("home/keys/") or found.name.startswith("home/keys/keys.db")
    ]
    if not services.settings.is_sqlite:
        taken.append(Haystack("pg_dump", pg_dump(services.settings)))
    return taken


def _cli(services: Services, monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    settings = services.settings
    for name, value in (("ENVIRONMENT", "test"), ("ARGON2_MEMORY_KIB", "8192"),
                        ("ARGON2_TIME_COST", "1"), ("CHECKPOINT_SECONDS", "0")):  # fmt: skip
        monkeypatch.setenv(f"CAREVAULT_{name}", value)
    if settings.database_url is not None:
        monkeypatch.setenv("CAREVAULT_DATABASE_URL", settings.database_url)
    result = runner.invoke(app, ["incident", *args, "--home", str(settings.home)])
    assert result.exit_code == 0, result.output
    return result.output


def test_an_incidents_words_are_not_in_the_stolen_files_and_are_shown_where_they_were(
    services: Services, group: Group, monkeypatch: pytest.MonkeyPatch
) -> None:
    incident_id = _declared_and_amended(services)

    hits = find(_stolen(services), needles(SECRETS))
    assert not hits, describe(hits, limit=100)
    with services.engine.connect() as connection:
        stored = connection.execute(select(incident.c.title)).scalar_one()
    assert stored.startswith(PREFIX)
    entries = [
        AuditEvent.from_canonical(data)
        for _, data in services.audit_ledger.store.find(actor=OFFICER.principal, limit=100)
    ]
    reasons = {event.tag: event.reason for event in entries}
    assert reasons[Tag.INCIDENT_DECLARED] == DECLARED_REASON
    assert reasons[Tag.INCIDENT_AMENDED] == AMENDED_REASON

    # Every reader shows the words as typed.
    shown = json.loads(_cli(services, monkeypatch, "show", str(incident_id)))
    assert shown["title"] == NEW_TITLE
    assert NEW_TITLE in _cli(services, monkeypatch, "list")
    timeline = json.loads(_cli(services, monkeypatch, "timeline", str(incident_id)))
    amended = next(item for item in timeline if item["kind"] == "amended")
    assert amended["detail"]["changes"]["title"] == NEW_TITLE
    assert amended["detail"]["changes"]["note"] == NOTE
    document = json.loads(
        _cli(services, monkeypatch, "scope", str(incident_id), "--format", "json")
    )
    assert set(document) == {"incident", "tiers", "changed", "registered", "counts"}
    assert document["incident"]["title"] == NEW_TITLE
    officer = group.officer.headers
    shown = group.web.get(f"/admin/incidents/{incident_id}", headers=officer).json()
    assert shown["title"] == NEW_TITLE
    listed = group.web.get("/admin/incidents", headers=officer).json()
    assert [item["title"] for item in listed["incidents"]] == [NEW_TITLE]
    timeline = group.web.get(f"/admin/incidents/{incident_id}/timeline", headers=officer)
    changes = next(
        item["detail"]["changes"]
        for item in timeline.json()["timeline"]
        if item["kind"] == "amended"
    )
    assert (changes["title"], changes["note"]) == (NEW_TITLE, NOTE)


def test_an_incident_stored_before_its_title_was_sealed_reads_as_typed_until_amended(
    services: Services,
) -> None:
    with services.engine.begin() as connection:
        connection.execute(
            insert(incident).values(
                title="Phished before r0031",
                status="open",
                declared_us=1,
                declared_by="cli",
                since_us=1,
                until_us=None,
                compromised='{"accounts":["thief"]}',
                updated_us=1,
            )  # fmt: skip
        )
    (found,) = incidents_for(services).all()
    assert found.title == "Phished before r0031"
    # Its next amendment seals it.
    incidents_for(services).amend(OFFICER, found.incident_id, Amendment(note="reset"))
    with services.engine.connect() as connection:
        assert connection.execute(select(incident.c.title)).scalar_one().startswith(PREFIX)
    assert incidents_for(services).get(found.incident_id).title == "Phished before r0031"


def test_a_kept_scope_run_does_not_keep_the_incidents_title(services: Services) -> None:
    """The kept document is sealed at rest and opened to the text its digest was made of:
    none of the title's words in the files, and the run reads back whole, its title as
    typed, matching its digest and its ledger entry."""
    incident_id = _declared_and_amended(services)
    computed = compute_scope(services, incident_id, actor=OFFICER)
    hits = find(_stolen(services), needles(SECRETS))
    assert not hits, describe(hits, limit=100)
    kept = incidents_for(services).scope_run(incident_id)
    assert kept.document is not None and kept.document == computed.document
    assert kept.sha256 == computed.sha256 == runs.digest(runs.canonical(kept.document))
    assert incidents_for(services).get(incident_id).title.encode() in runs.canonical(kept.document)


def test_a_title_moved_to_another_incident_does_not_open(services: Services) -> None:
    first = _declared_and_amended(services)
    second = declare_case(
        services,
        OFFICER,
        {"title": "another", "accounts": ["thief"], "since": "2026-01-01T00:00:00+00:00"},
    ).incident_id
    with services.engine.begin() as connection:
        sealed = connection.execute(
            select(incident.c.title).where(incident.c.incident_id == first)
        ).scalar_one()
        connection.execute(
            incident.update().where(incident.c.incident_id == second).values(title=sealed)
        )
    with pytest.raises(Exception, match="integrity"):
        incidents_for(services).get(second)
