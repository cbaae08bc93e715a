"""An incident naming a client app, a clinic or a session CareVault never had (a typo) is
refused before anything is written: its scope would be empty, and read as "no patient
affected". Names are taken however they may be spelt (client ids are lower case, clinic
ids as the group spells them); a session ended or expired is still one ever issued."""

from __future__ import annotations

from typing import Any

import pytest

from carevault.bootstrap import Services
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.incidents import (
    Actor,
    UnknownAccount,
    UnknownClient,
    UnknownClinic,
    UnknownName,
    UnknownSession,
    declare_case,
    incidents_for,
    scope_document,
)
from carevault.incidents.model import Amendment, Compromised
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.sim.loader import SEED_CALLER
from carevault.vault.writer import Put

pytestmark = pytest.mark.postgres

JAN_1 = 1_767_225_600_000_000
OFFICER = Actor("staff:officer1", "10.1.2.3")
WINDOW = {"since": "2026-01-01", "until": "2026-01-02T00:00:00+00:00"}


def _lab(services: Services) -> None:
    services.clients.add(
        "lab-interface", "Lab", confidential=True, scopes="system/*.rs", clinic_ids=["clinic-tm"]
    )


def _session(services: Services, *, ended: bool = False) -> str:
    pair = services.sessions.open(
        subject="someone", account_id=None, client_id="lab-interface", scope="system/*.rs",
        with_refresh=False, source_address="203.0.113.9", user_agent="tests",
    )  # fmt: skip
    if ended:
        services.sessions.revoke(pair.session_id, "ended")
    return pair.session_id


def _declare(services: Services, **named: Any) -> int:
    return declare_case(services, OFFICER, {"title": "t", **named, **WINDOW}).incident_id


@pytest.mark.parametrize(
    ("named", "refusal", "said"),
    [
        ({"clients": ["lab-interfce"]}, UnknownClient, "no client app 'lab-interfce'"),
        ({"clinics": ["clinic-tn"]}, UnknownClinic, "no clinic of the group 'clinic-tn'"),
        ({"sessions": ["sNoSuchSession"]}, UnknownSession, "no session 'sNoSuchSession'"),
        ({"accounts": ["client:lab-interfce"]}, UnknownAccount, "'client:lab-interfce'"),
    ],
)
def test_a_name_no_one_has_is_refused_and_nothing_is_declared(
    services: Services, named: dict[str, list[str]], refusal: type[UnknownName], said: str
) -> None:
    _lab(services)
    with pytest.raises(refusal, match=said.replace("(", r"\(")):
        _declare(services, **named)
    assert incidents_for(services).all() == []


def test_every_unknown_name_is_said_at_once_and_only_as_typed(services: Services) -> None:
    _lab(services)
    with pytest.raises(UnknownName) as refused:
        _declare(services, clients=["lab-interfce"], clinics=["clinic\u202etn"],
                 sessions=["sX"], accounts=["nobody"])  # fmt: skip
    message = str(refused.value)
    assert type(refused.value) is UnknownName
    for part in ("'lab-interfce'", "'clinic\\u202etn'", "'sX'", "'nobody'"):
        assert part in message
    assert "\u202e" not in message


def test_names_are_taken_as_the_group_spells_them(services: Services) -> None:
    """A client id typed in capitals is the registered (lower-case) one; a clinic typed in
    another case is the group's clinic; a session ended (or an app revoked) was still
    issued, and is what the ledger names."""
    _lab(services)
    ended = _session(services, ended=True)
    services.clients.revoke("lab-interface")
    incident = _declare(services, clients=["Lab-Interface"], clinics=["CLINIC-TM"],
                        sessions=[ended])  # fmt: skip
    found = incidents_for(services).get(incident).compromised
    assert found.clients == ("lab-interface",)
    assert found.clinics == ("clinic-tm",)
    assert found.sessions == (ended,)


def test_a_clinic_known_only_by_its_patients_and_the_consoles_own_client_are_known(
    services: Services,
) -> None:
    """A clinic whose staff have all moved on still holds its patients' records; the
    console's sessions are opened for its own client, which no one registers."""
    patient = {"resourceType": "Patient", "id": "p-old", "name": [{"family": "Ho"}],
               "managingOrganization": {"reference": "Organization/clinic-closed"}}  # fmt: skip
    services.gate.write(SEED_CALLER, [Put(RESOURCE_TYPES["Patient"], "p-old", patient)])
    placed = services.gate.vault.locate("Patient", "p-old").head.clinic_id
    assert placed == "clinic-closed"
    incident = _declare(services, clinics=["Clinic-Closed"], clients=["carevault-console"])
    found = incidents_for(services).get(incident).compromised
    assert found.clinics == ("clinic-closed",) and found.clients == ("carevault-console",)


def test_an_amendment_adding_a_name_no_one_has_changes_nothing(services: Services) -> None:
    _lab(services)
    incidents = incidents_for(services)
    incident = _declare(services, clients=["lab-interface"])
    before = incidents.get(incident)
    for adds, refusal in (
        (Compromised(clients=("lab-interfce",)), UnknownClient),
        (Compromised(clinics=("clinic-tn",)), UnknownClinic),
        (Compromised(sessions=("sNope",)), UnknownSession),
    ):
        with pytest.raises(refusal):
            incidents.amend(OFFICER, incident, Amendment(adds=adds))
        assert incidents.get(incident) == before
    widened = incidents.amend(
        OFFICER, incident, Amendment(adds=Compromised(clinics=("Clinic-TM",)))
    )
    assert widened.compromised.clinics == ("clinic-tm",)


def test_a_client_typed_in_capitals_matches_its_reads(services: Services) -> None:
    _lab(services)
    services.audit.record(
        [
            AuditEvent(
                tag=Tag.FHIR_READ, outcome=Outcome.SUCCESS, at_us=JAN_1 + 60_000_000,
                principal="client:lab-interface", client_id="lab-interface",
                source_address="198.51.100.7", resource_type="Patient", resource_id="p0",
                patient_pseudonym="ps0", categories=("identity",),
            )
        ]
    )  # fmt: skip
    for named in ({"clients": ["Lab-Interface"]}, {"accounts": ["client:LAB-interface"]}):
        document = scope_document(services, _declare(services, **named))
        assert [line["patient"] for line in document["tiers"]["confirmed"]] == ["ps0"], named
