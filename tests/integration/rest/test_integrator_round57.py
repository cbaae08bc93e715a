"""What a client reading the FHIR API counts on, found by integrator round 57, each read
as the client library reads it (fhirclient's strict R4 models and its pager)."""

from __future__ import annotations

from fhirclient._utils import iter_pages
from fhirclient.models.bundle import Bundle

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
