"""The review of round 70 (stop 56), as the insider with the database, on SQLite and
PostgreSQL: what the stop's seals did not reach.

Found: a session is sealed, but the rows a session is opened *from* were not. An
authorization code inserted in the database (a code of the insider's choosing, for Tsuen
Wan's doctor, with a PKCE verifier of their own) was redeemed for a session, sealed as
genuine, that read Tsuen Wan's patient; a refresh token inserted for the doctor's live
session refreshed into it; a console cookie's row pointed at the privacy officer's
console session gave a viewer with the officer's role. Each row is now sealed
(records_0039) and one that does not match opens nothing. Two ways round a seal were
closed too: a number written as text (``1_796…``) sealed as the number while SQLite
compared it as text (above every number: a grant that never ran out), and a
registration whose time was NULL passed for the patient's home clinic."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import insert, select, text, update

from carevault.access import pkce
from carevault.access.oauth import OAuthError, Origin
from carevault.access.sessions import RefreshRefused, token_hash
from carevault.access.tables import auth_code, break_glass, patient_registration, refresh_token
from carevault.bootstrap import Services
from carevault.console.sessions import secret_hash
from carevault.console.tables import console_session
from tests.integration.access.conftest import MovableClock
from tests.integration.access.group import TM, Group, build_group
from tests.support.client import FhirTestClient
from tests.support.ledgers import patient_pseudonym
from tests.support.staff import TEST_APP

pytestmark = pytest.mark.postgres

CALLBACK = "http://127.0.0.1/callback"


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def test_a_code_inserted_in_the_database_opens_no_session(group: Group, services: Services) -> None:
    doctor = group.doctor_tw.account.account_id
    before = len(services.sessions.list_for(doctor))
    verifier = pkce.new_verifier()
    now = services.now_us()
    with services.engine.begin() as connection:
        connection.execute(
            insert(auth_code).values(
                code_hash=hashlib.sha256(b"insider-code").hexdigest(),
                client_id=TEST_APP,
                account_id=doctor,
                redirect_uri=CALLBACK,
                code_challenge=pkce.challenge_for(verifier),
                scopes="user/*.cruds",
                expires_us=now + 600_000_000,
                used_us=None,
            )
        )
    form = {
        "grant_type": "authorization_code",
        "code": "insider-code",
        "client_id": TEST_APP,
        "redirect_uri": CALLBACK,
        "code_verifier": verifier,
    }
    with pytest.raises(OAuthError) as refused:
        services.oauth.token(form, None, Origin("127.0.0.1", "tests"))
    assert refused.value.error == "invalid_grant"
    assert "altered" in refused.value.reason
    assert len(services.sessions.list_for(doctor)) == before


def test_a_refresh_token_inserted_for_anothers_session_refreshes_nothing(
    group: Group, services: Services
) -> None:
    (live, *_) = services.sessions.list_for(group.doctor_tw.account.account_id)
    now = services.now_us()
    with services.engine.begin() as connection:
        connection.execute(
            insert(refresh_token).values(
                token_hash=token_hash("insider-known"),
                session_id=live.session_id,
                issued_us=now,
                expires_us=now + 10**12,
                used_us=None,
            )
        )
    with pytest.raises(RefreshRefused) as refused:
        services.sessions.refresh("insider-known", live.client_id)
    assert "altered" in refused.value.reason


def test_a_refresh_token_moved_to_another_session_refreshes_nothing(
    group: Group, services: Services
) -> None:
    """The desk's own refresh token, its row pointed at Tsuen Wan's doctor's session."""
    desk = group.desk_tm.account
    (mine, *_) = services.sessions.list_for(desk.account_id)
    held = services.sessions.open(
        subject=desk.account_id,
        account_id=desk.account_id,
        client_id=mine.client_id,
        scope="user/*.cruds offline_access",
        with_refresh=True,
        source_address=None,
        user_agent=None,
    )
    assert held.refresh_token is not None
    (theirs, *_) = services.sessions.list_for(group.doctor_tw.account.account_id)
    with services.engine.begin() as connection:
        connection.execute(
            update(refresh_token)
            .where(refresh_token.c.token_hash == token_hash(held.refresh_token))
            .values(session_id=theirs.session_id)
        )
    with pytest.raises(RefreshRefused):
        services.sessions.refresh(held.refresh_token, theirs.client_id)


def test_a_console_cookie_pointed_at_an_officers_session_opens_no_console(
    group: Group, services: Services
) -> None:
    origin = Origin("127.0.0.1", "tests")
    officer = services.console._open(group.officer.account, origin)
    assert services.console.resolve(officer) is not None
    with services.engine.begin() as connection:
        (session_id,) = connection.execute(
            select(console_session.c.session_id).where(
                console_session.c.secret_hash == secret_hash(officer)
            )
        ).one()
        now = services.now_us()
        connection.execute(
            insert(console_session).values(
                secret_hash=secret_hash("insider-cookie"),
                session_id=session_id,
                account_id=group.desk_tm.account.account_id,
                display_name="Front desk",
                created_us=now,
                last_seen_us=now,
            )
        )
    assert services.console.resolve("insider-cookie") is None
    # The officer's own cookie still works.
    assert services.console.resolve(officer) is not None


@pytest.mark.movable_clock
def test_a_grants_expiry_written_as_text_does_not_keep_it_open(
    group: Group, services: Services, clock: MovableClock
) -> None:
    """SQLite keeps what it is given: ``1_796…`` is text, which compares above every
    number, and Python's ``int`` reads it as the number. The seal keeps the type."""
    if services.engine.dialect.name != "sqlite":
        pytest.skip("a column's type is the column's on PostgreSQL")
    theirs = group.tw_patient
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "reason", "valueCode": "emergency-treatment"},
            {"name": "text", "valueString": "collapsed in the waiting room"},
        ],
    }
    path = f"/fhir/Patient/{theirs.id}/$break-glass"
    assert group.call(group.doctor_tm, "POST", path, body).status_code in (200, 201)
    with services.engine.begin() as connection:
        grant_id, expires = connection.execute(
            select(break_glass.c.grant_id, break_glass.c.expires_us)
        ).one()
        spelled = f"{str(expires)[:3]}_{str(expires)[3:]}"
        connection.execute(
            update(break_glass).where(break_glass.c.grant_id == grant_id).values(expires_us=spelled)
        )
        assert connection.execute(text("SELECT typeof(expires_us) FROM break_glass")).scalar() == (
            "text"
        )
    clock.advance(30 * 86_400)
    account = group.doctor_tm.account.account_id
    pseudonym = patient_pseudonym(services, theirs.id)
    assert services.break_glass.active(account, pseudonym, services.now_us()) is None
    assert services.break_glass.patients(account, services.now_us()) == []


def test_a_registration_without_its_time_places_no_one(group: Group, services: Services) -> None:
    """A registration row with ``registered_us`` NULL (its NOT NULL dropped first, as a
    table's owner may) passed for the patient's home clinic, which has no time."""
    if services.engine.dialect.name != "postgresql":
        pytest.skip("dropping a NOT NULL is one statement on PostgreSQL")
    path = f"/fhir/Patient/{group.tw_patient.id}"
    assert group.call(group.desk_tm, "GET", path).status_code == 403
    with services.engine.begin() as connection:
        connection.execute(
            text("ALTER TABLE patient_registration ALTER COLUMN registered_us DROP NOT NULL")
        )
        connection.execute(
            insert(patient_registration).values(
                patient_pseudonym=patient_pseudonym(services, group.tw_patient.id),
                clinic_id=TM,
                registered_us=None,
                registered_by="insider",
                proof="hkid",
            )
        )
    time.sleep(1.6)  # the registrations' cache
    assert group.call(group.desk_tm, "GET", path).status_code == 403
