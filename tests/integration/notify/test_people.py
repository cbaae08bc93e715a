"""One notice per person, as the scope and the regulators' reports count people: a person
registered twice (two Patient records of one HKID) gets one message, covering both
records' data, at the contact of the record updated last; two people get two, however
alike their records look. Through a real SMTP server, from the incident module's scope."""

from __future__ import annotations

import re

import pytest

from carevault.domain.hkid import check_digit
from carevault.fhir import jsonio
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.incidents import scope_document
from carevault.ledger.events import Tag
from carevault.notify import store as states
from carevault.notify.job import notice_key
from carevault.notify.scope import parse_scope
from carevault.notify.service import send_job, verifier_of
from carevault.notify.store import NoticeStore
from carevault.sim.loader import SEED_CALLER
from carevault.vault.writer import Put
from tests.integration.notify.conftest import Clinic
from tests.support.ledgers import audit_events
from tests.support.notify import Person, attack, declared_from_abroad, write_people

pytestmark = pytest.mark.postgres
CODE = re.compile(r"\b[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}\b")


def _hkid(prefix: str, digits: str) -> str:
    return f"{prefix}{digits}({check_digit(prefix, digits)})"


SAME = _hkid("K", "246813")
#: One person registered at two clinics: the second record has their condition on it.
TWICE = [
    Person("yip_first", "Yip", "Wing", "en", email="yip.first@example.com", hkid=SAME),
    Person("yip_second", "Yip", "Wing", "en", email="yip.second@example.com",
           hkid=SAME.replace("(", " ("), clinical=True),
]  # fmt: skip
#: Two people with the same name and birth date: different HKIDs, two people.
ALIKE = [
    Person("ho_one", "Ho", "Man", "en", email="ho.one@example.com", hkid=_hkid("M", "135791")),
    Person("ho_two", "Ho", "Man", "en", email="ho.two@example.com", hkid=_hkid("M", "864202")),
]


def _text(message: object) -> str:
    return str(message.get_body(preferencelist=("plain",)).get_content())  # type: ignore[attr-defined]


def _scope(clinic: Clinic) -> tuple[str, dict[str, object]]:
    incident, document = declared_from_abroad(clinic.services)
    return str(incident), document


def test_one_person_with_two_records_gets_one_notice_and_two_people_two(
    clinic: Clinic,
) -> None:
    services = clinic.services
    ids = write_people(services, [*TWICE, *ALIKE])
    attack(services, [*TWICE, *ALIKE], ids)
    # The first record is updated last (a new email at the desk): its contact is the
    # person's as they last gave it, whichever record has the smaller id.
    patient = RESOURCE_TYPES["Patient"]
    first = jsonio.load(services.gate.read(SEED_CALLER, patient, ids["yip_first"]).body or b"")
    first["telecom"] = [{"system": "email", "value": "yip.now@example.com"}]
    services.gate.write(SEED_CALLER, [Put(patient, ids["yip_first"], first)])
    twins = sorted(ids[p.key] for p in TWICE)

    incident, document = _scope(clinic)
    scope = parse_scope(document)
    persons = {e.patient_id: e.who for e in scope.exposures()}
    assert persons[ids["yip_first"]] == persons[ids["yip_second"]] == twins[0]
    assert persons[ids["ho_one"]] != persons[ids["ho_two"]]
    progress = send_job(services).run(scope, ("confirmed", "decrypted"))

    received: dict[str, list[object]] = {}
    for to, message, _ in clinic.sink.parsed():
        for address in to:
            received.setdefault(address, []).append(message)
    assert all(len(messages) == 1 for messages in received.values()), received.keys()
    mine = {"yip.now@example.com", "yip.first@example.com", "yip.second@example.com",
            "ho.one@example.com", "ho.two@example.com"}  # fmt: skip
    assert set(received) & mine == {"yip.now@example.com", "ho.one@example.com",
                                    "ho.two@example.com"}  # fmt: skip
    # One notice covering both records: the condition read on the second is named.
    (notice,) = received["yip.now@example.com"]
    assert "medical records" in _text(notice)
    assert "medical records" not in _text(received["ho.one@example.com"][0])
    # Nine people of the clinic's own, less the deceased, and these three.
    assert progress.sent == 8 + 3 and progress.total == 9 + 3

    rows = NoticeStore(services.engine).rows(incident)
    row = rows[notice_key(incident, ",".join(twins))]
    assert row.state == states.SENT and row.patient_id == twins[0]
    assert not {notice_key(incident, twin) for twin in twins} & set(rows)
    assert {r.patient_id for r in rows.values()} >= {ids["ho_one"], ids["ho_two"]}
    # Its ledger entry names both records (by pseudonym); its code verifies, as any does.
    pseudonyms = {
        services.gate.vault.locate("Patient", patient_id).head.patient_pseudonym
        for patient_id in twins
    }
    (sent,) = [
        event
        for event in audit_events(services)
        if event.tag == Tag.NOTIFY_NOTICE_SENT and event.detail["notice"] == row.notice_key
    ]
    assert set(sent.detail["covers"]) == pseudonyms and sent.patient_pseudonym in pseudonyms
    code = CODE.findall(_text(notice))[0]
    assert verifier_of(services).check(code, "198.51.100.20", "tests").genuine

    # Run again: nothing is sent twice.
    count = len(clinic.sink.messages)
    again = parse_scope(scope_document(services, int(incident)))
    send_job(services).run(again, ("confirmed", "decrypted"))
    assert len(clinic.sink.messages) == count


def test_a_persons_record_found_later_is_told_in_a_notice_covering_all_of_theirs(
    clinic: Clinic,
) -> None:
    """A third record of the person (read by the attacker after the notices went) is
    told, however its id sorts: a new notice covering the three; never left out because
    the person already had one."""
    services = clinic.services
    ids = write_people(services, TWICE)
    attack(services, TWICE, ids)
    incident, document = _scope(clinic)
    send_job(services).run(parse_scope(document), ("confirmed", "decrypted"))
    twins = {"yip.first@example.com", "yip.second@example.com"}
    assert len([to for to, _ in clinic.sink.messages if twins & set(to)]) == 1
    third = Person("yip_third", "Yip", "Wing", "en", email="yip.third@example.com", hkid=SAME,
                   clinical=True)  # fmt: skip
    ids.update(write_people(services, [third]))
    attack(services, [third], ids)
    count = len(clinic.sink.messages)
    again = parse_scope(scope_document(services, int(incident)))
    send_job(services).run(again, ("confirmed", "decrypted"))
    assert len(clinic.sink.messages) == count + 1
    assert clinic.sink.messages[-1][0] == ["yip.third@example.com"]  # the newest record's
    covering = {p for e in again.notices() if len(e.covers) == 3 for p in e.covers}
    assert covering == {ids["yip_first"], ids["yip_second"], ids["yip_third"]}
