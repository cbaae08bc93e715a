"""An issue raised by the model check names its element as FHIRPath."""

from __future__ import annotations

import pytest

from carevault.fhir.validate import InvalidResource, validate_resource


def test_a_model_error_names_a_repetition_with_its_index_in_brackets() -> None:
    patient = {"resourceType": "Patient", "photo": [{"data": "abc!!"}]}
    with pytest.raises(InvalidResource) as refused:
        validate_resource(patient, "Patient")
    expressions = [e for issue in refused.value.issues for e in issue.expression]
    assert expressions == ["Patient.photo[0].data"]
    assert refused.value.issues[0].diagnostics.startswith("Patient.photo[0].data: ")
