"""Where a view says it is not the whole record (``fhir/subsetting.py``): SUBSETTED in
``meta.tag``, where R4's search page puts it and servers such as HAPI look, and in
``meta.security``, where earlier releases put it; and a view written back is known by
either (integrator round 85)."""

from __future__ import annotations

import copy
from typing import Any

from carevault.domain.categories import DataCategory as C
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.fhir.subsetting import SUBSETTED, mark_subsetted, subset, without_subsetted

PATIENT = RESOURCE_TYPES["Patient"]
#: What a front desk may read.
DESK = frozenset({C.IDENTITY, C.CONTACT, C.DEMOGRAPHIC, C.VISIT})
WORKFLOW = {"system": "urn:clinic:workflow", "code": "triaged"}


def _patient(**more: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": "p1", "name": [{"family": "Chan"}], **more}


def test_a_role_cut_is_tagged_and_labelled_subsetted() -> None:
    shown = subset(PATIENT, _patient(deceasedDateTime="2026-11-01"), DESK)

    assert shown is not None
    assert shown["meta"]["tag"] == [SUBSETTED]
    assert shown["meta"]["security"] == [SUBSETTED]


def test_marking_adds_the_tag_once_beside_the_record_tags_and_changes_no_stored_meta() -> None:
    meta = {"versionId": "3", "tag": [WORKFLOW], "security": [{"code": "N"}]}
    stored = _patient(meta=meta)
    before = copy.deepcopy(stored)

    marked = mark_subsetted(dict(stored))
    again = mark_subsetted(marked)

    assert again["meta"]["tag"] == [WORKFLOW, SUBSETTED]
    assert again["meta"]["security"] == [{"code": "N"}, SUBSETTED]
    assert stored == before and stored["meta"] is meta


def test_a_view_keeping_only_the_tag_or_only_the_label_is_known_as_a_view() -> None:
    for kind in ("tag", "security"):
        sent = _patient(meta={"versionId": "3", kind: [SUBSETTED]})

        unlabelled = without_subsetted(sent)

        assert unlabelled is not sent
        assert unlabelled == _patient(meta={"versionId": "3"})
        assert sent["meta"][kind] == [SUBSETTED]


def test_unlabelling_takes_both_out_and_keeps_the_record_tags() -> None:
    sent = _patient(meta={"tag": [WORKFLOW, SUBSETTED], "security": [SUBSETTED]})

    assert without_subsetted(sent) == _patient(meta={"tag": [WORKFLOW]})
    assert without_subsetted(mark_subsetted(_patient())) == _patient()
    plain = _patient(meta={"tag": [WORKFLOW]})
    assert without_subsetted(plain) is plain
