"""Date ranges at the group's size (issue 14, part 5): ranges over many records answer,
opening only the records at the edges of the range, and find exactly what a
brute-force filter over the seeded data finds, page after page, on SQLite and
PostgreSQL. The candidate limit is set far below the number of matches, so a search
that still opened every candidate would be refused as too costly."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import delete

from carevault.bootstrap import Services, build_services
from carevault.config import Settings
from carevault.gate import Caller
from carevault.gate.core import DecryptionBudget
from carevault.vault import search as vault_search
from carevault.vault.tables import search_date
from carevault.web.app import create_app
from carevault.web.security import caller
from tests.conftest import make_settings
from tests.support.client import FhirTestClient

CANDIDATE_LIMIT = 12
PATIENTS = 60
OBSERVATIONS = 150
SLOTS = 60
#: The group's time zone (Asia/Hong_Kong, the default): dates without a zone are local.
OFFSET = timedelta(hours=8)


@pytest.fixture
def seeded(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[FhirTestClient, Services, dict[str, list[dict[str, Any]]]]]:
    url = request.getfixturevalue("pg_schema") if backend == "postgres" else None
    settings = make_settings(tmp_path / "home", url, sort_candidate_limit=CANDIDATE_LIMIT)
    services = build_services(settings, create_keys=True, migrate=True)
    app = create_app(settings, services)
    app.dependency_overrides[caller] = lambda: Caller(principal="system:test")
    try:
        with FhirTestClient(app) as api:
            yield api, services, _seed(api)
    finally:
        services.close()


def _seed(api: FhirTestClient) -> dict[str, list[dict[str, Any]]]:
    chance = random.Random(14)
    entries: list[dict[str, Any]] = [
        _post("urn:uuid:org", {"resourceType": "Organization", "name": "Harbour Clinic"}),
        _post(
            "urn:uuid:schedule",
            {
                "resourceType": "Schedule",
                "actor": [{"reference": "urn:uuid:org"}],
                "planningHorizon": {"start": "2026-11-01", "end": "2027-01-31"},
            },
        ),
    ]
    births = [date(1989, 12, 31), date(1990, 1, 1)] + [
        date(1985, 1, 1) + timedelta(days=chance.randrange(3650)) for _ in range(PATIENTS - 2)
    ]
    for number, born in enumerate(births):
        gender = chance.choice(["female", "male"])
        entries.append(
            _post(
                f"urn:uuid:p{number}",
                {
                    "resourceType": "Patient",
                    "name": [{"family": f"Range{number}"}],
                    "gender": gender,
                    "birthDate": born.isoformat(),
                    "managingOrganization": {"reference": "urn:uuid:org"},
                },
            )
        )
    start = datetime(2026, 11, 20, tzinfo=UTC)
    for number in range(OBSERVATIONS):
        at = start + timedelta(minutes=chance.randrange(20 * 24 * 60))
        entries.append(
            _post(
                f"urn:uuid:o{number}",
                {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                    "subject": {"reference": f"urn:uuid:p{chance.randrange(PATIENTS)}"},
                    "effectiveDateTime": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                },
            )
        )
    for number in range(SLOTS):
        at = datetime(2026, 11, 28, 1, tzinfo=UTC) + timedelta(minutes=30 * chance.randrange(400))
        entries.append(
            _post(
                f"urn:uuid:s{number}",
                {
                    "resourceType": "Slot",
                    "schedule": {"reference": "urn:uuid:schedule"},
                    "status": chance.choice(["free", "busy"]),
                    "start": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "end": (at + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                },
            )
        )
    response = api.post_json(
        "/fhir", {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    )
    assert response.status_code == 200, response.text
    made: dict[str, list[dict[str, Any]]] = {}
    for type_name in ("Patient", "Observation", "Slot"):
        made[type_name] = _all(api, f"/fhir/{type_name}?_count=1000")
    return made


def _post(full_url: str, resource: dict[str, Any]) -> dict[str, Any]:
    return {
        "fullUrl": full_url,
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"]},
    }


def _all(api: FhirTestClient, url: str) -> list[dict[str, Any]]:
    """Every match, following next links; each page must answer 200."""
    found: list[dict[str, Any]] = []
    next_url: str | None = url
    while next_url:
        response = api.get(next_url)
        assert response.status_code == 200, response.text
        bundle = response.json()
        found += [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]
        links = {link["relation"]: link["url"] for link in bundle["link"]}
        following = links.get("next")
        next_url = following[following.index("/fhir") :] if following else None
    return found


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _ids(resources: list[dict[str, Any]]) -> list[str]:
    return sorted(resource["id"] for resource in resources)


# The oracles below compare values directly (date strings, instants at second
# precision), independently of the server's range arithmetic.


def test_birth_date_ranges_equal_a_brute_force_filter(
    seeded: tuple[FhirTestClient, Services, dict[str, list[dict[str, Any]]]],
) -> None:
    api, _, made = seeded
    patients = made["Patient"]
    cases = {
        "ge1990-01-01": lambda born: born >= "1990-01-01",
        "gt1989-12-31": lambda born: born > "1989-12-31",
        "lt1990-01-01": lambda born: born < "1990-01-01",
        "le1988-06-30": lambda born: born <= "1988-06-30",
        "1990": lambda born: born.startswith("1990"),
        "eq1990-01": lambda born: born.startswith("1990-01"),
        "ne1990-01-01": lambda born: born != "1990-01-01",
        "sa1989-12-31": lambda born: born > "1989-12-31",
        "eb1990-01-01": lambda born: born < "1990-01-01",
    }
    for value, oracle in cases.items():
        expected = [p for p in patients if oracle(p["birthDate"])]
        assert len(expected) > CANDIDATE_LIMIT or value in ("1990", "eq1990-01")
        found = _all(api, f"/fhir/Patient?birthdate={value}&_count=7")
        assert _ids(found) == _ids(expected), value
        assert len(found) == len(expected)


def test_observation_ranges_with_instants_open_only_the_edge_day(
    seeded: tuple[FhirTestClient, Services, dict[str, list[dict[str, Any]]]],
) -> None:
    api, _, made = seeded
    observations = made["Observation"]
    edge = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    cases = {
        "ge2026-12-01T10:00:00Z": lambda at: at >= edge,
        "lt2026-12-01T10:00:00Z": lambda at: at < edge,
        "gt2026-12-01T10:00:00Z": lambda at: at >= edge + timedelta(seconds=1),
        "le2026-12-01T10:00:00Z": lambda at: at < edge + timedelta(seconds=1),
        "ge2026-12-01": lambda at: at >= datetime(2026, 12, 1, tzinfo=UTC) - OFFSET,
    }
    for value, oracle in cases.items():
        expected = [o for o in observations if oracle(_instant(o["effectiveDateTime"]))]
        found = _all(api, f"/fhir/Observation?date={value}&_count=9")
        assert _ids(found) == _ids(expected), value
    both = _all(api, "/fhir/Observation?date=ge2026-11-25&date=lt2026-12-05&_count=20")
    low = datetime(2026, 11, 25, tzinfo=UTC) - OFFSET
    high = datetime(2026, 12, 5, tzinfo=UTC) - OFFSET
    expected = [o for o in observations if low <= _instant(o["effectiveDateTime"]) < high]
    assert _ids(both) == _ids(expected)


def test_a_patients_observations_since_a_date_answer_with_the_total(
    seeded: tuple[FhirTestClient, Services, dict[str, list[dict[str, Any]]]],
) -> None:
    api, _, made = seeded
    since = datetime(2026, 11, 28, tzinfo=UTC) - OFFSET
    for someone in made["Patient"][:5]:
        mine = [
            o
            for o in made["Observation"]
            if o["subject"]["reference"] == f"Patient/{someone['id']}"
            and _instant(o["effectiveDateTime"]) >= since
        ]
        bundle = api.get(f"/fhir/Observation?patient={someone['id']}&date=ge2026-11-28").json()
        assert bundle["total"] == len(mine)


def test_slot_ranges_are_exact_in_sql_sorted_and_paged(
    seeded: tuple[FhirTestClient, Services, dict[str, list[dict[str, Any]]]],
) -> None:
    api, _, made = seeded
    first = datetime(2026, 12, 1, tzinfo=UTC) - OFFSET
    expected = sorted(
        (s for s in made["Slot"] if _instant(s["start"]) >= first),
        key=lambda s: (s["start"], s["id"]),
    )
    assert len(expected) > CANDIDATE_LIMIT
    page = api.get("/fhir/Slot?start=ge2026-12-01&_count=10&_sort=start").json()
    assert page["total"] == len(expected)
    shown = [e["resource"] for e in page["entry"]]
    assert [s["start"] for s in shown] == [s["start"] for s in expected[:10]]
    found = _all(api, "/fhir/Slot?start=ge2026-12-01&_count=10&_sort=-start")
    assert _ids(found) == _ids(expected)
    starts = [s["start"] for s in found]
    assert starts == sorted(starts, reverse=True)
    week = _all(api, "/fhir/Slot?start=ge2026-12-01&start=lt2026-12-08&status=free")
    in_week = [
        s
        for s in made["Slot"]
        if first <= _instant(s["start"]) < first + timedelta(days=7) and s["status"] == "free"
    ]
    assert _ids(week) == _ids(in_week)


def test_last_updated_ranges_use_the_clear_timestamp(
    seeded: tuple[FhirTestClient, Services, dict[str, list[dict[str, Any]]]],
) -> None:
    api, _, made = seeded
    stamp = made["Observation"][0]["meta"]["lastUpdated"][:10]
    found = _all(api, f"/fhir/Observation?_lastUpdated=ge{stamp}&_count=50")
    assert _ids(found) == _ids(made["Observation"])


def test_reindex_rebuilds_what_an_older_version_did_not_index(
    seeded: tuple[FhirTestClient, Services, dict[str, list[dict[str, Any]]]],
) -> None:
    api, services, made = seeded
    with services.vault.engine.begin() as connection:
        connection.execute(delete(search_date))
    assert api.get("/fhir/Slot?start=ge2026-12-01").json()["total"] == 0
    done = services.gate.reindex("cli:test", batch=37)
    assert done == sum(len(v) for v in made.values()) + 2  # and the Organization, Schedule
    first = datetime(2026, 12, 1, tzinfo=UTC) - OFFSET
    expected = [s for s in made["Slot"] if _instant(s["start"]) >= first]
    assert api.get("/fhir/Slot?start=ge2026-12-01").json()["total"] == len(expected)
    females = [p for p in made["Patient"] if p["gender"] == "female"]
    system = "http://hl7.org/fhir/administrative-gender"
    bundle = api.get(f"/fhir/Patient?gender={system}|female&_count=0").json()
    assert bundle["total"] == len(females)


# A patient's dates at the edges of the buckets the tokens name (local days, months and
# years in the group's zone, UTC+8): searches that name the patient settle their dates
# from that patient's own tokens (vault/search.py, ``_patient_rows``) and must answer
# exactly as the index-wide path (``PATIENT_ROWS = 0`` forces it) and a brute-force filter.

EDGE_INSTANTS = [
    "2025-12-31T15:59:59Z",  # 2025-12-31 23:59:59 local: the last second of a year
    "2025-12-31T16:00:00Z",  # 2026-01-01 00:00:00 local: the first of the next
    "2026-01-31T15:59:59Z",  # the last second of January
    "2026-01-31T16:00:00Z",  # the first of February
    "2026-11-30T15:59:59Z",  # the last second of November
    "2026-11-30T16:00:00Z",  # 2026-12-01 00:00:00 local
    "2026-12-01T15:59:59Z",  # 2026-12-01 23:59:59 local
]
EDGE_OTHERS: list[dict[str, Any]] = [
    {"effectiveDateTime": "2026-12-01"},
    {"effectiveDateTime": "2026-01"},
    {"effectiveDateTime": "2025"},
    {"effectivePeriod": {"start": "2026-11-30T23:00:00+08:00", "end": "2026-12-01T01:00:00+08:00"}},
    {"effectivePeriod": {"start": "2025-12-31", "end": "2026-01-01"}},
    {"effectivePeriod": {"start": "2026-12-01T00:00:00+08:00"}},
    {"effectivePeriod": {"end": "2025-12-31T23:59:59+08:00"}},
]
EDGE_VALUES = [
    "2025-12-31",
    "2026-01-01",
    "2026-01",
    "2026",
    "2026-11-30",
    "2026-12-01",
    "2026-12",
    "2026-12-01T00:00:00+08:00",
    "2025-12-31T15:59:59Z",
]
PREFIXES = ("eq", "ne", "ge", "gt", "le", "lt", "sa", "eb")


def _edge_patient(api: FhirTestClient, organization: str) -> str:
    observations = [{"effectiveDateTime": at} for at in EDGE_INSTANTS] + EDGE_OTHERS
    entries = [
        _post(
            "urn:uuid:edge",
            {
                "resourceType": "Patient",
                "name": [{"family": "Edge"}],
                "managingOrganization": {"reference": f"Organization/{organization}"},
            },
        )
    ]
    for number, when in enumerate(observations):
        entries.append(
            _post(
                f"urn:uuid:edge-o{number}",
                {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                    "subject": {"reference": "urn:uuid:edge"},
                    **when,
                },
            )
        )
    response = api.post_json(
        "/fhir", {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    )
    assert response.status_code == 200, response.text
    location = response.json()["entry"][0]["response"]["location"]
    return str(location.split("/")[1])


def _instant_oracle(prefix: str, value: str) -> Any:
    """Whether an instant (second precision) matches ``prefix value``, from the value's
    own range [low, high) computed here by hand for the forms EDGE_VALUES uses."""
    if "T" in value:
        low = _instant(value)
        high = low + timedelta(seconds=1)
    else:
        parts = [int(part) for part in value.split("-")]
        local_low = datetime(
            parts[0], parts[1] if len(parts) > 1 else 1, parts[2] if len(parts) > 2 else 1
        )
        if len(parts) == 3:
            local_high = local_low + timedelta(days=1)
        elif len(parts) == 2:
            local_high = (local_low + timedelta(days=32)).replace(day=1)
        else:
            local_high = local_low.replace(year=local_low.year + 1)
        low = local_low.replace(tzinfo=UTC) - OFFSET
        high = local_high.replace(tzinfo=UTC) - OFFSET
    return {
        "eq": lambda at: low <= at < high,
        "ne": lambda at: not low <= at < high,
        "ge": lambda at: at >= low,
        "gt": lambda at: at >= high,
        "le": lambda at: at < high,
        "lt": lambda at: at < low,
        "sa": lambda at: at >= high,
        "eb": lambda at: at < low,
    }[prefix]


def test_a_patients_date_search_at_bucket_edges_equals_the_index_wide_search(
    seeded: tuple[FhirTestClient, Services, dict[str, list[dict[str, Any]]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api, _, made = seeded
    organization = made["Patient"][0]["managingOrganization"]["reference"].split("/")[1]
    patient = _edge_patient(api, organization)
    mine = _all(api, f"/fhir/Observation?patient={patient}&_count=100")
    assert len(mine) == len(EDGE_INSTANTS) + len(EDGE_OTHERS)
    instants = {
        o["id"]: _instant(o["effectiveDateTime"])
        for o in mine
        if "T" in o.get("effectiveDateTime", "")
    }
    assert len(instants) == len(EDGE_INSTANTS)
    answers: dict[str, list[str]] = {}
    for prefix in PREFIXES:
        for value in EDGE_VALUES:
            search = f"/fhir/Observation?patient={patient}&date={prefix}{quote(value)}&_count=100"
            found = _all(api, search)
            answers[search] = _ids(found)
            oracle = _instant_oracle(prefix, value)
            expected = sorted(i for i, at in instants.items() if oracle(at))
            assert sorted(i for i in _ids(found) if i in instants) == expected, search
    # The cases cut through the buckets: many different answers, few empty or whole.
    assert len({tuple(ids) for ids in answers.values()}) > 30
    monkeypatch.setattr(vault_search, "PATIENT_ROWS", 0)  # the index-wide path, as before
    for search, ids in answers.items():
        assert _ids(_all(api, search)) == ids, search


def test_a_patients_date_search_opens_no_more_than_the_index_wide_search(
    seeded: tuple[FhirTestClient, Services, dict[str, list[dict[str, Any]]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The records opened to settle the edges are the same on both paths (the budget
    charges them): the patient's own tokens settle what the index settled."""
    _, services, made = seeded
    someone = made["Patient"][0]["id"]
    opened: dict[str, list[int]] = {"patient": [], "index": []}
    for path in ("patient", "index"):
        if path == "index":
            monkeypatch.setattr(vault_search, "PATIENT_ROWS", 0)
        for prefix in PREFIXES:
            budget = DecryptionBudget(10**6)
            response = services.fhir.search(
                Caller(principal="system:test", budget=budget),
                "Observation",
                [("patient", someone), ("date", f"{prefix}2026-12-01"), ("_count", "100")],
                "http://test/fhir",
                strict=True,
            )
            assert response.status == 200
            opened[path].append(budget.spent)
    assert opened["patient"] == opened["index"]


def test_ap_is_measured_from_the_services_clock(
    settings: Settings,
) -> None:
    """``ap`` widens a value by a tenth of its gap to now, and now is the services' clock
    (the simulator keeps a clock of its own; the AuditEvent search measured from it while
    the main search measured from the machine's): a year after 2012-06-01 the margin is
    about 36 days, so a Condition recorded on 2012-02-01 is not approximately that day,
    though measured from 2026 (a margin of over a year) it would be."""
    moment = datetime(2013, 6, 1, 12, tzinfo=UTC)
    services = build_services(settings, create_keys=True, migrate=True, clock=lambda: moment)
    app = create_app(settings, services)
    app.dependency_overrides[caller] = lambda: Caller(principal="system:test")
    try:
        with FhirTestClient(app) as api:
            patient = api.post_json(
                "/fhir/Patient", {"resourceType": "Patient", "name": [{"family": "Ap"}]}
            ).json()["id"]
            recorded = {}
            for day in ("2012-02-01", "2012-05-20"):
                made = api.post_json(
                    "/fhir/Condition",
                    {
                        "resourceType": "Condition",
                        "subject": {"reference": f"Patient/{patient}"},
                        "code": {"text": "probe"},
                        "recordedDate": day,
                    },
                )
                assert made.status_code == 201, made.text
                recorded[made.json()["id"]] = day
            found = api.get("/fhir/Condition", params={"recorded-date": "ap2012-06-01"})
            assert found.status_code == 200, found.text
            days = sorted(recorded[e["resource"]["id"]] for e in found.json().get("entry", []))
            assert days == ["2012-05-20"]
    finally:
        services.close()
