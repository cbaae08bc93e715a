"""Every answer names its request (``X-Request-ID``), and every audit entry the request
led to carries the same name: an integrator or a forensic firm goes from a client's log
line to the ledger entries of that request, and back. The name is the server's own:
one sent by the client is not taken."""

from __future__ import annotations

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from carevault.ledger.events import Outcome, Tag
from carevault.web.app import create_app
from tests.support.client import FhirTestClient, register_patient
from tests.support.ledgers import audit_events
from tests.support.staff import make_staff


def test_answers_and_their_audit_entries_share_the_requests_name(services: Services) -> None:
    with FhirTestClient(create_app(services.settings, services)) as web:
        officer = make_staff(services, Role.PRIVACY_OFFICER, ["clinic-a"])
        desk = make_staff(services, Role.FRONT_DESK, ["clinic-a"])
        stranger = make_staff(services, Role.FRONT_DESK, ["clinic-b"])
        patient = register_patient(web, officer.headers, desk.headers, "clinic-a", "Ida", "Wong")
        before = len(audit_events(services))
        read = web.get(
            f"/fhir/Patient/{patient}", headers={**desk.headers, "x-request-id": "chosen-by-me"}
        )
        refused = web.get(f"/fhir/Patient/{patient}", headers=stranger.headers)
        unsigned = web.get(f"/fhir/Patient/{patient}", headers={"authorization": "Bearer nope"})
        searched = web.get("/fhir/Patient?family=Wong", headers=desk.headers)
    assert read.status_code == 200 and refused.status_code in (403, 404)
    assert unsigned.status_code == 401 and searched.status_code == 200
    names = [response.headers["x-request-id"] for response in (read, refused, unsigned, searched)]
    assert len(set(names)) == 4 and "chosen-by-me" not in names
    assert all(len(name) == 16 and int(name, 16) >= 0 for name in names)
    entries = audit_events(services)[before:]
    by_name = {name: [e for e in entries if e.request_id == name] for name in names}
    (read_entry,) = by_name[names[0]]
    assert read_entry.tag is Tag.FHIR_READ and read_entry.outcome is Outcome.SUCCESS
    assert read_entry.principal == f"staff:{desk.account.username}"
    assert by_name[names[1]] and all(e.outcome is Outcome.DENIED for e in by_name[names[1]])
    assert [e.tag for e in by_name[names[2]]] == [Tag.AUTH_TOKEN_REFUSED]
    assert [e.tag for e in by_name[names[3]]] == [Tag.FHIR_SEARCH]
    # Every entry these four requests wrote names one of them.
    assert {e.request_id for e in entries} == set(names)
