"""An integration (SMART backend service) driving the API through fhirpy, a client we did
not write: client credentials, creates, paging through many pages, conditional create the
way fhirpy sends it, and OperationOutcomes a client can act on when it is refused."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import ForbiddenError, OperationOutcome

from carevault.config import Settings
from tests.support.auth import colleagues
from tests.support.server import RunningServer, environment, run_cli

# What a client (or a browser) sees of the HTTP API: run on PostgreSQL, as production is; the
# storage under it is tested on both backends by the integration tests.
pytestmark = [pytest.mark.e2e, pytest.mark.only_backend("postgres")]

HKID_SYSTEM = "http://carevault.hk/sid/hkid"
#: Valid HKID numbers (check digits right), one per patient made here.
HKIDS = ["A123456(3)", "C668668(9)", "K654321(9)", "G123456(A)"]


def backend_service(server: RunningServer, settings: Settings, clinic: str) -> SyncFHIRClient:
    """A confidential app of one clinic granted system/*.cruds, signed in with its secret."""
    env = environment(settings.home, settings.database_url)
    added = run_cli(
        env,
        "client",
        "add",
        "lab-feed",
        "--name",
        "Laboratory feed",
        "--scope",
        "system/*.cruds",
        "--confidential",
        "--clinic",
        clinic,
    )
    assert added.returncode == 0, added.stderr
    _SECRETS[server.url] = added.stdout.rsplit(": ", 1)[1].strip()
    return SyncFHIRClient(
        server.fhir,
        authorization=f"Bearer {_token(server, None, 'system/*.cruds')}",
        requests_config={"timeout": 30},
    )


_SECRETS: dict[str, str] = {}


def _token(server: RunningServer, _client: Any, scope: str) -> str:
    response = httpx.post(
        f"{server.url}/auth/token",
        data={"grant_type": "client_credentials", "scope": scope},
        auth=("lab-feed", _SECRETS[server.url]),
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def _patient(client: SyncFHIRClient, family: str, hkid: str | None = None) -> Any:
    fields: dict[str, Any] = {"name": [{"family": family}], "birthDate": "1980-02-03"}
    if hkid:
        fields["identifier"] = [{"system": HKID_SYSTEM, "value": hkid}]
    return client.resource("Patient", **fields)


def test_a_backend_service_works_through_fhirpy(
    live_server: RunningServer, settings: Settings
) -> None:
    _, clinic = colleagues(settings.home, "front_desk")
    client = backend_service(live_server, settings, clinic)

    made = []
    for index in range(23):
        patient = _patient(client, f"Pagefamily{index:02d}")
        patient.save()
        made.append(patient.id)
    # fetch_all follows the server's next links page by page (_count=5: five pages).
    found = client.resources("Patient").search(family="pagefamily").limit(5).fetch_all()
    assert sorted(p.id for p in found) == sorted(made)

    # Conditional create as fhirpy sends it (criteria in the query of the POST): the
    # second call finds the first patient, never makes a duplicate.
    searchset = client.resources("Patient").search(identifier=f"{HKID_SYSTEM}|{HKIDS[0]}")
    first, created = searchset.get_or_create(_patient(client, "Chan", HKIDS[0]))
    assert created
    again, created = searchset.get_or_create(_patient(client, "Chan", HKIDS[0]))
    assert not created and again.id == first.id
    assert client.resources("Patient").search(identifier=HKIDS[0]).count() == 1

    # Refusals arrive as OperationOutcomes naming what is wrong, never the value sent.
    with pytest.raises(OperationOutcome) as invalid:
        client.resource("Patient", name=[{"family": "Wong"}], birthDate="Tai Man 1980").save()
    diagnostics = str(invalid.value)
    assert "birthDate" in diagnostics and "Tai Man" not in diagnostics
    with pytest.raises(OperationOutcome) as unknown:
        client.resources("Patient").search(family="chan", colour="blue").fetch()
    assert "colour" in str(unknown.value)
    # A token asked for with fewer scopes is held to them: 403 with its reason.
    reader = SyncFHIRClient(
        live_server.fhir,
        authorization=f"Bearer {_token(live_server, client, 'system/Patient.rs')}",
        requests_config={"timeout": 30},
    )
    with pytest.raises(ForbiddenError) as forbidden:
        _patient(reader, "Readonly").save()
    assert "OperationOutcome" in str(forbidden.value) and "scope" in str(forbidden.value)
