"""Adversary round 66, races and several server processes: Tuen Mun's front desk and
doctor (ordinary logins of one clinic) send their requests to whichever server process
takes them, while a privacy officer acts through another. Each process of ``carevault
serve --workers N`` is a ``Services`` of its own over one database, as here: the second
is built on the same home (its own caches, its own pools), as a worker process is.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any, TypeVar, cast

import jwt
import pytest

from carevault.access.breakglass import MAX_GRANTS_PER_HOUR, TooManyGrants
from carevault.bootstrap import Services, build_services
from carevault.config import Settings
from carevault.containment.service import Officer
from carevault.containment.state import Mode
from carevault.domain.hkid import check_digit
from carevault.domain.roles import Role
from carevault.web.app import create_app
from tests.integration.access.group import HKID_SYSTEM, TM, TW, Group, build_group
from tests.support.client import FhirTestClient
from tests.support.staff import make_staff

T = TypeVar("T")

pytestmark = pytest.mark.postgres

#: How long a test waits for another process to see what changed: far past any bound a
#: process keeps a fact for (a second at most), far short of the hour a data key may
#: be kept in the tests that keep it that long.
PATIENCE_SECONDS = 30.0


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


@pytest.fixture
def other_process(settings: Settings) -> Iterator[FhirTestClient]:
    """A second server process over the same database: its own caches and pools."""
    other = build_services(settings)
    try:
        with FhirTestClient(create_app(settings, other)) as web:
            yield web
    finally:
        other.close()


def _status_until(web: FhirTestClient, headers: dict[str, str], path: str, wanted: int) -> int:
    """``GET path`` on ``web`` until it answers ``wanted`` or patience runs out: the last
    status."""
    deadline = time.monotonic() + PATIENCE_SECONDS
    while True:
        status = web.get(path, headers=headers).status_code
        if status == wanted or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


@pytest.mark.settings(dek_cache_seconds=3600)
def test_an_erased_patient_is_not_read_through_another_process(
    group: Group, other_process: FhirTestClient
) -> None:
    """The doctor reads his patient's chart through one worker (which keeps the data key
    it unwrapped); the officer erases the patient through another (crypto-shredding: the
    data key is destroyed); the doctor reads the chart again on the first worker."""
    chart = f"/fhir/Observation/{group.tm_patient.observation}"
    doctor = group.doctor_tm.headers
    assert other_process.get(chart, headers=doctor).status_code == 200
    pseudonym = group.services.vault.patient_pseudonyms([group.tm_patient.id])
    keys = group.services.keys
    assert keys is not None
    group.services.contain.erase_patient(
        Officer(group.officer.account.username, group.officer.totp()),
        pseudonym[group.tm_patient.id],
        "erasure request 66",
        keys,
    )
    assert group.call(group.doctor_tm, "GET", chart).status_code == 410

    assert _status_until(other_process, doctor, chart, 410) == 410


def test_guard_a_patient_not_erased_is_still_read_through_every_process(
    group: Group, other_process: FhirTestClient
) -> None:
    """Another patient's erasure (their key shredded) leaves the doctor's own patient
    readable through both processes, before and after the look for shredded keys."""
    chart = f"/fhir/Observation/{group.tm_patient.observation}"
    doctor = group.doctor_tm.headers
    assert other_process.get(chart, headers=doctor).status_code == 200
    keys = group.services.keys
    assert keys is not None
    tw = group.services.vault.patient_pseudonyms([group.tw_patient.id])[group.tw_patient.id]
    group.services.contain.erase_patient(
        Officer(group.officer.account.username, group.officer.totp()), tw, "request 66", keys
    )
    tw_chart = f"/fhir/Observation/{group.tw_patient.observation}"
    assert _status_until(other_process, group.doctor_tw.headers, tw_chart, 410) == 410
    assert other_process.get(chart, headers=doctor).status_code == 200
    assert group.call(group.doctor_tm, "GET", chart).status_code == 200


def _session(staff_token: str) -> str:
    claims = jwt.decode(staff_token, options={"verify_signature": False})
    return str(claims["sid"])


def _officer(group: Group) -> Officer:
    return Officer(group.officer.account.username, group.officer.totp())


#: What an officer (or a detector's response) does in one process, and what the
#: desk's read of its patient gets in the other afterwards.
CUTS: dict[str, tuple[Callable[[Group], None], int]] = {
    "account suspended": (
        lambda group: group.services.contain.start(
            _officer(group), Mode.ACCOUNT_SUSPENDED, group.desk_tm.account.username, "stolen"
        ),
        401,
    ),
    "session revoked": (
        lambda group: group.services.sessions.revoke(_session(group.desk_tm.token), "stolen"),
        401,
    ),
    "step-up required": (
        lambda group: group.services.sessions.require_step_up(
            account_id=group.desk_tm.account.account_id, reason="detector"
        ),
        401,
    ),
    "clinic locked": (
        lambda group: group.services.contain.start(_officer(group), Mode.CLINIC_LOCK, TM, "x"),
        503,
    ),
    "patient data offline": (
        lambda group: group.services.contain.start(_officer(group), Mode.PHI_OFFLINE, None, "x"),
        503,
    ),
}


@pytest.mark.parametrize("cut", sorted(CUTS))
def test_guard_what_stops_a_login_in_one_process_stops_it_in_the_other(
    group: Group, other_process: FhirTestClient, cut: str
) -> None:
    """The desk reads its patient through the second process, over and over, while the
    officer acts through the first: the second stops answering with the patient once it
    reads the change (held: sessions are read again every quarter second, containment
    every half), and answers with no patient after that."""
    patient = f"/fhir/Patient/{group.tm_patient.id}"
    desk = group.desk_tm.headers
    assert other_process.get(patient, headers=desk).status_code == 200
    act, refused = CUTS[cut]
    act(group)
    status = other_process.get(patient, headers=desk).status_code
    deadline = time.monotonic() + PATIENCE_SECONDS
    while status == 200 and time.monotonic() < deadline:
        status = other_process.get(patient, headers=desk).status_code
    assert status == refused, cut
    # Once refused, never answered again.
    for _ in range(20):
        assert other_process.get(patient, headers=desk).status_code == refused


def test_guard_a_lifted_lock_opens_the_other_process_again(
    group: Group, other_process: FhirTestClient
) -> None:
    patient = f"/fhir/Patient/{group.tm_patient.id}"
    desk = group.desk_tm.headers
    lock = group.services.contain.start(_officer(group), Mode.CLINIC_LOCK, TM, "drill")
    assert _status_until(other_process, desk, patient, 503) == 503
    group.services.contain.release(_officer(group), lock.containment_id, "drill over")
    assert _status_until(other_process, desk, patient, 200) == 200


@pytest.mark.settings(release_budget="physician=3/100")
def test_guard_a_budget_spread_over_processes_is_spent_once(
    group: Group, other_process: FhirTestClient, api: FhirTestClient
) -> None:
    """A stolen doctor's login reads patient after patient, its requests landing on
    either process in turn: the release budget (3 patients an hour here) is one count in
    the database, so the fourth patient is refused whichever process is asked."""
    patients = [group.tm_patient.id]
    for n in range(4):
        patients.append(
            str(
                api.post_json(
                    "/fhir/Patient",
                    {
                        "resourceType": "Patient",
                        "name": [{"family": f"Budget{n}"}],
                        "managingOrganization": {"reference": f"Organization/{TM}"},
                    },
                ).json()["id"]
            )
        )
    doctor = group.doctor_tm.headers
    webs = [group.web, other_process]
    statuses = [
        webs[n % 2].get(f"/fhir/Patient/{patient}", headers=doctor).status_code
        for n, patient in enumerate(patients)
    ]
    assert statuses == [200, 200, 200, 429, 429]


def _new_patient_of_tm(hkid: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": HKID_SYSTEM, "value": hkid}],
        "name": [{"family": "Race"}],
        "birthDate": "1990-01-01",
        "managingOrganization": {"reference": f"Organization/{TM}"},
    }


def _at_once(actions: Sequence[Callable[[], T]]) -> list[T]:
    """Each of ``actions`` in a thread of its own, all let go at one moment: what each
    gave, in their order (an exception in one is raised here)."""
    results: list[T | BaseException | None] = [None] * len(actions)
    start = threading.Barrier(len(actions))

    def run(n: int) -> None:
        start.wait()
        try:
            results[n] = actions[n]()
        except BaseException as error:  # noqa: BLE001 - raised again in the test's thread
            results[n] = error

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(actions))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return cast(list[T], results)


def _sent_at_once(
    webs: list[FhirTestClient],
    path: str,
    body: dict[str, Any],
    headers: dict[str, str],
    method: str = "post",
) -> list[Any]:
    """``body`` posted (or put) to ``path`` through each of ``webs`` at one moment."""
    content = json.dumps(body)
    return _at_once(
        [partial(getattr(web, method), path, content=content, headers=headers) for web in webs]
    )


def _raced(
    group: Group,
    other_process: FhirTestClient,
    api: FhirTestClient,
    hkid: str,
    path: str,
    body: dict[str, Any],
    method: str = "post",
) -> list[int]:
    """The desk's ``body`` sent to ``path`` four times at once through two server
    processes: the statuses, once the HKID is seen to be one patient's alone."""
    headers = {**group.desk_tm.headers, "content-type": "application/fhir+json"}
    webs = [group.web, other_process, group.web, other_process]
    answers = _sent_at_once(webs, path, body, headers, method)
    statuses = [answer.status_code for answer in answers]
    found = api.get(f"/fhir/Patient?identifier={HKID_SYSTEM}|{hkid}").json()
    assert found["total"] == 1, statuses
    for answer in answers:
        if answer.status_code == 409:
            assert "send the request again" in answer.text, answer.text
    return statuses


def test_a_conditional_create_sent_twice_at_once_creates_one_patient(
    group: Group, other_process: FhirTestClient, api: FhirTestClient
) -> None:
    """The desk's app, timing out, sends its new patient again through another worker:
    ``If-None-Exist`` on the HKID is meant to make the second a no-op (200, the first)."""
    hkid = f"K123456({check_digit('K', '123456')})"
    headers = {
        **group.desk_tm.headers,
        "content-type": "application/fhir+json",
        "if-none-exist": f"identifier={HKID_SYSTEM}|{hkid}",
    }
    webs = [group.web, other_process, group.web, other_process]
    answers = _sent_at_once(webs, "/fhir/Patient", _new_patient_of_tm(hkid), headers)
    statuses = [answer.status_code for answer in answers]
    found = api.get(f"/fhir/Patient?identifier={HKID_SYSTEM}|{hkid}").json()
    assert found["total"] == 1, statuses
    # One made it; the others are answered with it, none refused as a hidden match
    # (which the registration throttle and the detectors would have counted). A 429 is
    # the throttle's answer to more looks at once than its allowance (each is counted
    # while in flight, and given back when it found no hidden record): nothing written.
    assert statuses.count(201) == 1, statuses
    assert set(statuses) - {200, 201, 429} == set(), statuses


def test_a_transaction_with_a_conditional_create_sent_twice_at_once_creates_one_patient(
    group: Group, other_process: FhirTestClient, api: FhirTestClient
) -> None:
    """The same through transaction Bundles: a Bundle whose entry found no match, and
    whose match another Bundle wrote meanwhile, fails whole (409: sent again, it finds
    the record) rather than make a second patient."""
    hkid = f"K654321({check_digit('K', '654321')})"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": _new_patient_of_tm(hkid),
                "request": {
                    "method": "POST",
                    "url": "Patient",
                    "ifNoneExist": f"identifier={HKID_SYSTEM}|{hkid}",
                },
            }
        ],
    }
    headers = {**group.desk_tm.headers, "content-type": "application/fhir+json"}
    webs = [group.web, other_process, group.web, other_process]
    answers = _sent_at_once(webs, "/fhir", bundle, headers)
    statuses = [answer.status_code for answer in answers]
    found = api.get(f"/fhir/Patient?identifier={HKID_SYSTEM}|{hkid}").json()
    assert found["total"] == 1, statuses
    assert set(statuses) - {200, 409, 429} == set(), statuses
    created = [
        answer.json()["entry"][0]["response"]["status"]
        for answer in answers
        if answer.status_code == 200
    ]
    assert sum(status.startswith("201") for status in created) == 1, created
    for answer in answers:
        if answer.status_code == 409:
            assert "If-None-Exist" in answer.text, answer.text


def test_a_conditional_update_sent_at_once_creates_one_patient(
    group: Group, other_process: FhirTestClient, api: FhirTestClient
) -> None:
    """A feed's "update the patient with this HKID, or create them" (``PUT
    Patient?identifier=…``, docs/rest.md), sent again through another worker while the
    first is in flight: one patient, the others updating it. Each create under
    no match made a patient of its own (integrator round, stop 64: four to six records
    of one HKID, and the feed's next upsert answered 412 for good)."""
    hkid = f"K246813({check_digit('K', '246813')})"
    path = f"/fhir/Patient?identifier={HKID_SYSTEM}|{hkid}"
    statuses = _raced(group, other_process, api, hkid, path, _new_patient_of_tm(hkid), "put")
    assert statuses.count(201) == 1, statuses
    assert set(statuses) - {200, 201, 429} == set(), statuses
    headers = {**group.desk_tm.headers, "content-type": "application/fhir+json"}
    again = group.web.put(path, content=json.dumps(_new_patient_of_tm(hkid)), headers=headers)
    assert again.status_code == 200, again.text


def test_a_transaction_with_a_conditional_update_sent_at_once_creates_one_patient(
    group: Group, other_process: FhirTestClient, api: FhirTestClient
) -> None:
    """The same as a transaction's entry (``PUT Patient?identifier=…``): a Bundle whose
    entry found no match, and whose match another wrote meanwhile, fails whole (409:
    sent again, the Bundle updates the record)."""
    hkid = f"K135792({check_digit('K', '135792')})"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": _new_patient_of_tm(hkid),
                "request": {"method": "PUT", "url": f"Patient?identifier={HKID_SYSTEM}|{hkid}"},
            }
        ],
    }
    statuses = _raced(group, other_process, api, hkid, "/fhir", bundle)
    assert set(statuses) - {200, 409, 429} == set(), statuses


def test_guard_care_ended_in_one_process_ends_in_the_other(
    group: Group, other_process: FhirTestClient
) -> None:
    """Tsuen Wan's doctor reads their patient's chart through the second process, over
    and over; Tsuen Wan's desk deletes the patient's one visit (the care the doctor had)
    through the first: the second process refuses the chart once it reads the care again
    (held: half a second), and never answers with it after."""
    chart = f"/fhir/Observation/{group.tw_patient.observation}"
    doctor = group.doctor_tw.headers
    assert other_process.get(chart, headers=doctor).status_code == 200
    found = group.call(group.desk_tw, "GET", f"/fhir/Encounter?patient={group.tw_patient.id}")
    (visit,) = [entry["resource"]["id"] for entry in found.json()["entry"]]
    deleted = group.call(group.desk_tw, "DELETE", f"/fhir/Encounter/{visit}")
    assert deleted.status_code == 204, deleted.text
    assert _status_until(other_process, doctor, chart, 403) == 403
    for _ in range(20):
        assert other_process.get(chart, headers=doctor).status_code == 403


GLASS = {
    "resourceType": "Parameters",
    "parameter": [
        {"name": "reason", "valueCode": "emergency-treatment"},
        {"name": "text", "valueString": "collapsed in the waiting room"},
    ],
}
#: Break-the-glass requests the doctor sends at once, and how many at a time.
GLASS_SENT, GLASS_SENDERS = 3 * MAX_GRANTS_PER_HOUR, 12


def _glass_all_at_once(group: Group, webs: list[FhirTestClient]) -> list[int]:
    """``GLASS_SENT`` break-the-glass requests of Tuen Mun's doctor for Tsuen Wan's
    patient, ``GLASS_SENDERS`` at a time, spread over ``webs``: their statuses."""
    path = f"/fhir/Patient/{group.tw_patient.id}/$break-glass"
    headers = {**group.doctor_tm.headers, "content-type": "application/fhir+json"}

    def send(web: FhirTestClient) -> list[int]:
        return [
            web.post(path, content=json.dumps(GLASS), headers=headers).status_code
            for _ in range(GLASS_SENT // GLASS_SENDERS)
        ]

    sent = _at_once([partial(send, webs[n % len(webs)]) for n in range(GLASS_SENDERS)])
    return [status for statuses in sent for status in statuses]


def test_break_the_glass_sent_all_at_once_opens_no_more_than_the_hours_cap(
    group: Group, other_process: FhirTestClient
) -> None:
    """Tuen Mun's doctor breaks the glass sixty times at once, through both processes:
    each grant counted the hour's grants and then opened one, and on PostgreSQL (read
    committed) requests that counted together all saw room for one more."""
    statuses = _glass_all_at_once(group, [group.web, other_process])
    assert sorted(set(statuses)) == [200, 429], statuses
    assert statuses.count(200) == MAX_GRANTS_PER_HOUR, statuses


#: Rounds of the race below, each a doctor of their own with room for ``ROOM`` more
#: grants in the hour, and their requests sent together.
GLASS_ROUNDS, ROOM, TOGETHER = 15, 4, 12


def _grants_together(group: Group, practitioner: str) -> int:
    """A doctor (a new login naming ``practitioner``) with room for ``ROOM`` more grants
    in the hour asks for ``TOGETHER`` at one moment: how many were opened."""
    glass = group.services.access.break_glass
    tw = group.services.vault.patient_pseudonyms([group.tw_patient.id])[group.tw_patient.id]
    account = make_staff(group.services, Role.PHYSICIAN, [TM], practitioner).account

    def ask() -> None:
        glass.grant(
            account.account_id,
            tw,
            "emergency-treatment",
            "collapsed in the waiting room",
            practitioner_id=practitioner,
        )

    for _ in range(MAX_GRANTS_PER_HOUR - ROOM):
        ask()

    def one() -> bool:
        try:
            ask()
        except TooManyGrants:
            return False
        return True

    return _at_once([one] * TOGETHER).count(True)


def test_grants_asked_for_together_never_pass_the_hours_cap(group: Group) -> None:
    """The same race, each request's grant asked for at one moment (what sixty requests at
    once through several workers come to at the hour's twentieth): a doctor with room for
    four more grants asks for twelve together. Each grant counted the hour's grants and
    then opened one; on PostgreSQL (read committed) grants counted together each saw
    room, and a doctor got five to seven in a round (up to 23 in the hour) before the
    fix. Now one person's grants are counted one at a time."""
    opened = [_grants_together(group, f"dr-race-{n}") for n in range(GLASS_ROUNDS)]
    assert opened == [ROOM] * GLASS_ROUNDS


#: Rounds of the race below: a new person each round, written at both clinics at once.
TWIN_ROUNDS = 12


def _hkid(n: int) -> str:
    digits = f"{654321 + n:06d}"
    return f"M{digits}({check_digit('M', digits)})"


def test_one_person_written_at_two_clinics_at_once_is_refused_at_one(
    group: Group, other_process: FhirTestClient, api: FhirTestClient
) -> None:
    """Tuen Mun's desk writes a patient with an HKID through one process while Tsuen Wan's
    desk writes the same person (the same HKID) through the other, at once. One after
    the other, the second is refused (409: another clinic's patient holds the HKID;
    register them with ``$register``); at once, each write looked for a holder before
    the other had committed."""
    outcomes: list[list[int]] = []
    for n in range(TWIN_ROUNDS):
        hkid = _hkid(n)

        def write(web: FhirTestClient, desk: dict[str, str], clinic: str, hkid: str) -> int:
            body = {
                "resourceType": "Patient",
                "identifier": [{"system": HKID_SYSTEM, "value": hkid}],
                "name": [{"family": "Twin"}],
                "birthDate": "1988-08-08",
                "managingOrganization": {"reference": f"Organization/{clinic}"},
            }
            headers = {**desk, "content-type": "application/fhir+json"}
            answer = web.post("/fhir/Patient", content=json.dumps(body), headers=headers)
            return int(answer.status_code)

        # New desks each round: the refusals count against the registration throttle.
        desk_tm = make_staff(group.services, Role.FRONT_DESK, [TM]).headers
        desk_tw = make_staff(group.services, Role.FRONT_DESK, [TW]).headers
        statuses = _at_once(
            [
                partial(write, group.web, desk_tm, TM, hkid),
                partial(write, other_process, desk_tw, TW, hkid),
            ]
        )
        outcomes.append(sorted(statuses))
    assert outcomes == [[201, 409]] * TWIN_ROUNDS
