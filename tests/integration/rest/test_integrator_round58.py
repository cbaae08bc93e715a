"""What a client of the FHIR API counts on, found by integrator round 58: unknown
operations answered alike, ``If-Match: *`` on writes, and ``$everything``'s links."""

from __future__ import annotations

from fhirclient.models.bundle import Bundle

from tests.integration.rest.test_interactions import create, observation, patient
from tests.support.client import FHIR_JSON, FhirTestClient


def test_an_unknown_operation_is_404_at_every_level_and_with_every_method(
    api: FhirTestClient,
) -> None:
    """R4 http.html: 404 for what is "not a FHIR end-point" here, 405 for a method an
    end-point does not take. An operation this server does not define answered 404
    (``Patient/[id]/$nonsense``), 400 (``GET Patient/$nonsense``: the name read as an
    id) or 405 (``POST Patient/$nonsense``: the path of a record, which takes no POST)
    by the shape of its path, so a client could not tell "no such operation" from "wrong
    method". Now every unknown operation answers 404 with an OperationOutcome
    (``not-supported``) naming it, the record's existence never weighed."""
    someone = create(api, patient())["id"]
    paths = [
        "/fhir/$nonsense",
        "/fhir/Patient/$nonsense",
        f"/fhir/Patient/{someone}/$nonsense",
        "/fhir/Patient/never-used/$nonsense",
        "/fhir/Observation/$everything",
    ]
    for path in paths:
        for method in ("GET", "POST", "PUT", "DELETE"):
            answer = api.request(method, path, content=b"{}", headers=FHIR_JSON)
            assert answer.status_code == 404, (method, path, answer.text)
            assert "allow" not in answer.headers
            (issue,) = answer.json()["issue"]
            assert issue["code"] == "not-supported", (method, path)
            assert f"${path.rsplit('$', 1)[1]}" in issue["diagnostics"]
    assert api.head("/fhir/Patient/$nonsense").status_code == 404
    # A known operation asked with a method it does not take is still 405, with Allow.
    known = {
        "/fhir/Patient/$register": "POST",
        f"/fhir/Patient/{someone}/$everything": "GET",
        "/fhir/$import": "POST",
    }
    for path, allowed in known.items():
        answer = api.request("DELETE", path)
        assert answer.status_code == 405, (path, answer.text)
        assert answer.headers["allow"] == allowed
        assert answer.json()["resourceType"] == "OperationOutcome"


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
