"""History at instance, type and system level, on SQLite and PostgreSQL: paged with
``_count`` and next links, narrowed by ``_since``, and read as a search reads (the
policy's reach, each version judged by the facts it had then and has now, the release
budget, one audit entry per patient naming the versions returned)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from carevault.bootstrap import Services, build_services
from carevault.domain.roles import Role
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.web.app import create_app
from tests.conftest import make_settings
from tests.integration.access.group import TM, Group, build_group, observation
from tests.integration.rest.test_interactions import create, patient
from tests.support.client import FhirTestClient, transfer_body
from tests.support.staff import Staff, make_staff

Version = tuple[str, str, str]


def _versions(bundle: dict[str, Any]) -> list[Version]:
    """(type, id, version) of each entry, as its response's ETag names it."""
    found = []
    for entry in bundle.get("entry", []):
        kind, ident = entry["request"]["url"].split("/")
        found.append((kind, ident, entry["response"]["etag"].split('"')[1]))
    return found


def _next(bundle: dict[str, Any]) -> str | None:
    url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
    return None if url is None else url[url.index("/fhir/") :]


def _walk(get: Any, path: str) -> list[Version]:
    """Every entry of every page, following next links."""
    seen: list[Version] = []
    url: str | None = path
    while url is not None:
        response = get(url)
        assert response.status_code == 200, response.text
        bundle = response.json()
        assert bundle["type"] == "history"
        seen += _versions(bundle)
        url = _next(bundle)
    return seen


def test_instance_history_pages_with_count_and_next_links(api: FhirTestClient) -> None:
    created = create(api, patient())
    for gender in ("other", "female", "male"):
        api.put_json(f"/fhir/Patient/{created['id']}", {**created, "gender": gender})
    path = f"/fhir/Patient/{created['id']}/_history"
    first = api.get(f"{path}?_count=3").json()
    assert first["total"] == 4
    assert [v for _, _, v in _versions(first)] == ["4", "3", "2"]
    assert [v for _, _, v in _walk(api.get, f"{path}?_count=3")] == ["4", "3", "2", "1"]
    third = api.get(f"/fhir/Patient/{created['id']}/_history/3").json()
    since = api.get(path, params={"_since": third["meta"]["lastUpdated"]}).json()
    assert [v for _, _, v in _versions(since)] == ["4", "3"] and since["total"] == 2


def test_history_refuses_what_it_does_not_support(api: FhirTestClient) -> None:
    created = create(api, patient())
    for path in (
        f"/fhir/Patient/{created['id']}/_history?_at=2024",
        "/fhir/Patient/_history?_list=x",
        "/fhir/_history?_sort=_lastUpdated",
        "/fhir/_history?_count=many",
        "/fhir/_history?_since=yesterday",
    ):
        refused = api.get(path)
        assert refused.status_code == 400, (path, refused.text)
        assert refused.json()["resourceType"] == "OperationOutcome"
    assert api.get("/fhir/NoSuchType/_history").status_code == 404


def test_type_history_holds_every_version_of_the_type_newest_first(api: FhirTestClient) -> None:
    one = create(api, patient())
    two = create(api, patient("Wong", "Ka Yan", "Z683365(A)"))
    api.put_json(f"/fhir/Patient/{one['id']}", {**one, "gender": "other"})
    note = create(api, observation(two["id"]))
    assert api.delete(f"/fhir/Observation/{note['id']}").status_code == 204

    walked = _walk(api.get, "/fhir/Patient/_history?_count=2")
    assert walked == [
        ("Patient", one["id"], "2"),
        ("Patient", two["id"], "1"),
        ("Patient", one["id"], "1"),
    ]
    first = api.get("/fhir/Patient/_history?_count=2").json()
    assert "total" not in first and len(first["entry"]) == 2
    observations = api.get("/fhir/Observation/_history").json()
    assert [entry["request"]["method"] for entry in observations["entry"]] == ["DELETE", "POST"]

    everything = _walk(api.get, "/fhir/_history?_count=2")
    assert set(walked) | {("Observation", note["id"], "2"), ("Observation", note["id"], "1")} == (
        set(everything)
    )
    updated = api.get(f"/fhir/Patient/{one['id']}").json()["meta"]["lastUpdated"]
    since = api.get("/fhir/_history", params={"_since": updated}).json()
    assert _versions(since) == [
        ("Observation", note["id"], "2"),
        ("Observation", note["id"], "1"),
        ("Patient", one["id"], "2"),
    ]


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _returned(group: Group) -> list[str]:
    references: list[str] = []
    for event in group.events(Tag.FHIR_HISTORY):
        if event.principal != "system:test" and event.outcome is Outcome.SUCCESS:
            references += event.detail.get("returned", [])
    return references


def test_a_front_desk_sees_only_its_clinics_history_and_no_clinical_history(
    group: Group,
) -> None:
    desk = group.desk_tm
    tm, tw = group.tm_patient.id, group.tw_patient.id

    def get(path: str) -> Any:
        return group.call(desk, "GET", path)

    patients = _walk(get, "/fhir/Patient/_history?_count=1")
    assert patients == [("Patient", tm, "1")]
    refused = get("/fhir/Observation/_history")
    assert refused.status_code == 403
    assert refused.json()["resourceType"] == "OperationOutcome"
    system = _walk(get, "/fhir/_history?_count=50")
    assert ("Patient", tm, "1") in system
    assert not [v for v in system if v[0] == "Observation"]
    assert not [v for v in system if v[1] == tw]
    # Every version returned is in the ledger, and nothing else is.
    assert sorted(_returned(group)) == sorted(
        f"{kind}/{ident}/_history/{version}" for kind, ident, version in patients + system
    )
    denied = [e for e in group.events(Tag.FHIR_HISTORY) if e.outcome is Outcome.DENIED]
    assert len(denied) == 1 and denied[0].resource_type == "Observation"


def test_a_doctor_sees_the_clinical_history_of_their_patients_only(group: Group) -> None:
    def get(path: str) -> Any:
        return group.call(group.doctor_tm, "GET", path)

    observations = _walk(get, "/fhir/Observation/_history")
    assert observations == [("Observation", group.tm_patient.observation, "1")]
    assert group.tw_patient.id not in {ident for _, ident, _ in _walk(get, "/fhir/_history")}


def test_a_moved_patients_older_versions_stay_with_the_old_clinic(group: Group) -> None:
    moved = group.call(
        group.officer,
        "POST",
        f"/fhir/Patient/{group.tw_patient.id}/$transfer",
        transfer_body(TM),
    )
    assert moved.status_code == 200, moved.text

    def by(who: Staff) -> list[Version]:
        return _walk(lambda path: group.call(who, "GET", path), "/fhir/Patient/_history")

    tw = group.tw_patient.id
    assert [v for v in by(group.desk_tm) if v[1] == tw] == [("Patient", tw, "2")]
    assert [v for v in by(group.desk_tw) if v[1] == tw] == []
    assert [v for v in by(group.officer) if v[1] == tw] == [
        ("Patient", tw, "2"),
        ("Patient", tw, "1"),
    ]


def test_a_deleted_records_versions_are_judged_like_its_history(
    group: Group, api: FhirTestClient
) -> None:
    ident = create(api, observation(group.tm_patient.id, "x"))["id"]
    assert api.delete(f"/fhir/Observation/{ident}").status_code == 204
    mine = _walk(
        lambda path: group.call(group.doctor_tm, "GET", path), "/fhir/Observation/_history"
    )
    assert ("Observation", ident, "2") in mine and ("Observation", ident, "1") in mine
    theirs = _walk(
        lambda path: group.call(group.doctor_tw, "GET", path), "/fhir/Observation/_history"
    )
    assert not [v for v in theirs if v[1] == ident]


# --- the release budget ---------------------------------------------------------------------


@pytest.fixture
def budgeted(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[Services, FhirTestClient, Staff]]:
    url = request.getfixturevalue("pg_schema") if backend == "postgres" else None
    settings = make_settings(tmp_path / "home", url, release_budget="front_desk=3/100")
    services = build_services(settings, create_keys=True, migrate=True)
    try:
        with FhirTestClient(create_app(settings, services)) as web:
            desk = make_staff(services, Role.FRONT_DESK, ["clinic-a"])
            web.put_json(
                "/fhir/Organization/clinic-a",
                {"resourceType": "Organization", "id": "clinic-a", "name": "A"},
                **desk.headers,
            )
            for number in range(5):
                made = web.post_json(
                    "/fhir/Patient",
                    {
                        "resourceType": "Patient",
                        "name": [{"family": f"Chan{number}"}],
                        "managingOrganization": {"reference": "Organization/clinic-a"},
                    },
                    **desk.headers,
                )
                assert made.status_code == 201, made.text
            yield services, web, desk
    finally:
        services.close()


def test_type_and_system_history_count_against_the_release_budget(
    budgeted: tuple[Services, FhirTestClient, Staff],
) -> None:
    services, web, desk = budgeted
    within = web.get("/fhir/Patient/_history?_count=3", headers=desk.headers)
    assert within.status_code == 200, within.text
    assert len(within.json()["entry"]) == 3
    for path in ("/fhir/Patient/_history", "/fhir/_history"):
        refused = web.get(path, headers=desk.headers)
        assert refused.status_code == 429, refused.text
        assert "release budget" in refused.json()["issue"][0]["diagnostics"]
    events = [AuditEvent.from_canonical(data) for _, data in services.audit_ledger.store.entries()]
    history = [e for e in events if e.tag == Tag.FHIR_HISTORY]
    assert [e.outcome for e in history] == [Outcome.SUCCESS] * 3 + [Outcome.DENIED] * 2
    assert sum(len(e.detail.get("returned", [])) for e in history) == 3


def test_metadata_lists_history_at_every_level_and_the_everything_parameters(
    api: FhirTestClient,
) -> None:
    statement = api.get("/fhir/metadata").json()
    rest = statement["rest"][0]
    assert "history-system" in {item["code"] for item in rest["interaction"]}
    for resource in rest["resource"]:
        if resource["type"] in ("AuditEvent", "Group"):
            # The audit ledger: searched, no history; a Group (a clinic): exported only.
            continue
        codes = {item["code"] for item in resource["interaction"]}
        assert {"history-instance", "history-type"} <= codes, resource["type"]
    (patient_type,) = [r for r in rest["resource"] if r["type"] == "Patient"]
    everything = next(op for op in patient_type["operation"] if op["name"] == "everything")
    for name in ("_since", "_type", "start", "end", "_count"):
        assert name in everything["documentation"]
