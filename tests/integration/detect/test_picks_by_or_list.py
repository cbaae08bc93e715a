"""A search that names people one by one with a list of alternatives (adv4, finding 1):
``family=Ho,Yip`` or ``name=Ho,Yip`` that gives those two patients is as much a choice of
each as ``_id=a,b``, so the co-worker among them raises the same alert as reading their
record by id. The gate records how many values each criterion listed (counts only); a
list that gives many more patients than it named stays a broad net."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from carevault.detect import alerts_as_dicts
from carevault.domain.roles import Role
from carevault.ledger.events import AuditEvent
from tests.integration.detect.conftest import Clinic, raising_clinic
from tests.integration.detect.test_snooping import _create, _hkid, _patient
from tests.support.staff import make_staff


@pytest.fixture
def clinic(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Clinic]:
    bodies = (_patient(f"Lee{n}", [f"Flat {n % 8}, {n}/F", f"{n} Nathan Road"]) for n in range(40))
    with raising_clinic(backend, tmp_path, request, bodies, detect_kin_grace_seconds=0) as opened:
        yield opened


def _coworker(clinic: Clinic) -> str:
    """A nurse of the clinic who is also its patient (Ho), and a patient named Yip."""
    detection = clinic.services.detection
    assert detection is not None
    colleague = make_staff(clinic.services, Role.NURSE, ["clinic-a"])
    detection.kinship.identify(f"staff:{colleague.account.username}", "test:hr", hkid=_hkid(2))
    coworker = _create(clinic, _patient("Ho", ["Flat 9, 9/F", "9 Kings Road"], _hkid(2)))
    _create(clinic, _patient("Yip", ["7 Java Road"], _hkid(9)))
    return coworker


@pytest.mark.parametrize(
    "params",
    [{"family": "Ho,Yip"}, {"name": "Ho,Yip"}, {"family": "Ho,Yip", "given": "Siu Ming"}],
    ids=["family-or-list", "name-or-list", "or-list-and-given"],
)
def test_a_search_naming_two_people_by_surname_or_name_picks_each(
    clinic: Clinic, params: dict[str, str]
) -> None:
    coworker = _coworker(clinic)
    by_read = make_staff(clinic.services, Role.FRONT_DESK, ["clinic-a"])
    by_list = make_staff(clinic.services, Role.FRONT_DESK, ["clinic-a"])
    found = clinic.web.get("/fhir/Patient", params=params, headers=by_list.headers)
    assert found.status_code == 200, found.text
    assert found.json()["total"] == 2
    assert coworker in {e["resource"]["id"] for e in found.json()["entry"]}
    assert clinic.read(by_read, coworker) == 200
    alerts = {a["account"]: a for a in alerts_as_dicts(clinic.services)}
    read = alerts[by_read.account.username]
    assert (read["detector"], read["patient_count"]) == ("co-worker", 1)
    listed = alerts[by_list.account.username]
    assert (listed["detector"], listed["patient_count"]) == ("co-worker", 1)
    # The gate recorded how many values the list held, never the values.
    entries = [
        AuditEvent.from_canonical(data) for _, data in clinic.services.audit_ledger.store.entries()
    ]
    searched = [e for e in entries if e.principal == f"staff:{by_list.account.username}"]
    assert {str(e.detail.get("alternatives")) for e in searched} == {
        str({name: 2 for name, value in params.items() if "," in value})
    }
    assert not any("Yip" in str(e.detail) or "Ho," in str(e.detail) for e in searched)


def test_a_list_that_gives_many_more_patients_than_it_named_is_a_broad_net(
    clinic: Clinic,
) -> None:
    coworker = _coworker(clinic)
    desk = make_staff(clinic.services, Role.FRONT_DESK, ["clinic-a"])
    # Two surnames, 42 patients (every Lee, and Ho): the co-worker was not chosen.
    found = clinic.web.get(
        "/fhir/Patient", params={"family": "Lee,Ho", "_count": "50"}, headers=desk.headers
    )
    assert found.status_code == 200, found.text
    assert coworker in {e["resource"]["id"] for e in found.json()["entry"]}
    mine = [a for a in alerts_as_dicts(clinic.services) if a["account"] == desk.account.username]
    # Breadth sees 42 patients read; no one of them counts as picked.
    assert "co-worker" not in {a["detector"] for a in mine}
