"""A person's one notice (one HKID, one notice) is not the attacker's to direct: a
compromised account that registers a second Patient record under a victim's HKID, with
its own email or marked deceased, neither takes the victim's notice nor stops it (the
record updated last chose the contact, and a record the attacker created counted as an
update by someone else: review of one notice per person)."""

from __future__ import annotations

import pytest

from carevault.domain.hkid import check_digit
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.notify.reporting import assessment_of
from carevault.notify.scope import TIERS, parse_scope
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

SAME = f"K246813({check_digit('K', '246813')})"
VICTIM = Person("victim", "Yip", "Wing", "en", email="yip.real@example.com", hkid=SAME)


@pytest.mark.parametrize("deceased", [False, True], ids=["redirected", "suppressed"])
def test_an_attackers_duplicate_record_does_not_take_the_victims_notice(
    clinic: Clinic, deceased: bool
) -> None:
    services = clinic.services
    ids = write_people(services, [VICTIM])
    attack(services, [VICTIM], ids)
    # The compromised account registers the same HKID again, with its own address.
    fake = Person("fake", "Yip", "Wing", "en", email="mallory@evil.example", hkid=SAME,
                  deceased=deceased)  # fmt: skip
    fake_id = "pfake0000001"
    services.gate.write(
        ATTACKER, [Put(RESOURCE_TYPES["Patient"], fake_id, patient_resource(fake, fake_id))]
    )
    services.gate.read(ATTACKER, RESOURCE_TYPES["Patient"], fake_id)

    _, document = declared_from_abroad(services)
    scope = parse_scope(document)
    send_job(services).run(scope, ("confirmed", "decrypted"))

    sent_to = {address for to, _ in clinic.sink.messages for address in to}
    # Before: redirected, the notice of the victim's exposure (with a genuine code) went
    # to mallory@evil.example; suppressed, the row was 'deceased' and nothing went.
    assert "yip.real@example.com" in sent_to, sent_to
    assert "mallory@evil.example" not in sent_to, sent_to


def test_an_attackers_duplicate_record_neither_makes_the_victim_a_minor_nor_moves_them(
    clinic: Clinic,
) -> None:
    """The regulators' figures take a person's age and region from the record their
    notice goes out from: before, the first record read of the person counted (a minor
    if any of theirs said so), so a duplicate the attacker registered with a child's
    birth date and another state changed the reports' minors and HIPAA's regions."""
    services = clinic.services
    ids = write_people(services, [VICTIM])
    attack(services, [VICTIM], ids)
    before, _ = assessment_of(services, parse_scope(declared_from_abroad(services)[1]))
    fake = Person("fake", "Yip", "Wing", "en", email="mallory@evil.example", hkid=SAME,
                  birth="2019-02-03")  # fmt: skip
    fake_id = "pfake0000002"
    resource = patient_resource(fake, fake_id)
    resource["address"][0]["state"] = "CA"
    services.gate.write(ATTACKER, [Put(RESOURCE_TYPES["Patient"], fake_id, resource)])
    services.gate.read(ATTACKER, RESOURCE_TYPES["Patient"], fake_id)

    scope = parse_scope(declared_from_abroad(services)[1])
    who = {e.patient_id: e.who for e in scope.exposures(TIERS)}
    assert who[ids["victim"]] == who[fake_id]  # one HKID, one person
    after, regions = assessment_of(services, scope)

    assert after.people == before.people
    assert after.minors == before.minors
    assert regions["CA"] == 0, regions
