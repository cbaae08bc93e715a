"""Adversary round 70, the insider with the database, continued: someone who may write
to the database but holds no key, and holds a backend service's secret (an integration
team's, a copy of its configuration), widens what the service may read by editing its
client app's row or its bound integration account's, on SQLite and PostgreSQL.

Found: ``client_app`` (clinics, scopes, revocation, the bound account, the secret's hash
and the key set) was a row of clear columns bound to nothing, read at each token asked
for and at each request (a session's state joins it, and the bound account's role,
clinics and suspension, unchecked against the account's seal). Tuen Mun's lab feed,
given Tsuen Wan in the database, read Tsuen Wan's patient (200); revoked by the
administrator, un-revoked in the database, it was given a token again (200).

Now each client app is sealed (an HMAC of every column but its creation time, under a
key derived from the index key: ``ClientApps``, records_0037), written where the row is
written (registration, revocation), checked where it grants something (a token asked
for, a session's state); the apps from before are sealed once, as they stand, at the
first start after the upgrade, noted beside the keyring. A session of a client whose
bound account does not match its seal is refused as the account's own sessions are. An
app whose row does not match is refused (401; ``invalid_client`` at the token
endpoint), an ``auth:client:altered`` entry and a critical alert tell an officer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import insert, update

from carevault.access.tables import (
    care_relationship,
    client_app,
    patient_registration,
    staff_account,
)
from carevault.bootstrap import Services, build_services
from carevault.domain.roles import Role
from tests.integration.access.group import TM, TW, Group, build_group
from tests.support.client import FhirTestClient
from tests.support.insider import edit_rows
from tests.support.ledgers import altered_alerts, entries_once_written
from tests.support.staff import make_staff

pytestmark = pytest.mark.postgres

ALTERED = "auth:client:altered"
FEED = "tm-lab-feed"


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _feed(group: Group, *, bound: bool = False) -> tuple[str, str | None]:
    """Tuen Mun's lab feed, registered for Tuen Mun only: (its secret, its bound
    integration account's id)."""
    account = None
    if bound:
        account = make_staff(group.services, Role.INTEGRATION, [TM]).account
    _, secret = group.services.admin.add_client(
        "admin:test",
        FEED,
        "Tuen Mun lab feed",
        confidential=True,
        scopes="system/Patient.rs system/Observation.rs",
        clinic_ids=[TM],
        account=None if account is None else account.username,
    )
    assert secret is not None
    return secret, None if account is None else account.account_id


def _token(group: Group, secret: str) -> Any:
    return group.web.post(
        "/auth/token",
        data={
            "grant_type": "client_credentials",
            "scope": "system/Patient.rs system/Observation.rs",
            "client_id": FEED,
            "client_secret": secret,
        },
    )


def _reads(group: Group, token: str) -> int:
    path = f"/fhir/Patient/{group.tw_patient.id}"
    status: int = group.web.get(path, headers={"Authorization": f"Bearer {token}"}).status_code
    return status


def _edit(services: Services, **values: Any) -> None:
    edit_rows(services, client_app, client_app.c.client_id == FEED, **values)


def _stale(services: Services) -> None:
    """Past the sessions' cache (``Sessions.check_seconds``)."""
    time.sleep(services.sessions.check_seconds + 0.1)


def test_clinics_added_to_a_client_app_in_the_database_open_nothing(
    group: Group, services: Services
) -> None:
    secret, _ = _feed(group)
    issued = _token(group, secret)
    assert issued.status_code == 200
    held = issued.json()["access_token"]
    assert _reads(group, held) == 403
    _edit(services, clinic_ids=f"{TM},{TW}")
    _stale(services)
    assert _reads(group, held) == 401  # the token it held
    again = _token(group, secret)
    assert again.status_code == 401  # and a token asked for after
    assert again.json()["error"] == "invalid_client"
    (entry,) = entries_once_written(services, ALTERED)
    assert entry.detail == {"client": FEED}
    assert altered_alerts(services) == ["critical"]


def test_a_client_app_unrevoked_in_the_database_gets_no_token(
    group: Group, services: Services
) -> None:
    secret, _ = _feed(group)
    services.admin.revoke_client("admin:test", FEED)
    assert _token(group, secret).status_code == 401
    _edit(services, revoked_us=None)
    assert _token(group, secret).status_code == 401


def test_a_secret_of_the_insiders_own_opens_nothing(group: Group, services: Services) -> None:
    """The insider holds no secret but writes the hash of one of their own."""
    import hashlib

    _feed(group)
    _edit(services, secret_hash=hashlib.sha256(b"the insider's").hexdigest())
    assert _token(group, "the insider's").status_code == 401


def test_clinics_added_to_a_bound_account_in_the_database_open_nothing(
    group: Group, services: Services
) -> None:
    """The feed acts for an integration account of Tuen Mun: the insider widens both the
    app's clinics and, on the account's row, the account's (its seal left as it was)."""
    secret, account_id = _feed(group, bound=True)
    issued = _token(group, secret)
    assert issued.status_code == 200
    held = issued.json()["access_token"]
    assert _reads(group, held) == 403
    with services.engine.begin() as connection:
        connection.execute(
            update(staff_account)
            .where(staff_account.c.account_id == account_id)
            .values(clinic_ids=f"{TM},{TW}")
        )
    _edit(services, clinic_ids=f"{TM},{TW}")
    _stale(services)
    assert _reads(group, held) == 401
    assert _token(group, secret).status_code == 401


def test_a_bound_account_altered_stops_its_app(group: Group, services: Services) -> None:
    """The bound account's row edited (its seal left as it was): the app's sessions are
    refused as the account's own would be, and no token is issued."""
    secret, account_id = _feed(group, bound=True)
    held = _token(group, secret).json()["access_token"]
    with services.engine.begin() as connection:
        connection.execute(
            update(staff_account)
            .where(staff_account.c.account_id == account_id)
            .values(clinic_ids=f"{TM},{TW}")
        )
    _stale(services)
    assert (
        group.web.get(
            f"/fhir/Patient/{group.tm_patient.id}", headers={"Authorization": f"Bearer {held}"}
        ).status_code
        == 401
    )
    assert _token(group, secret).status_code in {400, 401}


def test_a_client_app_registered_now_is_used_as_before(group: Group, services: Services) -> None:
    """Guard: the feed reads Tuen Mun's patient, in this process and in one started
    after, and nothing is reported."""
    secret, _ = _feed(group)
    held = _token(group, secret).json()["access_token"]
    path = f"/fhir/Patient/{group.tm_patient.id}"
    headers = {"Authorization": f"Bearer {held}"}
    assert group.web.get(path, headers=headers).status_code == 200
    restarted = build_services(services.settings)
    try:
        assert restarted.clients.authenticate(FEED, secret) is not None
    finally:
        restarted.close()
    assert entries_once_written(services, ALTERED, seconds=0.5) == []


def test_apps_from_before_the_seal_are_sealed_once_as_they_stand(
    group: Group, services: Services
) -> None:
    """An app without a seal (registered before records_0037) is sealed at the first
    start after the upgrade and works as before; stripped of its seal after that (the
    note beside the keyring says sealing was done), it is refused."""
    from carevault.keys.anchors import anchors_path

    secret, _ = _feed(group)
    anchors = anchors_path(services.settings.resolved_keyring_path)
    anchors.write_text(
        "".join(f"{line}\n" for line in anchors.read_text().split() if line != "client_app")
    )
    _edit(services, seal=None)  # as before the upgrade: no app sealed yet
    restarted = build_services(services.settings)
    try:
        assert restarted.clients.authenticate(FEED, secret) is not None
    finally:
        restarted.close()
    assert "client_app" in anchors.read_text().split()
    _edit(services, seal=None)
    restarted = build_services(services.settings)
    try:
        assert restarted.clients.authenticate(FEED, secret) is None
        (entry,) = entries_once_written(restarted, ALTERED)
        assert entry.detail == {"client": FEED}
    finally:
        restarted.close()


# --- registrations and care relationships ------------------------------------------------


def _tw_pseudonym(group: Group) -> str:
    patient = group.tw_patient.id
    return str(group.services.vault.patient_pseudonyms([patient])[patient])


def _register_at_tm(services: Services, pseudonym: str) -> None:
    """The insider registers Tsuen Wan's patient at Tuen Mun, as if on proof of presence."""
    with services.engine.begin() as connection:
        connection.execute(
            insert(patient_registration).values(
                patient_pseudonym=pseudonym,
                clinic_id=TM,
                registered_us=services.now_us(),
                registered_by="staff:someone",
                proof="hkid",
            )
        )


def _open_to_tm(services: Services, pseudonym: str) -> None:
    """The insider opens the patient's record to all of Tuen Mun until 2^62."""
    with services.engine.begin() as connection:
        connection.execute(
            insert(care_relationship).values(
                patient_pseudonym=pseudonym,
                clinic_id=TM,
                practitioner_token=None,
                source_row_id=0,
                valid_from_us=0,
                valid_until_us=2**62,
            )
        )


def _past_the_caches(services: Services) -> None:
    """Past the registrations' and care relationships' caches (half a second each)."""
    time.sleep(max(services.sessions.check_seconds, 0.5) + 1.0)


def test_a_registration_inserted_in_the_database_opens_nothing(
    group: Group, services: Services
) -> None:
    path = f"/fhir/Patient/{group.tw_patient.id}"
    assert group.call(group.desk_tm, "GET", path).status_code == 403
    _register_at_tm(services, _tw_pseudonym(group))
    _past_the_caches(services)
    assert group.call(group.desk_tm, "GET", path).status_code == 403
    assert group.call(group.doctor_tm, "GET", path).status_code == 403


def test_a_care_relationship_inserted_in_the_database_opens_nothing(
    group: Group, services: Services
) -> None:
    """The care relationship alone, and beside an inserted registration."""
    path = f"/fhir/Observation/{group.tw_patient.observation}"
    pseudonym = _tw_pseudonym(group)
    _open_to_tm(services, pseudonym)
    _past_the_caches(services)
    assert group.call(group.doctor_tm, "GET", path).status_code == 403
    _register_at_tm(services, pseudonym)
    _past_the_caches(services)
    assert group.call(group.doctor_tm, "GET", path).status_code == 403
    searched = group.call(
        group.doctor_tm, "GET", f"/fhir/Observation?patient={group.tw_patient.id}"
    )
    assert "HbA1c" not in searched.text


def test_care_from_before_the_seal_is_sealed_once_as_it_stands(
    group: Group, services: Services
) -> None:
    """Care relationships and registrations without a seal (written before records_0038)
    are sealed at the first start after the upgrade and open as before; stripped of their
    seals after that (the note beside the keyring says sealing was done), they open
    nothing: Tuen Mun's doctor, who sees Tuen Mun's patient, is refused."""
    from carevault.keys.anchors import anchors_path

    path = f"/fhir/Observation/{group.tm_patient.observation}"
    assert group.call(group.doctor_tm, "GET", path).status_code == 200
    anchors = anchors_path(services.settings.resolved_keyring_path)
    upgraded = {"care_relationship", "patient_registration"}
    anchors.write_text(
        "".join(f"{line}\n" for line in anchors.read_text().split() if line not in upgraded)
    )
    with services.engine.begin() as connection:
        connection.execute(update(care_relationship).values(seal=None))
        connection.execute(update(patient_registration).values(seal=None))
    restarted = build_services(services.settings)
    restarted.close()
    assert upgraded <= set(anchors.read_text().split())
    _past_the_caches(services)
    assert group.call(group.doctor_tm, "GET", path).status_code == 200
    with services.engine.begin() as connection:
        connection.execute(update(care_relationship).values(seal=None))
    _past_the_caches(services)
    assert group.call(group.doctor_tm, "GET", path).status_code == 403
