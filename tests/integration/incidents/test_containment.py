"""An incident's timeline shows the containment actions that contain it, not those of
another incident declared beside it."""

from __future__ import annotations

import pytest

from carevault.bootstrap import Services
from carevault.containment.state import Mode
from carevault.incidents import Actor, declare_case, incidents_for, scope_document
from tests.support.staff import add_account, add_client

pytestmark = pytest.mark.postgres

OFFICER = Actor("staff:officer1", "10.1.2.3")


def test_a_timeline_shows_only_its_own_incidents_containment(services: Services) -> None:
    add_account(services, "thief")
    add_client(services, "scraper-app")
    mine = declare_case(services, OFFICER, {"title": "Phished", "accounts": ["thief"],
                                            "since": "2026-01-01"})  # fmt: skip
    other = declare_case(services, OFFICER, {"title": "Scraper", "clients": ["scraper-app"],
                                             "addresses": ["198.51.100.0/24"],
                                             "since": "2026-01-01"})  # fmt: skip
    store = services.containment
    suspended = store.start(Mode.ACCOUNT_SUSPENDED, "thief", "phished", "staff:officer1")
    store.start(Mode.CLIENT_REVOKED, "scraper-app", "scraping", "staff:officer1")
    store.start(Mode.BLOCK_ADDRESS, "198.51.100.0/24", "scraping", "staff:officer1")
    incidents = incidents_for(services)
    started = [
        item["detail"]
        for item in incidents.timeline(mine.incident_id)
        if item["kind"] == "containment-started"
    ]
    assert started == [{"mode": "account-suspended", "target": "thief",
                        "containment": suspended.containment_id}]  # fmt: skip
    theirs = [
        item["detail"]["target"]
        for item in incidents.timeline(other.incident_id)
        if item["kind"] == "containment-started"
    ]
    assert theirs == ["scraper-app", "198.51.100.0/24"]


def test_the_scope_document_lists_the_incidents_own_containment(services: Services) -> None:
    add_account(services, "thief")
    mine = declare_case(services, OFFICER, {"title": "Phished", "accounts": ["thief"],
                                            "since": "2026-01-01"})  # fmt: skip
    assert scope_document(services, mine.incident_id)["incident"]["containment"] == []
    store = services.containment
    store.start(Mode.ACCOUNT_SUSPENDED, "someone-else", "another case", "staff:officer1")
    suspended = store.start(Mode.ACCOUNT_SUSPENDED, "thief", "phished", "staff:officer1")
    listed = scope_document(services, mine.incident_id)["incident"]["containment"]
    assert [(a["id"], a["mode"], a["target"], a["reason"], a["released_at"]) for a in listed] == [
        (suspended.containment_id, "account-suspended", "thief", "phished", None)
    ]
    assert listed[0]["started_at"].endswith("Z")
