"""Integrator round, stop 65 (fhir-kit-client's ``nextPage``, SMART's client-js with
``pageLimit: 0``): a client paging one patient's ``$everything`` two records a page was
revoked for "13 $everything calls in an hour", and a physician's app paging one chart
twice was suspended. Each page is a ledger entry of its own; ``everything-calls`` now
counts the patients whose charts were asked for, so the pages of one chart, and the
chart opened again, are one (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from carevault.detect import alerts_as_dicts
from carevault.domain.roles import Role
from tests.integration.detect.conftest import Clinic, clinic_patients, raising_clinic
from tests.support.staff import make_staff

pytestmark = pytest.mark.postgres


@pytest.fixture
def clinic(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Clinic]:
    with raising_clinic(backend, tmp_path, request, clinic_patients(12, "Ho", "Ka Yan")) as opened:
        yield opened


def _pages(clinic: Clinic, headers: dict[str, str], patient: str) -> int:
    """Follow ``next`` from the chart's first page, two records a page; the pages read."""
    url: str | None = f"/fhir/Patient/{patient}/$everything?_count=2"
    pages = 0
    while url is not None:
        response = clinic.web.get(url, headers=headers)
        assert response.status_code == 200, response.text
        pages += 1
        links = {link["relation"]: link["url"] for link in response.json().get("link", [])}
        url = links.get("next")
    return pages


def test_paging_one_chart_again_and_again_is_one_patients_everything(clinic: Clinic) -> None:
    doctor = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-a"], "dr-pager")
    clinic.book_everyone(datetime.now(UTC))
    chart = clinic.patients[0]
    for n in range(20):
        body = {
            "resourceType": "Observation", "status": "final",
            "code": {"text": f"reading {n}"},
            "subject": {"reference": f"Patient/{chart}"},
            "valueQuantity": {"value": n, "unit": "mmol/L"},
        }  # fmt: skip
        made = clinic.web.post_json("/fhir/Observation", body, **doctor.headers)
        assert made.status_code == 201, made.text
    assert _pages(clinic, doctor.headers, chart) >= 11
    assert _pages(clinic, doctor.headers, chart) >= 11
    # Nine more patients' charts: ten in the hour, the most allowed.
    for patient in clinic.patients[1:10]:
        _pages(clinic, doctor.headers, patient)
    assert [
        a for a in alerts_as_dicts(clinic.services) if a["detector"] == "everything-calls"
    ] == []
    # The eleventh patient's is one too many.
    _pages(clinic, doctor.headers, clinic.patients[10])
    (alert,) = [a for a in alerts_as_dicts(clinic.services) if a["detector"] == "everything-calls"]
    assert alert["account"] == doctor.account.username
    assert alert["explanation"].startswith("$everything of 11 patients in an hour")
