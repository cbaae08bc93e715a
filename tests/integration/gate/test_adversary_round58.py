"""Adversary round 58, what a claim bills for: billing (which may not read sensitive
records) reads a Tuen Mun claim whose line bills an HIV medicine by its WHO ATC code
(tenofovir disoproxil and emtricitabine, ``J05AR03``), or methadone for opioid
dependence (``N07BC02``): the sensitive lists held diagnoses and tests, no medicine, so
the line told billing what the claim's diagnoses, cut from it, would (SQLite and
PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from tests.integration.access.group import (
    FEE_LINE,
    TM,
    Group,
    build_group,
    created,
    self_paid_claim,
)
from tests.support.client import FhirTestClient
from tests.support.staff import make_staff

pytestmark = pytest.mark.postgres

ATC = "http://www.whocc.no/atc"


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _line(system: str | None, code: str) -> dict[str, Any]:
    coding = {"code": code} if system is None else {"system": system, "code": code}
    return {"sequence": 2, "productOrService": {"coding": [coding]}, "net": {"value": 900}}


@pytest.mark.parametrize(
    ("system", "code"),
    [
        (ATC, "J05AR03"),
        ("urn:oid:2.16.840.1.113883.6.73", "J05AR03"),
        (ATC, "N07BC02"),
        (None, "j05ar03"),
    ],
)
def test_billing_does_not_read_a_claim_line_billing_an_hiv_or_methadone_medicine(
    group: Group, api: FhirTestClient, system: str | None, code: str
) -> None:
    """The claim sent by the clinic's billing system (as an HIV test's line is, round
    47); billing reads it, and may not send the line itself (as for the test's)."""
    billing = make_staff(group.services, Role.BILLING, [TM])
    claim = self_paid_claim(group.tm_patient.id, item=[FEE_LINE, _line(system, code)])
    made = created(api, claim)
    shown = group.call(billing, "GET", f"/fhir/Claim/{made}")
    assert shown.status_code == 200, shown.text
    assert [line["sequence"] for line in shown.json()["item"]] == [1]
    assert code.upper() not in shown.text.upper()
    assert "SUBSETTED" in shown.text
    sent = group.call(billing, "POST", "/fhir/Claim", claim)
    assert sent.status_code == 403, sent.text


def test_billing_reads_a_line_billing_an_ordinary_medicine(group: Group) -> None:
    """Held: amoxicillin (``J01CA04``) is no one's secret."""
    billing = make_staff(group.services, Role.BILLING, [TM])
    claim = self_paid_claim(group.tm_patient.id, item=[FEE_LINE, _line(ATC, "J01CA04")])
    made = group.call(billing, "POST", "/fhir/Claim", claim)
    assert made.status_code == 201, made.text
    shown = group.call(billing, "GET", f"/fhir/Claim/{made.json()['id']}")
    assert [line["sequence"] for line in shown.json()["item"]] == [1, 2]
