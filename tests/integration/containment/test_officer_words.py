"""What officers type about containment, staff and alerts (why an account is suspended,
why a measure is lifted, why an alert is dismissed, why a session was ended) often names
a patient: "read Mrs Chan's chart". A thief with the home's files or a ``pg_dump``
(without the key files) finds none of it; every place that shows it still does; words
moved to another row do not open there; and key lockdown, which releases no patient's
key, still lets an officer contain and see why (stop 55, after round 67's thief)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy import insert, select, update

from carevault.bootstrap import Services
from carevault.containment.service import RELEASED_REASON, STARTED_REASON, Officer
from carevault.containment.state import Mode
from carevault.containment.tables import containment
from carevault.detect.desk import OfficerCode
from carevault.detect.model import Access, Finding, Severity
from carevault.domain.roles import Role
from carevault.keys.provider import KeyProviderUnavailable
from carevault.keys.words import PREFIX, WITHHELD
from carevault.ledger.events import AuditEvent, Tag
from tests.integration.access.group import Group, build_group
from tests.integration.incidents.test_sealed_words import _stolen
from tests.integration.seeding.plaintext import describe, find
from tests.integration.vault.test_adversary_round67 import Secret, hkid, needles
from tests.support.client import FhirTestClient
from tests.support.server import environment, invoke_cli
from tests.support.staff import Staff, make_staff

pytestmark = pytest.mark.postgres

PATIENT_HKID = hkid("P", "246802")
SUSPEND_WHY = f"read Wobblethorpe Quinceberry's chart ({PATIENT_HKID}) with no visit"
RELEASE_WHY = "Quinceberry's daughter Marmaladina confirmed she asked for the copy"
DISMISS_WHY = "Dr Fizzlewick is Quinceberry's GP"
STAFF_WHY = "HR: complaint by Gherkinbottom about her records"
SESSION_WHY = "left open on Pumpernickelle's bedside tablet"
SECRETS = [
    Secret("Wobblethorpe", "a patient's given name in a suspension's reason"),
    Secret("Quinceberry", "a patient's family name in several reasons"),
    Secret(PATIENT_HKID, "a patient's HKID in a suspension's reason"),
    Secret(PATIENT_HKID[:-3], "the HKID without its check digit"),
    Secret("Marmaladina", "a relative's name in a release's reason"),
    Secret("Fizzlewick", "a doctor's name in an alert's dismissal"),
    Secret("Gherkinbottom", "a patient's name in a host operator's suspension"),
    Secret("Pumpernickelle", "a patient's name in a session's ending"),
]


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _entries(services: Services, tag: Tag) -> list[AuditEvent]:
    found = (
        AuditEvent.from_canonical(data, seq=seq)
        for seq, data in services.audit_ledger.store.entries()
    )
    return [event for event in found if event.tag is tag]


def _alert(services: Services, username: str) -> int:
    """An alert about ``username``, as the detectors would raise it."""
    access = Access(position=1, at_us=services.now_us(), tag="fhir:patient:read",
                    outcome="success", principal=f"staff:{username}", role="nurse")  # fmt: skip
    finding = Finding("snooping", Severity.HIGH, "day", "read without care", access)
    with services.engine.begin() as connection:
        (raised,) = services.detection.alerts.upsert(connection, [finding], services.now_us())
    return raised.alert.alert_id


def _officer(staff: Staff) -> Officer:
    return Officer(staff.account.username, staff.totp(), "198.51.100.7")


def _day_of_words(services: Services, group: Group) -> tuple[int, int]:
    """Every kind of officer's words said once; (the suspension's id, the alert's)."""
    suspected = make_staff(services, Role.NURSE, ["clinic-tm"])
    started = services.contain.start(
        _officer(group.officer), Mode.ACCOUNT_SUSPENDED, suspected.account.username, SUSPEND_WHY
    )
    blocked = services.contain.start(
        _officer(group.officer), Mode.BLOCK_ADDRESS, "203.0.113.0/24", SUSPEND_WHY
    )
    # A second officer, as TOTP codes are single-use (three a 30 s step at most).
    colleague = make_staff(services, Role.PRIVACY_OFFICER, ["clinic-tm"])
    services.contain.release(_officer(colleague), blocked.containment_id, RELEASE_WHY)
    alert_id = _alert(services, suspected.account.username)
    code = OfficerCode(colleague.account.username, colleague.totp())
    services.detection.desk.handle(code, str(alert_id), "dismissed", DISMISS_WHY)
    other = make_staff(services, Role.FRONT_DESK, ["clinic-tm"])
    services.admin.suspend("admin:host", other.account.username, reason=STAFF_WHY)
    desk = group.desk_tm.account
    (session,) = [item for item in services.sessions.live() if item.account_id == desk.account_id]
    assert services.admin.end_session("admin:host", session.session_id, reason=SESSION_WHY)
    return started.containment_id, alert_id


def test_officers_words_are_not_in_the_stolen_files_and_are_shown_where_they_were(
    services: Services, group: Group
) -> None:
    suspension, _ = _day_of_words(services, group)

    hits = find(_stolen(services), needles(SECRETS))
    assert not hits, describe(hits, limit=100)
    with services.engine.connect() as connection:
        stored = connection.execute(select(containment.c.reason)).scalars().all()
    assert stored and all(reason.startswith(PREFIX) for reason in stored)

    # The ledger names the words and carries them sealed; each opens to what was typed.
    (started, _) = _entries(services, Tag.CONTAIN_STARTED)
    assert started.reason == STARTED_REASON and started.detail["reason_sealed"].startswith(PREFIX)
    (released,) = _entries(services, Tag.CONTAIN_RELEASED)
    assert released.reason == RELEASED_REASON
    (handled,) = _entries(services, Tag.DETECT_ALERT_HANDLED)
    assert services.detection.desk.reason_of(handled) == DISMISS_WHY
    suspended = [
        event
        for event in _entries(services, Tag.ADMIN_STAFF_SUSPENDED)
        if event.principal == "admin:host"
    ]
    assert [services.admin.reason_of(event) for event in suspended] == [STAFF_WHY]
    (ended,) = _entries(services, Tag.ADMIN_SESSION_ENDED)
    assert services.admin.reason_of(ended) == SESSION_WHY

    # Every page and listing shows the measure's reason as typed.
    assert services.containment.get(suspension).reason == SUSPEND_WHY
    assert [item.reason for item in services.containment.refresh().active] == [SUSPEND_WHY]
    shown = group.web.get("/admin/containment", headers=group.officer.headers)
    assert shown.status_code == 200, shown.text
    assert SUSPEND_WHY in json.dumps(shown.json(), ensure_ascii=False)
    env = environment(services.settings.home, services.settings.database_url)
    status = invoke_cli(env, "status")
    assert status.returncode == 0 and SUSPEND_WHY in status.stdout, status.stdout + status.stderr


def test_a_reason_moved_to_another_measure_does_not_open_there(
    services: Services, group: Group
) -> None:
    first = services.contain.start(
        _officer(group.officer), Mode.BLOCK_ADDRESS, "203.0.113.0/24", SUSPEND_WHY
    )
    second = services.contain.start(
        _officer(group.officer), Mode.BLOCK_ADDRESS, "192.0.2.0/24", "routine"
    )
    with services.engine.begin() as connection:
        sealed = connection.execute(
            select(containment.c.reason).where(containment.c.containment_id == first.containment_id)
        ).scalar_one()
        connection.execute(
            update(containment)
            .where(containment.c.containment_id == second.containment_id)
            .values(reason=sealed)
        )
    moved = services.containment.get(second.containment_id)
    assert "could not be opened" in moved.reason and "Quinceberry" not in moved.reason
    # The page still answers, and says so rather than showing either measure's words.
    shown = group.web.get("/admin/containment", headers=group.officer.headers)
    assert shown.status_code == 200 and "could not be opened" in shown.text
    assert services.containment.get(first.containment_id).reason == SUSPEND_WHY


def test_a_measure_stored_before_reasons_were_sealed_reads_as_typed(services: Services) -> None:
    with services.engine.begin() as connection:
        connection.execute(
            insert(containment).values(
                mode=Mode.READ_ONLY.value,
                target=None,
                reason="drill before stop 55",
                started_us=1,
                started_by="staff:officer",
            )  # fmt: skip
        )
    (item,) = services.containment.refresh().active
    assert item.reason == "drill before stop 55"


def test_under_key_lockdown_an_officer_still_contains_and_sees_why(
    services: Services, group: Group
) -> None:
    """Key lockdown releases no patient's key; the officers' words key is spared, as the
    credentials key is, or an officer could not suspend an account from a process started
    during the lockdown an incident called for (the CLI: a process of its own, no key at
    hand)."""
    services.contain.start(_officer(group.officer), Mode.KEY_LOCKDOWN, None, "incident 4")
    assert services.containment.refresh().key_lockdown
    patient = group.call(group.doctor_tm, "GET", f"/fhir/Patient/{group.tm_patient.id}")
    assert patient.status_code == 503
    suspected = make_staff(services, Role.NURSE, ["clinic-tm"])
    env = environment(services.settings.home, services.settings.database_url)
    officer = group.officer
    done = invoke_cli(
        env, "contain", "start", "account-suspended", "--target", suspected.account.username,
        "--reason", SUSPEND_WHY, "--officer", officer.account.username, "--totp", officer.totp(),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert services.accounts.find(suspected.account.username).suspended  # type: ignore[union-attr]
    status = invoke_cli(env, "status")
    assert status.returncode == 0 and SUSPEND_WHY in status.stdout, status.stdout + status.stderr


def test_a_measure_goes_ahead_when_the_key_service_cannot_seal_its_reason(
    services: Services, group: Group, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key service (an HSM) out of reach does not stop containment, the emergency
    brake: the measure starts, and its reason is not kept rather than kept in the clear."""
    provider = services.keys.provider if services.keys is not None else None
    if provider is None:
        pytest.skip("encryption is off: nothing is sealed")

    def out_of_reach(*_: object) -> bytes:
        raise KeyProviderUnavailable("the HSM does not answer")

    monkeypatch.setattr(provider, "wrap", out_of_reach)
    monkeypatch.setattr(provider, "unwrap", out_of_reach)
    # The officer's code is checked with the credentials key this server process holds
    # since the officer signed in; the officers' words key was never needed here yet.
    started = services.contain.start(
        _officer(group.officer), Mode.BLOCK_ADDRESS, "203.0.113.0/24", SUSPEND_WHY
    )
    assert services.containment.refresh().blocked("203.0.113.9")
    kept = services.containment.get(started.containment_id).reason
    assert kept == WITHHELD.format(why="KeyProviderUnavailable")
    (entry,) = _entries(services, Tag.CONTAIN_STARTED)
    assert entry.reason == kept and "reason_sealed" not in entry.detail
    hits = find(_stolen(services), needles(SECRETS))
    assert not hits, describe(hits, limit=100)
