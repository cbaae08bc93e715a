"""Every audit entry names the call through the gate that wrote it (``request_id``): the
same for the entries of one request, different for two requests, even identical ones in
the same microsecond, so that forensics can group a request's entries and tell two
real reads from an entry written twice."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from carevault.bootstrap import Services
from carevault.bulk.importer import Importer
from carevault.bulk.journal import Journal
from carevault.bulk.loader import Loader
from carevault.bulk.sources import bundles_to_ndjson
from carevault.domain.roles import Role
from carevault.ledger.events import Outcome, Tag
from carevault.web.app import create_app
from tests.support.client import FhirTestClient, register_patient
from tests.support.ledgers import audit_events
from tests.support.staff import make_staff
from tests.support.synthea import BUNDLES


def test_entries_name_their_request_and_identical_reads_differ(services: Services) -> None:
    with FhirTestClient(create_app(services.settings, services)) as web:
        officer = make_staff(services, Role.PRIVACY_OFFICER, ["clinic-a"])
        desk = make_staff(services, Role.FRONT_DESK, ["clinic-a"])
        stranger = make_staff(services, Role.FRONT_DESK, ["clinic-b"])
        first = register_patient(web, officer.headers, desk.headers, "clinic-a", "Ida", "Wong")
        register_patient(web, officer.headers, desk.headers, "clinic-a", "Ivan", "Wong")
        before = len(audit_events(services))
        # The same read twice in the same microsecond, by the same token.
        now = services.vault.clock()
        services.vault.clock = lambda: now  # type: ignore[method-assign]
        for _ in range(2):
            assert web.get(f"/fhir/Patient/{first}", headers=desk.headers).status_code == 200
        assert web.get("/fhir/Patient?family=Wong", headers=desk.headers).status_code == 200
        assert web.get(f"/fhir/Patient/{first}", headers=stranger.headers).status_code in (
            403,
            404,
        )
    entries = audit_events(services)[before:]
    reads = [
        e
        for e in entries
        if e.tag is Tag.FHIR_READ and e.principal == f"staff:{desk.account.username}"
    ]
    assert len(reads) == 2 and reads[0].at_us == reads[1].at_us
    assert reads[0].request_id and reads[1].request_id
    assert reads[0].request_id != reads[1].request_id
    assert reads[0].canonical() != reads[1].canonical()
    searched = [
        e
        for e in entries
        if e.tag is Tag.FHIR_SEARCH and e.principal == f"staff:{desk.account.username}"
    ]
    assert len(searched) == 1 and searched[0].request_id not in {e.request_id for e in reads}
    # A refusal names its request too.
    refused = [e for e in entries if e.principal == f"staff:{stranger.account.username}"]
    assert refused and all(e.outcome is Outcome.DENIED and e.request_id for e in refused)
    # No two requests ever share an id.
    ids = Counter(e.request_id for e in entries)
    assert ids[None] == 0


def test_the_entries_of_one_batch_share_its_id_and_batches_differ(
    services: Services, tmp_path: Path
) -> None:
    # A bulk load's batch is one call through the gate: one entry per patient, one id.
    files = bundles_to_ndjson(BUNDLES, tmp_path)
    loader = Loader(services.gate, services.now_us, checker=None, batch_size=40)
    report = Importer(loader, Journal(services.engine, services.keys)).run(files)
    assert report.rejected == 0
    loaded = [e for e in audit_events(services) if e.tag is Tag.FHIR_IMPORT]
    by_request: dict[str | None, set[str | None]] = {}
    for entry in loaded:
        by_request.setdefault(entry.request_id, set()).add(entry.patient_pseudonym)
    assert None not in by_request
    # Several batches, and a batch with several patients' entries under its one id.
    assert len(by_request) > 3
    assert max(len(patients) for patients in by_request.values()) >= 2
