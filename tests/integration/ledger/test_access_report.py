"""A patient's access report lists the newest accesses and says what it left out: a
patient with a long history (every broad search that lists them is an entry), or an
insider who first runs up the count with harmless reads, must not push the newest
accesses, the snoop's among them, out of a report that reads as complete (adv4)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from carevault.config import Settings
from carevault.ledger.audit import REPORT_LIMIT, access_report
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.web.audit_routes import describe_principal
from tests.conftest import make_settings
from tests.integration.detect.conftest import Clinic, opened_clinic
from tests.support.ledgers import patient_pseudonym

#: A small cap (CAREVAULT_ACCESS_REPORT_LIMIT): what it cuts is the same at 10,000, whose
#: history took 20-35 s a test to write.
CAP = 50


@pytest.fixture
def clinic(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Clinic]:
    url = request.getfixturevalue("pg_schema") if backend == "postgres" else None
    settings = make_settings(tmp_path / "home", url, detect=False, access_report_limit=CAP)
    body = {
        "resourceType": "Patient",
        "name": [{"family": "Long", "given": ["History"]}],
        "managingOrganization": {"reference": "Organization/clinic-a"},
    }
    with opened_clinic(settings, [body]) as opened:
        yield opened


def _read(clinic: Clinic, principal: str, pseudonym: str, patient: str) -> AuditEvent:
    return AuditEvent(
        tag=Tag.FHIR_SEARCH,
        outcome=Outcome.SUCCESS,
        at_us=clinic.services.now_us(),
        principal=principal,
        role="front_desk",
        clinic_ids=("clinic-a",),
        resource_type="Patient",
        resource_id=patient,
        patient_pseudonym=pseudonym,
        categories=("identity",),
        purpose="TREAT",
    )


def test_a_long_history_keeps_the_newest_accesses_and_says_it_is_incomplete(
    clinic: Clinic,
) -> None:
    (patient,) = clinic.patients
    pseudonym = patient_pseudonym(clinic.services, patient)
    routine = [_read(clinic, "staff:routine", pseudonym, patient) for _ in range(CAP)]
    for start in range(0, CAP, 1000):
        clinic.services.audit.record(routine[start : start + 1000])
    clinic.services.audit.record([_read(clinic, "staff:snoop", pseudonym, patient)])
    clinic.services.audit_ledger.checkpoints.make("test")
    url = f"/audit/patients/{patient}/access-report"
    response = clinic.web.get(url, headers=clinic.officer.headers)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["accesses"][-1]["who"] == "staff:snoop"
    assert len(report["accesses"]) == CAP
    assert report["complete"] is False
    assert report["left_out"] == report["total"] - CAP > 0
    older = clinic.web.get(
        url, params={"before": report["older_before"]}, headers=clinic.officer.headers
    ).json()
    assert older["accesses"][-1]["seq"] < report["older_before"]
    shown = len(older["accesses"]) + len(report["accesses"])
    assert shown == report["total"] and older["older_before"] is None


def test_the_report_counts_what_it_leaves_out_before_and_after_its_checkpoint(
    clinic: Clinic,
) -> None:
    (patient,) = clinic.patients
    pseudonym = patient_pseudonym(clinic.services, patient)
    services = clinic.services
    services.audit.record([_read(clinic, f"staff:desk{n}", pseudonym, patient) for n in range(5)])
    checkpoint = services.audit_ledger.checkpoints.make("test")
    services.audit.record([_read(clinic, "staff:late", pseudonym, patient) for _ in range(2)])
    describe = describe_principal(services)
    whole = access_report(services.audit_ledger, pseudonym, checkpoint, describe)
    assert whole["complete"] is True and whole["left_out"] == 0
    assert whole["older_before"] is None and whole["after_checkpoint"] == 2
    assert "staff:late" not in {line["who"] for line in whole["accesses"]}
    cut = access_report(services.audit_ledger, pseudonym, checkpoint, describe, limit=2)
    assert [line["who"] for line in cut["accesses"]] == ["staff:desk3", "staff:desk4"]
    assert cut["complete"] is False and cut["total"] == whole["total"]
    assert cut["left_out"] == whole["total"] - 2
    assert cut["older_before"] == cut["accesses"][0]["seq"]
    back = access_report(
        services.audit_ledger, pseudonym, checkpoint, describe, limit=2,
        before_seq=cut["older_before"],
    )  # fmt: skip
    assert [line["who"] for line in back["accesses"]] == ["staff:desk1", "staff:desk2"]


def test_a_report_holds_ten_thousand_lines_unless_configured() -> None:
    assert Settings.model_fields["access_report_limit"].default == REPORT_LIMIT == 10_000


@pytest.mark.parametrize("before", ["x", "-1", "\u00b2", "9" * 30])
def test_a_bad_before_is_refused(clinic: Clinic, before: str) -> None:
    (patient,) = clinic.patients
    response = clinic.web.get(
        f"/audit/patients/{patient}/access-report",
        params={"before": before},
        headers=clinic.officer.headers,
    )
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"
