"""A VIP's record reached by other ways than a read by id: listed by a search, taken
whole by ``$everything``, or by a client app. Each is judged as a read is."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from carevault.detect import alerts_as_dicts
from carevault.domain.roles import Role
from tests.integration.detect.conftest import (
    Clinic,
    bound_feed,
    clinic_patients,
    feed_token,
    raising_clinic,
)
from tests.integration.detect.test_vip_near_care import _booking
from tests.support.ledgers import patient_pseudonym
from tests.support.staff import make_staff


@pytest.fixture
def clinic(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Clinic]:
    with raising_clinic(backend, tmp_path, request, clinic_patients(3, "Star", "Famous")) as opened:
        detection = opened.services.detection
        assert detection is not None
        vip = opened.patients[0]
        detection.flags.set("vip", patient_pseudonym(opened.services, vip), "staff:officer")
        booked = opened.web.post_json("/fhir/Appointment", _booking(vip, 10), **opened.desk.headers)
        assert booked.status_code == 201, booked.text
        yield opened


def _vip_alerts(clinic: Clinic) -> list[tuple[str, str | None, str | None]]:
    return [
        (a["severity"], a["account"], a["client"])
        for a in alerts_as_dicts(clinic.services)
        if a["detector"] == "vip"
    ]


@pytest.mark.parametrize(
    "url",
    [
        "/fhir/Patient?family=Star0,Star1,Star2",  # listed among others by a search
        "/fhir/Patient/{vip}/$everything",
        "/fhir/Patient/{vip}/_history",
        "/fhir/Appointment?_include=Appointment:patient",  # the VIP as an included record
    ],
)
def test_a_vip_reached_far_from_care_by_other_interactions_is_judged(
    clinic: Clinic, url: str
) -> None:
    nurse = make_staff(clinic.services, Role.NURSE, ["clinic-a"])
    got = clinic.web.get(url.format(vip=clinic.patients[0]), headers=nurse.headers)
    assert got.status_code == 200, got.text
    assert _vip_alerts(clinic) == [("medium", nurse.account.username, "test-app")]


def test_a_client_app_is_judged_by_care_alone_for_a_vip(clinic: Clinic) -> None:
    # As documented: results and bookings apps are not held to the day of the visit; a
    # VIP the clinic has no care for is a high alert for them as for anyone.
    services = clinic.services
    token = feed_token(clinic, bound_feed(clinic)).json()["access_token"]
    headers = {"authorization": f"Bearer {token}"}
    vip, other = clinic.patients[0], clinic.patients[1]
    assert clinic.web.get(f"/fhir/Patient/{vip}", headers=headers).status_code == 200
    assert _vip_alerts(clinic) == []
    detection = services.detection
    assert detection is not None
    detection.flags.set("vip", patient_pseudonym(services, other), "staff:officer")
    assert clinic.web.get(f"/fhir/Patient/{other}", headers=headers).status_code == 200
    assert _vip_alerts(clinic) == [("high", None, "lab-feed")]
