"""An update by a reader whose view of the record is cut keeps what it was not shown,
put back from the stored record (``restore_withheld``), and must keep it from the
version it replaces (writes pass). It was put back from the version read before the
write's transaction began: a colleague's change that came between (an HKID corrected, a
narrative written) was silently reverted by a desk's phone-number update. On SQLite and
PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from carevault.bootstrap import Services
from carevault.ledger.events import Outcome, Tag
from tests.integration.access.group import HKID_SYSTEM, Group, build_group
from tests.support.client import FhirTestClient

NARRATIVE = {
    "status": "generated",
    "div": '<div xmlns="http://www.w3.org/1999/xhtml">Chan Siu Ming, HKID corrected</div>',
}


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _meanwhile(group: Group, monkeypatch: pytest.MonkeyPatch, change: Callable[[], None]) -> None:
    """Run ``change`` once, after the next staff write has been prepared and before its
    transaction begins: a colleague's write landing between the two."""
    gate = group.services.gate
    prepare = gate._prepare
    pending = [change]

    def racing(caller: Any, operation: Any) -> Any:
        prepared = prepare(caller, operation)
        if caller.actor is not None and pending:
            pending.pop()()
        return prepared

    monkeypatch.setattr(gate, "_prepare", racing)


def _doctor_corrects(api: FhirTestClient, path: str, **changes: Any) -> Callable[[], None]:
    def change() -> None:
        record = api.get(path).json()
        record.pop("meta")
        assert api.put_json(path, {**record, **changes}).status_code == 200

    return change


def _desk_saves_a_new_phone(group: Group, path: str, view: dict[str, Any]) -> Any:
    return group.call(
        group.desk_tm,
        "PUT",
        path,
        {**view, "telecom": [{"system": "phone", "value": "+852 9000 1111"}]},
    )


@pytest.mark.parametrize(
    "corrected",
    [
        {"identifier": [{"system": HKID_SYSTEM, "value": "A123457(1)"}]},
        {"text": NARRATIVE},
    ],
    ids=["hkid", "narrative"],
)
def test_a_change_the_writer_was_not_shown_made_meanwhile_is_not_reverted(
    group: Group, api: FhirTestClient, monkeypatch: pytest.MonkeyPatch, corrected: Any
) -> None:
    path = f"/fhir/Patient/{group.tm_patient.id}"
    view = group.call(group.desk_tm, "GET", path).json()
    _meanwhile(group, monkeypatch, _doctor_corrects(api, path, **corrected))

    response = _desk_saves_a_new_phone(group, path, view)

    assert response.status_code == 409, response.text
    assert "A123457" not in response.text and "corrected" not in response.text
    stored = api.get(path).json()
    assert {name: stored[name] for name in corrected} == corrected
    assert stored["telecom"] == [{"system": "phone", "value": "+852 9123 4567"}]
    assert stored["meta"]["versionId"] == "2"
    refused = [e for e in group.events(Tag.FHIR_UPDATE) if e.outcome is not Outcome.SUCCESS]
    assert refused and refused[-1].principal == f"staff:{group.desk_tm.account.username}"


def test_a_change_the_writer_could_see_made_meanwhile_is_overwritten_as_before(
    group: Group, api: FhirTestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without If-Match the last write wins, as FHIR has it, where nothing withheld from
    the writer differs: only what it could not see is guarded."""
    path = f"/fhir/Patient/{group.tm_patient.id}"
    view = group.call(group.desk_tm, "GET", path).json()
    _meanwhile(group, monkeypatch, _doctor_corrects(api, path, gender="female"))

    response = _desk_saves_a_new_phone(group, path, view)

    assert response.status_code == 200, response.text
    stored = api.get(path).json()
    assert "gender" not in stored
    assert stored["identifier"] == [{"system": HKID_SYSTEM, "value": group.tm_patient.hkid}]
    assert stored["telecom"] == [{"system": "phone", "value": "+852 9000 1111"}]
