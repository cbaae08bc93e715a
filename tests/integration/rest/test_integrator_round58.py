"""What a client of the FHIR API counts on, found by integrator round 58: unknown
operations answered alike, ``If-Match: *`` on writes, and ``$everything``'s links."""

from __future__ import annotations

from fhirclient.models.bundle import Bundle

from tests.integration.rest.test_interactions import create, observation, patient
from tests.support.client import FhirTestClient


def test_everything_links_carry_the_requests_parameters_not_a_count_of_the_total(
    api: FhirTestClient,
) -> None:
    """R4 search.html: the self link names the parameters actually used. Without
    ``_count`` (not paged: every record on one page) ``$everything``'s self and first
    links said ``_count=<total>&_offset=0``, a page size the client never asked for and
    that changes as the chart grows (a client comparing links saw a new query). Now the
    self link is the request's own parameters; with ``_count``, the paging links as
    before."""
    someone = create(api, patient())["id"]
    for month in (1, 2, 3):
        create(api, observation(someone, f"2024-0{month}-15"))
    url = f"http://testserver/fhir/Patient/{someone}/$everything"

    whole = Bundle(api.get(f"/fhir/Patient/{someone}/$everything").json())
    assert [(link.relation, link.url) for link in whole.link] == [("self", url)]
    assert whole.total == len(whole.entry) == 4

    typed = Bundle(
        api.get(f"/fhir/Patient/{someone}/$everything?_type=Observation&start=2024-01-01").json()
    )
    assert [(link.relation, link.url) for link in typed.link] == [
        ("self", f"{url}?_type=Observation&start=2024-01-01")
    ]

    paged = Bundle(api.get(f"/fhir/Patient/{someone}/$everything?_count=2").json())
    links = {link.relation: link.url for link in paged.link}
    assert links["self"] == f"{url}?_count=2&_offset=0"
    assert links["next"] == f"{url}?_count=2&_offset=2"
