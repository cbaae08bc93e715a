"""Adversary round 75: this month's new write features, tried as an insider of Tuen Mun
would use them to widen what their clinic may read (SQLite and PostgreSQL).

Both held on main; these are guards, so that a later change to contained resources or
to the order of a booking's participants cannot open what they do not open today.
"""

from __future__ import annotations

from typing import Any

import pytest

from carevault.ledger.events import Tag
from tests.integration.access.group import HKID_SYSTEM, TM, Group, booked_today, encounter

pytestmark = pytest.mark.postgres


def _visit_placed_by_a_contained_clinic(patient: str) -> dict[str, Any]:
    """A visit whose only clinic element is a local reference to a contained Organization
    (R4 ref-1 and dom-3 hold: ``#org`` is there and referred to)."""
    body = encounter(patient, TM, "dr-tm")
    body["serviceProvider"] = {"reference": "#org"}
    body["contained"] = [{"resourceType": "Organization", "id": "org", "name": "Ward 3"}]
    return body


def test_a_visit_placed_only_by_a_contained_organization_is_at_the_patients_home_clinic(
    group: Group,
) -> None:
    """The vault follows no ``#`` reference, so such a visit names no clinic: it is put at
    the patient's home clinic. Tuen Mun's doctor is refused one for Tsuen Wan's patient
    (403), and one for his own patient opens nothing and stays his clinic's."""
    refused = group.call(
        group.doctor_tm,
        "POST",
        "/fhir/Encounter",
        _visit_placed_by_a_contained_clinic(group.tw_patient.id),
    )
    assert refused.status_code == 403, refused.text
    assert (
        group.call(group.doctor_tm, "GET", f"/fhir/Patient/{group.tw_patient.id}").status_code
        == 403
    )

    made = group.call(
        group.doctor_tm,
        "POST",
        "/fhir/Encounter",
        _visit_placed_by_a_contained_clinic(group.tm_patient.id),
    )
    assert made.status_code == 201, made.text
    visit = made.json()["id"]
    (written,) = [e for e in group.events(Tag.FHIR_CREATE) if e.resource_id == visit]
    assert written.detail["care"]["opens"] == []
    assert group.call(group.doctor_tw, "GET", f"/fhir/Encounter/{visit}").status_code == 403
    assert group.call(group.desk_tm, "GET", f"/fhir/Encounter/{visit}").status_code == 200


def test_a_booking_naming_another_clinics_patient_beside_ones_own_opens_neither_way(
    group: Group,
) -> None:
    """An Appointment's record is the first Patient it names. Tuen Mun's desk books
    Tsuen Wan's patient first and its own second (and the other way round), with Tuen
    Mun's doctor: both are accepted (a desk may book anyone at its own clinic) and
    neither opens Tsuen Wan's patient to the doctor, by read or by search. Nor can the
    booking be handed to the other patient afterwards: by swapping its participants
    (PUT or a JSON Patch ``move``), or by deleting it and writing its id again."""
    other, own = group.tw_patient.id, group.tm_patient.id
    for first, second in ((other, own), (own, other)):
        booking = booked_today(first, TM, "dr-tm")
        booking["participant"].insert(
            1, {"actor": {"reference": f"Patient/{second}"}, "status": "accepted"}
        )
        made = group.call(group.desk_tm, "POST", "/fhir/Appointment", booking)
        assert made.status_code == 201, made.text

    ident = made.json()["id"]  # the desk's own patient first
    swapped = {
        **booking,
        "id": ident,
        "participant": [
            booking["participant"][1],
            booking["participant"][0],
            *booking["participant"][2:],
        ],
    }
    path = f"/fhir/Appointment/{ident}"
    assert group.call(group.desk_tm, "PUT", path, swapped).status_code == 403
    moved = group.web.request(
        "PATCH",
        path,
        headers={**group.desk_tm.headers, "Content-Type": "application/json-patch+json"},
        content='[{"op": "move", "from": "/participant/1", "path": "/participant/0"}]',
    )
    assert moved.status_code == 403, moved.text
    assert group.call(group.desk_tm, "DELETE", path).status_code == 204
    assert group.call(group.desk_tm, "PUT", path, swapped).status_code == 403

    assert group.call(group.doctor_tm, "GET", f"/fhir/Patient/{other}").status_code == 403
    found = group.call(group.doctor_tm, "GET", f"/fhir/Observation?patient={other}").json()
    assert found["total"] == 0


@pytest.mark.parametrize(
    "src",
    ["/auth/logout", "../../console/incidents", "track?pid=1", "Binary/.."],
    ids=["a-path-of-the-server", "a-parent-path", "a-query", "binarys-parent"],
)
def test_a_narrative_image_is_only_data_a_contained_resource_or_a_binary(
    group: Group, src: str
) -> None:
    """Found this round: an image of a narrative could be any relative URL (the review of
    integrator round 72 refused only one with a scheme or a host), so a doctor's note on
    his own patient made every reader's browser fetch a path and query he chose from the
    origin that shows it, with the reader's cookies. FAILS on main (201); now 400, naming
    the rule and not the URL; ``Binary/[id]`` and ``#id`` are still accepted."""
    note = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "note"},
        "subject": {"reference": f"Patient/{group.tm_patient.id}"},
        "text": {
            "status": "generated",
            "div": f'<div xmlns="http://www.w3.org/1999/xhtml"><p>x</p><img src="{src}"/></div>',
        },
    }
    refused = group.call(group.doctor_tm, "POST", "/fhir/Observation", note)
    assert refused.status_code == 400, refused.text
    assert "Observation.text.div" in refused.text
    assert src not in refused.text

    note["text"]["div"] = (
        '<div xmlns="http://www.w3.org/1999/xhtml"><img src="Binary/scan-1"/>'
        '<img src="#photo"/>x</div>'
    )
    assert group.call(group.doctor_tm, "POST", "/fhir/Observation", note).status_code == 201


def test_a_conditional_update_refused_for_a_hidden_match_names_no_header_it_never_sent(
    group: Group,
) -> None:
    """``PUT Patient?identifier=<Tsuen Wan's HKID>`` by Tuen Mun's desk is refused (409)
    and counted as a conditional create is; its words said "If-None-Exist matches ...",
    a header the request never sent. FAILS on main on the words alone; what is refused
    and counted is unchanged."""
    criteria = f"identifier={HKID_SYSTEM}|{group.tw_patient.hkid}"
    body = {"resourceType": "Patient", "name": [{"family": "Ho"}]}

    refused = group.call(group.desk_tm, "PUT", f"/fhir/Patient?{criteria}", body)

    assert refused.status_code == 409, refused.text
    told = refused.json()["issue"][0]["diagnostics"]
    assert "If-None-Exist" not in told
    assert told.startswith("the conditional criteria match a record you may not see")
    assert group.tw_patient.hkid not in refused.text
