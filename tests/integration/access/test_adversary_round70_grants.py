"""Adversary round 70, the insider with the database: break-the-glass grants written in
the database, on SQLite and PostgreSQL.

Found: ``break_glass`` rows were bound to nothing. A grant row inserted for Tuen Mun's
doctor, naming Tsuen Wan's patient (account, pseudonym, a reason code, from now to an
hour on: clear columns), opened that patient's observation to him (200) and to his
searches; the detectors would have taken his reads as explained.

Now each grant is sealed (an HMAC of what it opens under a key derived from the index
key: ``BreakGlass``, records_0035), grants from before sealed once at the first start
after the upgrade (noted beside the keyring). A grant whose row does not match opens
nothing, is never approved, and is reported: an ``access:break-glass:altered`` entry and
a critical ``stored-data-altered`` alert."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import insert, update

from carevault.access.breakglass import BreakGlassError
from carevault.access.tables import break_glass
from carevault.bootstrap import Services, build_services
from carevault.domain.roles import Role
from tests.integration.access.group import TM, Group, build_group
from tests.support.client import FhirTestClient
from tests.support.ledgers import altered_alerts, entries_once_written, patient_pseudonym
from tests.support.staff import Staff, make_staff

pytestmark = pytest.mark.postgres

ALTERED = "access:break-glass:altered"
HOUR_US = 3_600_000_000


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _forge(services: Services, grant_id: str, who: Staff, pseudonym: str, **values: object) -> None:
    """A grant row as someone who may write to the database would insert it."""
    now = services.now_us()
    with services.engine.begin() as connection:
        connection.execute(
            insert(break_glass).values(
                {
                    "grant_id": grant_id,
                    "account_id": who.account.account_id,
                    "patient_pseudonym": pseudonym,
                    "reason_code": "emergency-treatment",
                    "reason_sealed": b"\x00" * 40,
                    "granted_us": now - 1_000_000,
                    "expires_us": now + HOUR_US,
                    "emergency": False,
                    **values,
                }
            )
        )


def _break_glass(group: Group, who: Staff, patient: str) -> None:
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "reason", "valueCode": "emergency-treatment"},
            {"name": "text", "valueString": "collapsed in the waiting room"},
        ],
    }
    answer = group.call(who, "POST", f"/fhir/Patient/{patient}/$break-glass", body)
    assert answer.status_code in (200, 201), answer.text


def test_a_grant_inserted_in_the_database_opens_nothing(group: Group, services: Services) -> None:
    theirs = group.tw_patient
    read = f"/fhir/Observation/{theirs.observation}"
    search = f"/fhir/Observation?patient={theirs.id}"
    assert group.call(group.doctor_tm, "GET", read).status_code == 403
    _forge(services, "bg-forged", group.doctor_tm, patient_pseudonym(services, theirs.id))
    answered = group.call(group.doctor_tm, "GET", read)
    assert answered.status_code == 403, "Tsuen Wan's observation read under a forged grant"
    found = group.call(group.doctor_tm, "GET", search)
    assert found.status_code == 200
    assert found.json().get("total", 0) == 0 and "HbA1c" not in found.text
    (entry,) = entries_once_written(services, ALTERED)
    assert entry.detail == {"grant": "bg-forged"}
    assert theirs.id not in str(entry.reason)
    severities = altered_alerts(services)
    assert severities and set(severities) == {"critical"}


def test_a_genuine_grant_moved_to_another_account_opens_nothing(
    group: Group, services: Services
) -> None:
    """Tuen Mun's doctor breaks the glass for Tsuen Wan's patient (read, 200); the insider
    hands the grant to a colleague of Tuen Mun: neither reads any more."""
    theirs = group.tw_patient
    read = f"/fhir/Observation/{theirs.observation}"
    _break_glass(group, group.doctor_tm, theirs.id)
    assert group.call(group.doctor_tm, "GET", read).status_code == 200
    colleague = make_staff(services, Role.PHYSICIAN, [TM])
    assert group.web.get(read, headers=colleague.headers).status_code == 403
    with services.engine.begin() as connection:
        connection.execute(
            update(break_glass)
            .where(break_glass.c.account_id == group.doctor_tm.account.account_id)
            .values(account_id=colleague.account.account_id)
        )
    assert group.web.get(read, headers=colleague.headers).status_code == 403
    assert group.call(group.doctor_tm, "GET", read).status_code == 403
    assert len(entries_once_written(services, ALTERED)) == 1


def test_a_grant_lengthened_in_the_database_opens_nothing(group: Group, services: Services) -> None:
    theirs = group.tw_patient
    read = f"/fhir/Observation/{theirs.observation}"
    _break_glass(group, group.doctor_tm, theirs.id)
    with services.engine.begin() as connection:
        connection.execute(update(break_glass).values(expires_us=break_glass.c.expires_us + 1))
    assert group.call(group.doctor_tm, "GET", read).status_code == 403


def test_a_forged_emergency_request_is_never_approved(group: Group, services: Services) -> None:
    """An emergency request (patient data offline) inserted in the database, waiting for
    an officer: approving it would seal it anew, so it is refused, and told."""
    _forge(
        services,
        "bg-forged-emergency",
        group.doctor_tm,
        patient_pseudonym(services, group.tw_patient.id),
        emergency=True,
    )
    with pytest.raises(BreakGlassError, match="altered in the database"):
        services.break_glass.approve("bg-forged-emergency", group.officer.account.account_id)
    with pytest.raises(BreakGlassError, match="altered in the database"):
        services.break_glass.review(
            "bg-forged-emergency", group.officer.account.account_id, "justified"
        )
    assert len(entries_once_written(services, ALTERED)) == 1


def test_grants_from_before_the_seal_are_sealed_once_as_they_stand(
    group: Group, services: Services
) -> None:
    """Guard: a grant without a seal (written before records_0035) is sealed at the first
    start after the upgrade and opens as before; stripped of its seal after that (the
    note beside the keyring says sealing was done), it opens nothing."""
    from carevault.keys.anchors import SealAnchors, anchors_path

    theirs = group.tw_patient
    read = f"/fhir/Observation/{theirs.observation}"
    _break_glass(group, group.doctor_tm, theirs.id)
    anchors = anchors_path(services.settings.resolved_keyring_path)
    kept = [line for line in anchors.read_text().split() if line != "break_glass"]
    anchors.write_text("".join(f"{line}\n" for line in kept))  # as before the upgrade
    assert not SealAnchors(anchors).holds("break_glass")
    with services.engine.begin() as connection:
        connection.execute(update(break_glass).values(seal=None))
    restarted = build_services(services.settings)
    try:
        pseudonym = patient_pseudonym(restarted, theirs.id)
        account = group.doctor_tm.account.account_id
        assert restarted.break_glass.active(account, pseudonym, restarted.now_us()) is not None
    finally:
        restarted.close()
    assert SealAnchors(anchors).holds("break_glass")
    with services.engine.begin() as connection:
        connection.execute(update(break_glass).values(seal=None))
    restarted = build_services(services.settings)
    try:
        account = group.doctor_tm.account.account_id
        pseudonym = patient_pseudonym(restarted, theirs.id)
        assert restarted.break_glass.active(account, pseudonym, restarted.now_us()) is None
    finally:
        restarted.close()
    assert group.call(group.doctor_tm, "GET", read).status_code == 403
