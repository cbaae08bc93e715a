"""Adversary round 68: the AuditEvent search's new parameters (integrator round 67) as
an anonymous caller, an officer's narrowed token and an officer trying to read a
patient's accesses without its being released."""

from __future__ import annotations

from urllib.parse import quote

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from carevault.ledger.events import AuditEvent, Tag
from tests.integration.ledger.conftest import CLINIC, StaffToken, bearer, patient
from tests.support.client import FhirTestClient
from tests.support.staff import make_staff, open_token


def _released(services: Services, since: int) -> list[str | None]:
    """The patients named by the officer's AuditEvent searches from position ``since``."""
    return sorted(
        event.resource_id
        for seq, data in services.audit_ledger.store.entries()
        if seq >= since
        and (event := AuditEvent.from_canonical(data, seq=seq)).tag is Tag.AUDIT_READ
        and event.reason == "AuditEvent search"
    )


def test_no_caller_but_a_whole_account_officer_reaches_the_new_parameters(
    web: FhirTestClient, services: Services, staff_token: StaffToken
) -> None:
    desk = staff_token(Role.FRONT_DESK)
    someone = patient(web, desk, "Chan")
    officer = make_staff(services, Role.PRIVACY_OFFICER, [CLINIC])
    narrowed = bearer(open_token(services, officer.account, "user/Patient.rs"))
    queries = (
        f"entity=Patient/{someone}&_total=accurate",
        "entity=Patient/no-such-patient&_total=accurate",
        "type=rest&_sort=-date&_before=999",
    )
    for headers, status in (({}, 401), (narrowed, 403)):
        answers = [web.get(f"/fhir/AuditEvent?{query}", headers=headers) for query in queries]
        assert {answer.status_code for answer in answers} == {status}
        assert len({answer.content for answer in answers}) == 1
        assert all("total" not in answer.text for answer in answers)


def test_odd_entity_spellings_release_the_patient_or_are_refused(
    web: FhirTestClient, services: Services, staff_token: StaffToken
) -> None:
    """Two entities, an entity beside another patient, an entity with a trailing newline:
    every patient whose entries might be answered is released."""
    desk, officer = staff_token(Role.FRONT_DESK), staff_token(Role.PRIVACY_OFFICER)
    first, second = patient(web, desk, "Lau"), patient(web, desk, "Ho")
    start, _ = services.audit_ledger.store.head()
    for query, whose in (
        (f"entity=Patient/{first}&entity=Patient/{second}", [first, second]),
        (f"entity=Patient/{first}&patient={second}", [first, second]),
        (f"entity={quote(f'Patient/{first}' + chr(10))}", [first]),
    ):
        answer = web.get(f"/fhir/AuditEvent?{query}", headers=bearer(officer))
        assert answer.status_code == 200, (query, answer.text)
        assert _released(services, start) == sorted(whose), query
        start, _ = services.audit_ledger.store.head()
    for query in (
        f"entity=Patient/{first}/_history/1",
        f"entity=PATIENT/{first}",
        f"entity={quote(f' Patient/{first}')}",
    ):
        answer = web.get(f"/fhir/AuditEvent?{query}", headers=bearer(officer))
        assert answer.status_code == 400 or not answer.json()["entry"], query


def test_an_officer_finds_the_attempts_at_an_id_no_record_holds_by_the_id_typed(
    web: FhirTestClient, services: Services, staff_token: StaffToken
) -> None:
    """Round 67 names an id no record holds by its keyed digest in the ledger; an officer
    told "someone typed WX9081729 where a record's id goes" searches ``entity`` by what
    they were told, and must find the attempts (the search's own entry keeps no trace of
    the id typed)."""
    desk, officer = staff_token(Role.FRONT_DESK), staff_token(Role.PRIVACY_OFFICER)
    for path in ("Patient/WX9081729", "Patient/WX9081729/_history", "Patient/WX9081729"):
        assert web.get(f"/fhir/{path}", headers=bearer(desk)).status_code == 404
    found = web.get("/fhir/AuditEvent?entity=Patient/WX9081729", headers=bearer(officer))
    assert found.status_code == 200, found.text
    assert len(found.json()["entry"]) == 3
    assert b"WX9081729" not in b"".join(data for _, data in services.audit_ledger.store.entries())
    other = web.get("/fhir/AuditEvent?entity=Patient/WX9081730", headers=bearer(officer))
    assert other.json()["entry"] == []


def test_pages_walked_while_the_ledger_grows_repeat_and_miss_nothing(
    web: FhirTestClient, staff_token: StaffToken
) -> None:
    """A desk keeps reading between an officer's pages: newest first, every page is below
    the last (nothing repeated, the entries written since are above the walk: the next
    poll's); oldest first, the walk runs on into them."""
    desk, officer = staff_token(Role.FRONT_DESK), staff_token(Role.PRIVACY_OFFICER)
    someone = patient(web, desk, "Yip")

    def walk(query: str) -> list[int]:
        seen: list[int] = []
        while query:
            page = web.get(f"/fhir/AuditEvent?{query}", headers=bearer(officer)).json()
            seen += [int(e["resource"]["id"].removeprefix("audit-")) for e in page["entry"]]
            web.get(f"/fhir/Patient/{someone}", headers=bearer(desk))  # the ledger grows
            following = [link["url"] for link in page["link"] if link["relation"] == "next"]
            query = following[0].partition("?")[2] if following else ""
        return seen

    for _ in range(5):
        web.get(f"/fhir/Patient/{someone}", headers=bearer(desk))
    newest = walk("subtype=fhir:resource:read&_sort=-date&_count=2")
    assert newest == sorted(set(newest), reverse=True) and len(newest) == 5
    oldest = walk("subtype=fhir:resource:read&_count=2")
    # Oldest first runs on into the reads written during both walks.
    assert oldest == sorted(set(oldest)) and len(oldest) > len(newest)


def test_forged_cursors_are_refused_or_read_as_a_window(
    web: FhirTestClient, staff_token: StaffToken, services: Services
) -> None:
    officer = staff_token(Role.PRIVACY_OFFICER)
    for query in ("_before=9999999999999999999", "_after=%2B1", "_after=1&_after=2"):
        answer = web.get(f"/fhir/AuditEvent?{query}", headers=bearer(officer))
        assert answer.status_code == 400, (query, answer.text)
    before, _ = services.audit_ledger.store.head()
    empty = web.get("/fhir/AuditEvent?_after=5&_before=3", headers=bearer(officer))
    assert empty.status_code == 200 and empty.json()["entry"] == []
    # Whatever the cursors, the search is recorded.
    assert services.audit_ledger.store.head()[0] == before + 1
