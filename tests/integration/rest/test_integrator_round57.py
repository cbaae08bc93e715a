"""What a client reading the FHIR API counts on, found by integrator round 57, each read
as the client library reads it (fhirclient's strict R4 models and its pager)."""

from __future__ import annotations

from fhirclient._utils import iter_pages
from fhirclient.models.bundle import Bundle
from fhirclient.models.capabilitystatement import CapabilityStatement
from fhirclient.models.operationdefinition import OperationDefinition
from fhirclient.models.terminologycapabilities import TerminologyCapabilities

from tests.integration.rest.test_client_expectations import _fhirclient
from tests.integration.rest.test_interactions import create, observation, patient
from tests.support.client import FhirTestClient


def test_everything_counts_in_total_exactly_the_entries_it_marks_as_matches(
    api: FhirTestClient,
) -> None:
    """R4 Bundle.total: "the total number of entries of type 'match' across all pages
    in the search. It does not include search.mode = 'include' or 'outcome' entries".
    ``Patient/$everything`` gave the resources its records refer to outside the patient's
    compartment (the clinic's Organization) as matches too, on every page, beyond the
    total: a client paging with fhirclient counted 5 matches of a total of 4, one of
    them twice. They are includes (R4 search.html#include: "included resources" may
    repeat on pages), the Organization on each page whose records name it."""
    clinic = create(api, {"resourceType": "Organization", "name": "Kapok Tree (Central)"})
    someone = create(
        api, {**patient(), "managingOrganization": {"reference": f"Organization/{clinic['id']}"}}
    )["id"]
    charted = {create(api, observation(someone, f"2024-0{m}-15"))["id"] for m in (1, 2, 3)}

    fhir = _fhirclient(api)
    first = Bundle.read_from(f"Patient/{someone}/$everything?_count=2", fhir)
    pages = list(iter_pages(first, fhir))
    assert {page.total for page in pages} == {4}
    matches = [
        (entry.resource.resource_type, entry.resource.id)
        for page in pages
        for entry in page.entry or []
        if entry.search.mode == "match"
    ]
    assert sorted(matches) == sorted(
        [("Patient", someone), *(("Observation", one) for one in charted)]
    )
    assert len(matches) == first.total
    included = {
        (entry.resource.resource_type, entry.resource.id)
        for page in pages
        for entry in page.entry or []
        if entry.search.mode == "include"
    }
    assert included == {("Organization", clinic["id"])}


def test_a_read_in_a_batch_answers_the_etag_and_last_modified_the_read_answers(
    api: FhirTestClient,
) -> None:
    """docs/rest.md: "An entry of a batch or transaction Bundle answers as the same
    request sent on its own would" (R4 http.html#transaction-response; Bundle.entry
    .response ``etag``, ``lastModified``). A read by id on its own answers ``ETag`` and
    ``Last-Modified`` (and its record's URL); as a batch entry it answered ``200 OK``
    alone, so a sync client reading a batch of records to update each ``If-Match`` had
    no ETag to send. Now the entry has ``fullUrl``, ``etag`` and ``lastModified``, for a
    read and a vread alike."""
    made = create(api, patient())
    url = f"Patient/{made['id']}"
    assert api.put_json(f"/fhir/{url}", {**made, "birthDate": "1980-05-02"}).status_code == 200
    alone = api.get(f"/fhir/{url}")
    answered = api.post_json(
        "/fhir",
        {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [
                {"request": {"method": "GET", "url": url}},
                {"request": {"method": "GET", "url": f"{url}/_history/1"}},
            ],
        },
    )
    assert answered.status_code == 200, answered.text
    read, vread = Bundle(answered.json()).entry
    assert read.response.status == "200 OK"
    assert read.response.etag == alone.headers["etag"] == 'W/"2"'
    assert read.response.lastModified.origval == read.resource.meta.lastUpdated.origval
    assert read.fullUrl == f"http://testserver/fhir/{url}"
    assert vread.response.etag == 'W/"1"' and vread.resource.meta.versionId == "1"
    assert vread.response.lastModified.origval == vread.resource.meta.lastUpdated.origval
    assert vread.fullUrl == f"http://testserver/fhir/{url}"


def test_the_capability_statement_lists_patients_operations_and_defines_them(
    api: FhirTestClient,
) -> None:
    """R4 capabilitystatement.html: ``rest.resource.operation`` lists the operations a
    type supports, each with its ``definition``. ``Patient/$register`` (how a front desk
    brings in a patient known at another clinic, which a 409 of a create tells it to
    use), ``Patient/[id]/$transfer``, ``$break-glass`` and ``$emergency-access`` answered
    but were not in the statement, so a client discovering operations (fhirclient's models)
    did not find them. Now each is listed, its definition this server's own, served at
    its URL as ``$import``'s is."""
    statement = CapabilityStatement(api.get("/fhir/metadata").json())
    (patient_entry,) = [r for r in statement.rest[0].resource if r.type == "Patient"]
    operations = {op.name: op.definition for op in patient_entry.operation}
    assert set(operations) == {
        "everything",
        "export",
        "register",
        "transfer",
        "break-glass",
        "emergency-access",
        "validate",  # every type's (integrator round 59)
    }
    expected = {
        "register": (True, False, {"identifier", "birthDate", "clinic", "return"}),
        "transfer": (False, True, {"destination", "reason", "return"}),
        "break-glass": (False, True, {"reason", "text", "grant", "expires"}),
        "emergency-access": (False, True, {"reason", "text", "grant", "status"}),
    }
    for name, (type_level, instance, parameters) in expected.items():
        url = operations[name]
        assert url == f"http://testserver/fhir/OperationDefinition/Patient-{name}"
        answered = api.get(url.removeprefix("http://testserver"))
        assert answered.status_code == 200, answered.text
        definition = OperationDefinition(answered.json())
        assert (definition.url, definition.code, definition.resource) == (url, name, ["Patient"])
        assert (definition.system, definition.type, definition.instance) == (
            False,
            type_level,
            instance,
        )
        assert {parameter.name for parameter in definition.parameter} == parameters
    unknown = api.get("/fhir/OperationDefinition/Patient-nothing")
    assert unknown.status_code == 404
    assert unknown.json()["resourceType"] == "OperationOutcome"


def test_a_deletion_in_a_history_says_when_it_was_made(api: FhirTestClient) -> None:
    """R4 Bundle.entry.response.lastModified ("Server's date time modified") is on every
    version a history lists but the deletions: a sync client replaying a history (as
    fhirclient reads it) knew when each record was written, not when it was deleted, so
    could not order a deletion against writes it had from elsewhere. The deletion's
    entry now carries its time too, between the version before it and the Bundle's."""
    made = create(api, patient())
    url = f"/fhir/Patient/{made['id']}"
    assert api.delete(url).status_code == 204
    history = Bundle(api.get(f"{url}/_history").json())
    deletion, written = history.entry
    assert deletion.request.method == "DELETE" and deletion.resource is None
    assert deletion.response.etag == 'W/"2"'
    assert deletion.response.lastModified is not None
    when = deletion.response.lastModified.date
    assert written.response.lastModified.date <= when <= history.meta.lastUpdated.date


def test_metadata_in_terminology_mode_answers_terminology_capabilities(
    api: FhirTestClient,
) -> None:
    """R4 terminologycapabilities.html: "GET [base]/metadata?mode=terminology ... will
    return the TerminologyCapabilities resource that applies to the service itself". It
    answered the CapabilityStatement, which a client parsing the terminology statement
    (fhirclient's ``TerminologyCapabilities``) refuses. It now says the server offers
    no terminology service; ``full`` and ``normative`` answer the CapabilityStatement, and
    a mode R4 does not define is refused, as an unknown parameter is."""
    answered = api.get("/fhir/metadata?mode=terminology")
    assert answered.status_code == 200
    statement = TerminologyCapabilities(answered.json())
    assert statement.kind == "instance" and statement.implementation.url == "http://testserver/fhir"
    assert statement.codeSystem is None
    for mode in ("full", "normative"):
        assert (
            api.get(f"/fhir/metadata?mode={mode}").json()["resourceType"] == "CapabilityStatement"
        )
    refused = api.get("/fhir/metadata?mode=everything")
    assert refused.status_code == 400
    assert refused.json()["resourceType"] == "OperationOutcome"
