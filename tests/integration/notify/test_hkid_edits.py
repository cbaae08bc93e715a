"""A compromised account that edits a victim's HKID does not choose whose notice the
victim's exposure is told in (adversary round 49): grouped by the HKID a record holds
now, a victim given another patient's number became that patient's "record", and the
one notice of the two went to one of them, naming both people's exposure."""

from __future__ import annotations

import json

from carevault.domain.hkid import check_digit
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.notify.scope import parse_scope
from carevault.notify.service import send_job
from carevault.vault.writer import Put
from tests.integration.notify.conftest import Clinic
from tests.support.notify import (
    ATTACKER,
    Person,
    attack,
    declared_from_abroad,
    patient_resource,
    write_people,
)

FIRST = f"K135790({check_digit('K', '135790')})"
SECOND = f"K246800({check_digit('K', '246800')})"
VICTIM = Person("victim", "Yip", "Wing", "en", email="yip.real@example.com", hkid=FIRST)
OTHER = Person("other", "Lam", "Ka", "en", email="lam.real@example.com", hkid=SECOND)


def test_a_victims_hkid_set_to_another_patients_does_not_merge_their_notices(
    clinic: Clinic,
) -> None:
    services = clinic.services
    ids = write_people(services, [OTHER, VICTIM])
    attack(services, [VICTIM, OTHER], ids)
    # The compromised account gives the victim the other patient's HKID (both are
    # patients it may read, so no twin refusal), then reads the victim again.
    edited = patient_resource(VICTIM, ids["victim"])
    edited["identifier"] = [{"system": "http://carevault.hk/sid/hkid", "value": SECOND}]
    services.gate.write(ATTACKER, [Put(RESOURCE_TYPES["Patient"], ids["victim"], edited)])
    services.gate.read(ATTACKER, RESOURCE_TYPES["Patient"], ids["victim"])

    incident, document = declared_from_abroad(services)
    persons = {line["patient"]: line["person"] for line in document["tiers"]["confirmed"]}
    # Before: one person (the two records grouped under the HKID the attacker wrote).
    assert persons[ids["victim"]] != persons[ids["other"]], json.dumps(persons)
    scope = parse_scope(document)
    send_job(services).run(scope, ("confirmed", "decrypted"))
    sent_to = {address for to, _ in clinic.sink.messages for address in to}
    assert {"yip.real@example.com", "lam.real@example.com"} <= sent_to, sent_to


def test_a_victims_hkid_changed_to_a_new_number_keeps_them_one_person(clinic: Clinic) -> None:
    services = clinic.services
    twin = Person("twin", "Yip", "Wing", "en", email="yip.old@example.com", hkid=FIRST)
    ids = write_people(services, [VICTIM, twin])
    attack(services, [VICTIM, twin], ids)
    edited = patient_resource(VICTIM, ids["victim"])
    edited["identifier"] = [{"system": "http://carevault.hk/sid/hkid", "value": SECOND}]
    services.gate.write(ATTACKER, [Put(RESOURCE_TYPES["Patient"], ids["victim"], edited)])

    incident, document = declared_from_abroad(services)
    persons = {line["patient"]: line["person"] for line in document["tiers"]["confirmed"]}
    assert persons[ids["victim"]] == persons[ids["twin"]], json.dumps(persons)
