"""``_lastUpdated`` (and any other) searches of health records by a role that may not
see sensitive records (issue 14): answered from the blind sensitivity markers in SQL,
not by opening every candidate, so they work far beyond the candidate limit; the role
gets exactly the ordinary records, counted and paged without the sensitive ones. Records
indexed before the markers are opened and checked (within the limit), refused as too
costly beyond it, and answer again after ``carevault reindex``. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import delete

from carevault.bootstrap import Services, build_services
from carevault.domain.roles import Role
from carevault.fhir.indexing import ORDINARY_TERM, SENSITIVE_TERM, SENSITIVITY
from carevault.vault.tables import search_token
from carevault.web.app import create_app
from tests.conftest import make_settings
from tests.support.client import FhirTestClient
from tests.support.schemas import module_schema
from tests.support.staff import Staff, make_staff

#: Far below the number of Observations: a search that opened every candidate is refused.
CANDIDATE_LIMIT = 4
ORDINARY = 9
HIV_TEST = {"system": "http://loinc.org", "code": "75622-1", "display": "HIV 1 and 2 tests"}
RESTRICTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}
#: A sensitivity policy label another system put on a result it coded only in text.
HIV_LABEL = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "HIV"}


@dataclass
class Clinic:
    web: FhirTestClient
    services: Services
    doctor: Staff
    pharmacist: Staff
    ordinary: set[str]
    sensitive: set[str]
    since: str


@pytest.fixture(scope="module")
def clinic(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Clinic]:
    backend = request.param
    with ExitStack() as stack:
        url = None
        if backend == "postgres":
            url = stack.enter_context(module_schema(request.getfixturevalue("pg_database")))
        home = tmp_path_factory.mktemp(f"sensitive-{backend}")
        settings = make_settings(home, url, sort_candidate_limit=CANDIDATE_LIMIT)
        services = build_services(settings, create_keys=True, migrate=True)
        stack.callback(services.close)
        web = stack.enter_context(FhirTestClient(create_app(settings, services)))
        yield _seed(web, services)


def _seed(web: FhirTestClient, services: Services) -> Clinic:
    desk = make_staff(services, Role.FRONT_DESK, ["clinic-a"])
    doctor = make_staff(services, Role.PHYSICIAN, ["clinic-a"])
    pharmacist = make_staff(services, Role.PHARMACIST, ["clinic-a"])
    web.put_json(
        "/fhir/Organization/clinic-a",
        {"resourceType": "Organization", "id": "clinic-a", "name": "A"},
        **desk.headers,
    )
    patients = [
        web.post_json(
            "/fhir/Patient",
            {"resourceType": "Patient", "name": [{"family": f"Marker{n}"}]},
            **desk.headers,
        ).json()["id"]
        for n in range(2)
    ]
    for patient in patients:
        visit = {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": f"Patient/{patient}"},
            "serviceProvider": {"reference": "Organization/clinic-a"},
            "period": {"start": "2026-11-30T09:00:00+08:00"},
        }
        assert web.post_json("/fhir/Encounter", visit, **desk.headers).status_code == 201
    ordinary: set[str] = set()
    sensitive: set[str] = set()
    since = ""
    kinds: list[dict[str, Any]] = [{} for _ in range(ORDINARY)]
    kinds += [{"code": {"coding": [HIV_TEST]}}, {"meta": {"security": [RESTRICTED]}}]
    kinds += [{"code": {"coding": [HIV_TEST]}}, {"meta": {"security": [HIV_LABEL]}}]
    for number, kind in enumerate(kinds):
        body: dict[str, Any] = {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": f"reading {number}"},
            "subject": {"reference": f"Patient/{patients[number % 2]}"},
            "effectiveDateTime": "2026-11-30T09:00:00+08:00",
            **kind,
        }
        made = web.post_json("/fhir/Observation", body, **doctor.headers)
        assert made.status_code == 201, made.text
        (ordinary if not kind else sensitive).add(made.json()["id"])
        since = since or made.json()["meta"]["lastUpdated"]
    return Clinic(web, services, doctor, pharmacist, ordinary, sensitive, since)


def _found(clinic: Clinic, staff: Staff, search: str) -> tuple[set[str], int]:
    """Every id over all pages of ``search``, and the first page's total."""
    page = clinic.web.get(f"/fhir/{search}", headers=staff.headers)
    assert page.status_code == 200, page.text
    bundle = page.json()
    total = bundle["total"]
    ids: list[str] = []
    while True:
        ids += [entry["resource"]["id"] for entry in bundle.get("entry", [])]
        following = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        if not following:
            break
        bundle = clinic.web.get(following[0], headers=staff.headers).json()
    assert len(ids) == len(set(ids))  # no record on two pages
    return set(ids), total


def _drop_markers(clinic: Clinic, *, keep: int) -> None:
    """Records as an earlier version indexed them: Observations without markers, but
    ``keep`` of them."""
    vault = clinic.services.vault
    markers = [
        vault.token("Observation", SENSITIVITY, term) for term in (ORDINARY_TERM, SENSITIVE_TERM)
    ]
    with vault.engine.begin() as connection:
        rows = [
            row.row_id
            for row in connection.execute(
                search_token.select().where(search_token.c.token.in_(markers))
            )
        ]
        connection.execute(
            delete(search_token).where(
                search_token.c.row_id.in_(rows[keep:]), search_token.c.token.in_(markers)
            )
        )


pytestmark = pytest.mark.parametrize("clinic", ["sqlite", "postgres"], indirect=True)


def test_last_updated_search_without_sensitive_rights_finds_exactly_the_ordinary_records(
    clinic: Clinic,
) -> None:
    ids, total = _found(
        clinic, clinic.pharmacist, f"Observation?_lastUpdated=ge{clinic.since}&_count=2"
    )
    assert ids == clinic.ordinary
    assert total == ORDINARY
    assert not ids & clinic.sensitive


def test_a_role_with_sensitive_rights_still_finds_every_record(clinic: Clinic) -> None:
    ids, total = _found(
        clinic, clinic.doctor, f"Observation?_lastUpdated=ge{clinic.since}&_count=5"
    )
    assert ids == clinic.ordinary | clinic.sensitive
    assert total == ORDINARY + len(clinic.sensitive)


def test_counts_and_other_filters_leave_out_sensitive_records(clinic: Clinic) -> None:
    count = clinic.web.get(
        f"/fhir/Observation?_lastUpdated=ge{clinic.since}&_summary=count",
        headers=clinic.pharmacist.headers,
    )
    assert count.json()["total"] == ORDINARY
    hiv = clinic.web.get(
        "/fhir/Observation?code=http://loinc.org|75622-1", headers=clinic.pharmacist.headers
    )
    assert hiv.status_code == 200
    assert hiv.json()["total"] == 0
    assert "entry" not in hiv.json()
    ids, _ = _found(clinic, clinic.pharmacist, "Observation?_lastUpdated=lt2000-01-01")
    assert ids == set()


def test_records_indexed_before_the_markers_are_checked_once_opened_then_reindexed(
    clinic: Clinic,
) -> None:
    search = f"Observation?_lastUpdated=ge{clinic.since}&_count=3"
    try:
        # A few unmarked records (within the candidate limit): opened and checked.
        _drop_markers(clinic, keep=len(clinic.ordinary) + len(clinic.sensitive) - CANDIDATE_LIMIT)
        assert _found(clinic, clinic.pharmacist, search) == (clinic.ordinary, ORDINARY)
        # More than the limit: refused, naming the way out, never answered with more.
        _drop_markers(clinic, keep=0)
        refused = clinic.web.get(f"/fhir/{search}", headers=clinic.pharmacist.headers)
        assert refused.status_code == 400
        issue = refused.json()["issue"][0]
        assert issue["code"] == "too-costly"
        assert "carevault reindex" in issue["diagnostics"]
        # A role that sees everything needs no marker.
        assert _found(clinic, clinic.doctor, search)[1] == ORDINARY + len(clinic.sensitive)
    finally:
        clinic.services.gate.reindex("cli:test", batch=5)
    assert _found(clinic, clinic.pharmacist, search) == (clinic.ordinary, ORDINARY)
