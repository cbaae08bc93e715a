"""A clinic app built on fhirpy, a FHIR client we did not write, against a running server."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import MultipleResourcesFound, OperationOutcome, ResourceNotFound

from carevault.config import Settings
from tests.support.auth import colleagues, token_for
from tests.support.conformance import check_body
from tests.support.server import RunningServer

# What a client (or a browser) sees of the HTTP API: run on PostgreSQL, as production is; the
# storage under it is tested on both backends by the integration tests.
pytestmark = [pytest.mark.e2e, pytest.mark.only_backend("postgres")]

HKID_SYSTEM = "http://carevault.hk/sid/hkid"


def clinic_app(server: RunningServer, seen: list[int], token: str) -> SyncFHIRClient:
    def conformant(response: requests.Response, *_args: Any, **_kwargs: Any) -> None:
        check_body(response.headers.get("content-type", ""), response.content)
        seen.append(response.status_code)

    return SyncFHIRClient(
        server.fhir,
        authorization=f"Bearer {token}",
        requests_config={"hooks": {"response": [conformant]}, "timeout": 30},
    )


def test_a_clinic_app_works_through_fhirpy(live_server: RunningServer, settings: Settings) -> None:
    """The front desk registers a patient; a physician at the same clinic sees them."""
    seen: list[int] = []
    (desk, doctor), clinic = colleagues(settings.home, "front_desk", "physician")
    front = clinic_app(live_server, seen, token_for(live_server.url, desk))
    doctor_token = token_for(live_server.url, doctor)
    client = clinic_app(live_server, seen, doctor_token)

    patient = front.resource(
        "Patient",
        identifier=[{"system": HKID_SYSTEM, "value": "K654321(9)"}],
        name=[{"family": "Leung", "given": ["Wing Sze"]}, {"text": "梁穎詩"}],
        gender="female",
        birthDate="1991-08-12",
        telecom=[{"system": "phone", "value": "+852 6123 4567"}],
    )
    patient.save()
    assert patient.id and patient["meta"]["versionId"] == "1"

    encounter = client.resource(
        "Encounter",
        status="finished",
        **{"class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}},
        subject=patient.to_reference(),
        period={"start": "2026-11-27T09:00:00+08:00", "end": "2026-11-27T09:20:00+08:00"},
    )
    encounter.save()

    # An app that sends the subject as an absolute URL (the server's own) is refused with
    # an OperationOutcome: the vault follows Patient/[id] only, and a record it cannot
    # tie to its patient would be no one's (readable group-wide, with no care needed).
    unnamed = client.resource(
        "Observation",
        status="final",
        code={"text": "blood pressure"},
        subject={"reference": f"{live_server.fhir}/Patient/{patient.id}"},
    )
    with pytest.raises(OperationOutcome) as refused_subject:
        unnamed.save()
    assert "Observation.subject" in str(refused_subject.value)
    assert seen.pop() == 422

    by_name = client.resources("Patient").search(name="leung").fetch_all()
    assert [found.id for found in by_name] == [patient.id]
    by_hkid = client.resources("Patient").search(identifier=f"{HKID_SYSTEM}|K654321(9)").fetch()
    assert [found.id for found in by_hkid] == [patient.id]
    by_chinese_name = client.resources("Patient").search(name="梁穎詩").fetch()
    assert [found.id for found in by_chinese_name] == [patient.id]

    visits = client.resources("Encounter").search(patient=patient.id, date="2026-11-27").fetch()
    assert [found.id for found in visits] == [encounter.id]
    # R4 parameters a client library's apps use: the visit's class.
    ambulatory = client.resources("Encounter").search(patient=patient.id, **{"class": "AMB"})
    assert [found.id for found in ambulatory.fetch()] == [encounter.id]
    assert client.resources("Encounter").search(**{"class": "IMP"}).count() == 0

    # _include through fhirpy: the page of Encounters with their Patients, each included
    # record passing the gate like a direct read.
    page = (
        client.resources("Encounter")
        .search(patient=patient.id)
        .include("Encounter", "subject")
        .fetch_raw()
    )
    modes = {(e["resource"]["resourceType"], e["search"]["mode"]) for e in page["entry"]}
    assert modes == {("Encounter", "match"), ("Patient", "include")}
    assert page["total"] == 1

    # Chained search is refused by design (docs/search.md): fhirpy's
    # subject__Patient__name becomes subject:Patient.name, answered 400 naming it, never
    # a widened result.
    with pytest.raises(OperationOutcome) as refused:
        client.resources("Encounter").search(subject__Patient__name="leung").fetch()
    assert "subject:Patient.name" in str(refused.value)
    assert seen.pop() == 400  # answered (and checked as FHIR) like any response

    read = client.reference("Patient", patient.id).to_resource()
    assert read["name"][0]["family"] == "Leung"
    assert read["identifier"][0]["value"] == "K654321(9)"  # physicians may read the HKID

    # The front desk registered the HKID but cannot read it back: it is withheld and
    # the resource is labelled SUBSETTED. Updating the phone number keeps the HKID.
    at_desk = front.reference("Patient", patient.id).to_resource()
    assert "identifier" not in at_desk
    assert any(label["code"] == "SUBSETTED" for label in at_desk["meta"]["security"])

    read["telecom"] = [{"system": "phone", "value": "+852 6999 0000"}]
    read.save()  # a physician may change contact details without rewriting the HKID
    assert read["meta"]["versionId"] == "2"
    assert client.reference("Patient", patient.id).to_resource()["identifier"] == [
        {"system": HKID_SYSTEM, "value": "K654321(9)"}
    ]
    assert client.resources("Patient").search(phone="69990000").count() == 1
    assert client.resources("Patient").search(phone="61234567").count() == 0

    history = read.execute("_history", method="get")
    assert [entry["resource"]["meta"]["versionId"] for entry in history["entry"]] == ["2", "1"]

    # PATCH through fhirpy: resource.patch() and client.patch() send the changed elements
    # as a partial resource (JSON Merge Patch semantics, application/json); the gate judges
    # each as the PUT it amounts to, and the HKID the front desk cannot see is kept.
    read.patch(gender="unknown")
    assert read["gender"] == "unknown" and read["meta"]["versionId"] == "3"
    patched = front.patch(
        "Patient", patient.id, telecom=[{"system": "phone", "value": "2345 6789"}]
    )
    assert patched["meta"]["versionId"] == "4"
    assert "identifier" not in patched  # still withheld from the front desk in the answer
    assert client.reference("Patient", patient.id).to_resource()["identifier"] == [
        {"system": HKID_SYSTEM, "value": "K654321(9)"}
    ]

    # Conditional update and patch through fhirpy's search set: PUT/PATCH Patient?identifier=.
    by_hkid = client.resources("Patient").search(identifier=f"{HKID_SYSTEM}|K654321(9)")
    replacement = client.resource(
        "Patient",
        identifier=[{"system": HKID_SYSTEM, "value": "K654321(9)"}],
        name=[{"family": "Leung", "given": ["Wing Sze"]}],
        gender="female",
        birthDate="1991-08-12",
        managingOrganization=read["managingOrganization"],
    )
    updated, created = by_hkid.update(replacement)
    assert not created and updated.id == patient.id and updated["meta"]["versionId"] == "5"
    assert "telecom" not in updated  # a conditional update replaces the whole resource
    conditionally_patched = by_hkid.patch(birthDate="1991-08-13")
    assert conditionally_patched.id == patient.id
    assert conditionally_patched["birthDate"] == "1991-08-13"
    assert conditionally_patched["meta"]["versionId"] == "6"

    # The history says how each version was written, newest first: fhirpy's save() of a
    # new resource POSTs, of a read one PUTs; patch() PATCHes; the search set's update PUTs.
    written = client.reference("Patient", patient.id).to_resource().execute("_history", "get")
    assert [entry["request"]["method"] for entry in written["entry"]] == [
        "PATCH",
        "PUT",
        "PATCH",
        "PATCH",
        "PUT",
        "POST",
    ]

    # HEAD over a real HTTP server: GET's status and headers, Content-Length the length
    # of GET's body, no body (and the same audited read).
    bearer = {"Authorization": f"Bearer {doctor_token}"}
    for path in (f"Patient/{patient.id}", f"Patient/{patient.id}/_history", "metadata"):
        got = requests.get(f"{live_server.fhir}/{path}", headers=bearer, timeout=30)
        head = requests.head(f"{live_server.fhir}/{path}", headers=bearer, timeout=30)
        assert (head.status_code, head.content) == (got.status_code, b""), path
        assert int(head.headers["content-length"]) == len(got.content), path
        assert head.headers.get("etag") == got.headers.get("etag"), path

    # No match: the front desk's conditional update registers a new patient (201).
    newcomer = front.resource(
        "Patient",
        identifier=[{"system": HKID_SYSTEM, "value": "A123456(3)"}],
        name=[{"family": "Chan", "given": ["Tai Man"]}],
        birthDate="1980-05-01",
    )
    registered, created = (
        front.resources("Patient").search(identifier=f"{HKID_SYSTEM}|A123456(3)").update(newcomer)
    )
    assert created and registered.id != patient.id
    # Criteria that match two patients the caller sees: 412, nothing changed.
    with pytest.raises(MultipleResourcesFound):
        front.resources("Patient").search(birthdate="ge1980-01-01").patch(gender="other")
    assert seen.pop() == 412

    # The front desk saves back the view it read (fhirpy's save() sends it whole, with
    # its SUBSETTED label): the record keeps the HKID and stores no label, so the
    # physician's next read of the complete record is not marked as a subset.
    view = front.reference("Patient", registered.id).to_resource()
    view["telecom"] = [{"system": "phone", "value": "+852 6777 1234"}]
    view.save()
    # The physician's visit, so that they may read all a Patient may hold: without a care
    # relationship every Patient they read is labelled (its narrative is not shown).
    client.resource(
        "Encounter",
        status="finished",
        **{"class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}},
        subject=registered.to_reference(),
        serviceProvider={"reference": f"Organization/{clinic}"},
        period={"start": "2026-11-28T09:00:00+08:00", "end": "2026-11-28T09:20:00+08:00"},
    ).save()
    complete = client.reference("Patient", registered.id).to_resource()
    assert complete["identifier"] == [{"system": HKID_SYSTEM, "value": "A123456(3)"}]
    assert "security" not in complete["meta"]

    encounter.delete()
    with pytest.raises(ResourceNotFound):
        client.reference("Encounter", encounter.id).to_resource()

    assert len(seen) >= 12
    assert all(200 <= status < 300 for status in seen[:-1])
