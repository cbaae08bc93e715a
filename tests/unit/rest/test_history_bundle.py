"""History Bundle entries say how each version was written (``request.method``, R4
http.html#history): the method stored with the version, or for a version written before
records_0025 (NULL) the one inferred from it. Pure, no database."""

from __future__ import annotations

import json

from carevault.rest import bundles
from carevault.vault.records import Head, Method, Opened, method_of

BASE = "https://ehr.example.hk/fhir"
BODY = b'{"resourceType":"Patient","id":"p-1"}'


def version(number: int, method: Method | None, *, deleted: bool = False) -> Opened:
    head = Head(1, "Patient", "p-1", number, number * 10, deleted, None, "clinic-1", None, method)
    return Opened(head, None if deleted else BODY)


def requests(*items: Opened) -> list[dict[str, str]]:
    bundle = json.loads(bundles.history(BASE, items))
    return [entry["request"] for entry in bundle["entry"]]


def test_each_entry_carries_the_method_stored_with_its_version() -> None:
    found = requests(
        version(4, Method.DELETE, deleted=True),
        version(3, Method.PATCH),
        version(2, Method.PUT),
        version(1, Method.PUT),  # an update that created the record (a client-chosen id)
    )
    assert [request["method"] for request in found] == ["DELETE", "PATCH", "PUT", "PUT"]
    assert {request["url"] for request in found} == {"Patient/p-1"}
    assert requests(version(1, Method.POST)) == [{"method": "POST", "url": "Patient/p-1"}]


def test_a_version_written_before_methods_were_stored_has_its_method_inferred() -> None:
    found = requests(
        version(3, None, deleted=True),
        version(2, None),
        version(1, None),
    )
    assert [request["method"] for request in found] == ["DELETE", "PUT", "POST"]


def test_inference_is_version_one_a_create_a_deletion_a_delete_else_an_update() -> None:
    assert method_of(version(1, None).head) is Method.POST
    assert method_of(version(7, None, deleted=True).head) is Method.DELETE
    assert method_of(version(1, None, deleted=True).head) is Method.DELETE
    assert method_of(version(2, None).head) is Method.PUT
    assert method_of(version(1, Method.PUT).head) is Method.PUT
