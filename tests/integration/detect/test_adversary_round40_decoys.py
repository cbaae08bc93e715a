"""Adversary round 40: a decoy contact detail searched for in a spelling the search reads
as the decoy and the decoy watch did not (SQLite and PostgreSQL).

A phone search keeps only the digits of its value (``normalise.phone``) and every search
value drops a backslash before any character (``fhir/query.py: split_values``). The decoy
watch (``detect/decoys.py: contact_terms``) read the raw value: ``x95020794`` was a run of
digits touching a letter (not a number), ``9502\\0794`` two short runs, and
``kai.wong\\@mail.example.org`` no address. Each of them finds the decoy patient, so a
searcher holding taken data (here a front desk of another clinic, who gets no match and
so opens no honeytoken) raised no ``decoy-contact`` alert. The gate now also shows the
watch the values the search runs on (``gate/core.py: _searched_contacts``).
"""

from __future__ import annotations

from carevault.detect import alerts_as_dicts
from carevault.detect.desk import OfficerCode
from carevault.domain.roles import Role
from tests.integration.detect.conftest import Clinic
from tests.support.staff import make_staff


def _officer(clinic: Clinic) -> OfficerCode:
    return OfficerCode(clinic.officer.account.username, clinic.officer.totp())


def _planted(clinic: Clinic) -> tuple[str, str]:
    """A decoy patient holding a decoy phone number and email address: the two values."""
    detection = clinic.services.detection
    assert detection is not None
    decoy = clinic.patients[7]
    detection.desk.flag(_officer(clinic), "decoy", decoy)
    phone = detection.desk.decoy_contact(_officer(clinic), "phone")
    email = detection.desk.decoy_contact(
        _officer(clinic), "email", value="kai.wong@mail.example.org"
    )
    current = {
        "resourceType": "Patient",
        "id": decoy,
        "name": [{"family": "Chan7", "given": ["Tai Man"]}],
        "telecom": [{"system": "email", "value": email}, {"system": "phone", "value": phone}],
        "managingOrganization": {"reference": "Organization/clinic-a"},
    }
    written = clinic.web.put_json(f"/fhir/Patient/{decoy}", current, **clinic.desk.headers)
    assert written.status_code == 200, written.text
    return phone, email


def test_a_decoy_is_spotted_in_every_spelling_the_search_reads_as_it(clinic: Clinic) -> None:
    phone, email = _planted(clinic)
    spellings = [
        ("phone", f"x{phone}"),
        ("phone", f"tel{phone}"),
        ("phone", f"{phone[:4]}\\{phone[4:]}"),
        ("email", email.replace("@", "\\@")),
        ("email", email.replace(".", "\\.", 1)),
    ]
    missed = []
    for param, value in spellings:
        # The searcher's own clinic holds the decoy: the search finds it, as the index
        # reads the value (the decoy is this spelling's match).
        finder = make_staff(clinic.services, Role.FRONT_DESK, ["clinic-a"])
        found = clinic.web.get("/fhir/Patient", params={param: value}, headers=finder.headers)
        assert found.status_code == 200 and found.json()["total"] == 1, (value, found.text)
        # A front desk of another clinic, searching with data taken elsewhere.
        searcher = make_staff(clinic.services, Role.FRONT_DESK, ["clinic-b"])
        response = clinic.web.get("/fhir/Patient", params={param: value}, headers=searcher.headers)
        assert response.status_code == 200, response.text
        assert response.json()["total"] == 0
        raised = [
            a["detector"]
            for a in alerts_as_dicts(clinic.services)
            if a["account"] == searcher.account.username
        ]
        if raised != ["decoy-contact"]:
            missed.append((value, raised))
    assert missed == []
