"""A POST kick-off's Parameters parts read as the query string's parameters are, or
refused naming the part: never dropped."""

from __future__ import annotations

import json

import pytest

from carevault.export.model import (
    DELETED_TYPE,
    ExportRefused,
    Job,
    Level,
    OutputFile,
    Status,
    body_params,
    body_patients,
    deleted_ndjson,
    deletion_bundle,
    manifest,
    parse_request,
)
from carevault.fhir.parameters import Part

SINCE = "2024-03-01T08:00:00+08:00"


def test_since_as_an_instant_a_datetime_or_a_string_reads_as_in_the_query() -> None:
    from_query = parse_request(Level.PATIENT, None, [("_since", SINCE)])
    for value_type in ("valueInstant", "valueDateTime", "valueString"):
        given = body_params([Part("_since", value_type, SINCE)])
        assert parse_request(Level.PATIENT, None, given) == from_query


def test_repeated_and_comma_separated_types_are_merged_in_order() -> None:
    given = body_params(
        [
            Part("_type", "valueString", "Observation"),
            Part("_type", "valueCode", "Patient,Observation"),
        ]
    )
    assert parse_request(Level.PATIENT, None, given).types == ("Observation", "Patient")


@pytest.mark.parametrize(
    ("part", "said"),
    [
        (Part("_elements", "valueString", "id"), "_elements is not supported"),
        (Part("_typeFilter", "valueString", "Observation?x=1"), "_typeFilter is not supported"),
        (Part("includeAssociatedData", "valueCode", "x"), "includeAssociatedData is not"),
        (Part("_since", "valueDate", "2024-03-01"), "_since: a valueDate is not accepted"),
        (Part("_type", "valueInteger", 3), "_type: a valueInteger is not accepted"),
        (Part("_since", "valueInstant", 20240301), "_since: its valueInstant is not a string"),
        (Part("_outputFormat", None), "_outputFormat: the parameter has no value"),
        (Part("_count", "valueInteger", 10), "unknown parameter '_count'"),
        (Part("bad\nname", "valueString", "x"), "unknown parameter 'bad?name'"),
    ],
)
def test_a_part_not_applied_is_refused_naming_it(part: Part, said: str) -> None:
    with pytest.raises(ExportRefused) as refused:
        body_params([Part("_type", "valueString", "Patient"), part])
    assert refused.value.status == 400
    assert said in str(refused.value)


def test_patient_references_are_read_in_order_and_left_out_of_the_text_parameters() -> None:
    body = [
        Part("patient", "valueReference", {"reference": "Patient/pa-2", "display": "Chan"}),
        Part("_type", "valueString", "Patient"),
        Part("patient", "valueReference", {"reference": "Patient/pa.1", "type": "Patient"}),
    ]
    assert body_patients(body) == ("pa-2", "pa.1")
    request = parse_request(Level.GROUP, "clinic-a", body_params(body), body_patients(body))
    assert (request.types, request.patients) == (("Patient",), ("pa-2", "pa.1"))
    assert parse_request(Level.PATIENT, None, []).patients == ()


@pytest.mark.parametrize(
    ("reference", "said"),
    [
        ({"reference": "Patient/"}, "is not a reference to Patient/[id]"),
        ({"reference": "Patient/" + "x" * 65}, "is not a reference to Patient/[id]"),
        ({"reference": "Patient/a b"}, "is not a reference to Patient/[id]"),
        ({"reference": "Group/clinic-a"}, "is not a reference to Patient/[id]"),
        ({"reference": "Patient/pa1", "type": "Group"}, "is not a reference to Patient/[id]"),
        ({"display": "Chan Tai Man"}, "a valueReference with a reference to Patient/[id]"),
        ({"reference": 12}, "a valueReference with a reference to Patient/[id]"),
    ],
)
def test_a_patient_that_is_not_a_reference_to_a_patient_id_is_refused(
    reference: object, said: str
) -> None:
    with pytest.raises(ExportRefused) as refused:
        body_patients([Part("patient", "valueReference", reference)])
    assert refused.value.status == 400
    assert said in str(refused.value)


def test_patient_is_refused_at_system_level_and_in_the_query_string() -> None:
    with pytest.raises(ExportRefused, match="patient: not applicable to a system-level"):
        parse_request(Level.SYSTEM, None, [], ("pa1",))
    with pytest.raises(ExportRefused, match="patient: give it in a POST's Parameters body"):
        parse_request(Level.PATIENT, None, [("patient", "Patient/pa1")])


def test_since_given_twice_is_refused_rather_than_one_ignored() -> None:
    with pytest.raises(ExportRefused, match="_since: give it once"):
        parse_request(Level.PATIENT, None, [("_since", SINCE), ("_since", SINCE)])


@pytest.mark.parametrize(
    "given", ["application/fhir+ndjson", "application/fhir ndjson", "application/ndjson", "ndjson"]
)
def test_every_spelling_of_ndjson_is_taken_a_plus_read_as_a_space_too(given: str) -> None:
    """A ``+`` not escaped in a query string reads as a space (adversary round 48)."""
    assert parse_request(Level.PATIENT, None, [("_outputFormat", given)]).types == ()


def test_an_output_format_not_offered_is_refused_quoting_it() -> None:
    with pytest.raises(ExportRefused, match="'text/csv' is not offered"):
        parse_request(Level.PATIENT, None, [("_outputFormat", "text/csv")])


def _job(since_us: int | None) -> Job:
    return Job(
        job_id="j1",
        level=Level.PATIENT,
        group_id=None,
        client_id="exporter",
        principal="client:exporter",
        status=Status.COMPLETED,
        types=(),
        since_us=since_us,
        request_url="http://testserver/fhir/Patient/$export",
        approvals_needed=1,
        approvals=(),
        requested_us=1,
        transaction_us=1_000_000,
        finished_us=2_000_000,
        expires_us=3_000_000,
        batches_done=1,
        cursor_row=7,
        patients_total=2,
        patients_done=2,
        resources_done=3,
        key_id="export:j1",
        error=None,
    )


def test_the_files_of_deletions_are_the_manifests_deleted_and_no_output() -> None:
    files = [
        OutputFile(1, "Observation", "000001-Observation.ndjson", 3, 10),
        OutputFile(1, DELETED_TYPE, "000001-deleted.ndjson", 2, 10),
    ]
    shown = manifest(_job(1), files, "http://testserver/fhir/$export-file/j1")
    assert shown["output"] == [
        {
            "type": "Observation",
            "url": "http://testserver/fhir/$export-file/j1/000001-Observation.ndjson",
            "count": 3,
        }
    ]
    assert shown["deleted"] == [
        {
            "type": "Bundle",
            "url": "http://testserver/fhir/$export-file/j1/000001-deleted.ndjson",
            "count": 2,
        }
    ]
    assert manifest(_job(None), files[:1], "x")["deleted"] == []


def test_a_deletion_is_a_transaction_bundle_deleting_the_record() -> None:
    assert deletion_bundle("Observation", "o-1", 1_500_000) == {
        "resourceType": "Bundle",
        "meta": {"lastUpdated": "1970-01-01T00:00:01.500000Z"},
        "type": "transaction",
        "entry": [{"request": {"method": "DELETE", "url": "Observation/o-1"}}],
    }
    lines = deleted_ndjson([("Observation", "o-1", 1), ("Patient", "p-1", 2)]).splitlines()
    urls = [json.loads(line)["entry"][0]["request"]["url"] for line in lines]
    assert urls == ["Observation/o-1", "Patient/p-1"]
