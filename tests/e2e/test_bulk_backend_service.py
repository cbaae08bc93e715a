"""A hospital's integration team drives ``carevault serve`` from outside, as it would
drive any Bulk Data server (integrator round 60): its own key pair registered with
``carevault client add --jwks``, a SMART Backend Services assertion made with PyJWT for
each token, the endpoints found in the smart-configuration, a Patient-level ``$export``
kicked off with the IG's headers, polled while ``202``, the manifest read and every file
fetched with a token obtained later, then the job deleted. httpx and PyJWT only: no
CareVault code on the client's side."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from carevault.bootstrap import build_services
from carevault.config import Settings
from tests.support.auth import fresh_code, login_for, token_for
from tests.support.server import environment, run_cli, running_server

# What a client (or a browser) sees of the HTTP API: run on PostgreSQL, as production is; the
# storage under it is tested on both backends by the integration tests.
pytestmark = [pytest.mark.e2e, pytest.mark.only_backend("postgres")]

SERVICE = "hospital-bulk"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class BackendService:
    """What the hospital's side holds: its private key, its client id, the server's
    discovery document."""

    def __init__(self, fhir_base: str, key: rsa.RSAPrivateKey) -> None:
        self.fhir_base = fhir_base
        self.key = key
        discovery = httpx.get(f"{fhir_base}/.well-known/smart-configuration")
        assert discovery.status_code == 200
        self.configuration: dict[str, Any] = discovery.json()

    def token(self, scope: str) -> dict[str, Any]:
        token_url = self.configuration["token_endpoint"]
        now = int(time.time())
        assertion = jwt.encode(
            {
                "iss": SERVICE,
                "sub": SERVICE,
                "aud": token_url,
                "exp": now + 300,
                "jti": str(uuid.uuid4()),
            },
            self.key,
            algorithm="RS384",
            headers={"kid": "hospital-1", "typ": "JWT"},
        )
        response = httpx.post(
            token_url,
            data={
                "grant_type": "client_credentials",
                "scope": scope,
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion,
            },
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def test_a_hospital_exports_its_clinics_patients_as_the_bulk_data_ig_says(
    settings: Settings, tmp_path: Path
) -> None:
    env = environment(
        settings.home,
        settings.database_url,
        {
            "CAREVAULT_DIRECT_GRANT": "true",
            "CAREVAULT_ARGON2_MEMORY_KIB": "8192",
            "CAREVAULT_ARGON2_TIME_COST": "1",
            "CAREVAULT_EXPORT_POLL_SECONDS": "0.2",
        },
    )
    seeded = run_cli(env, "seed", "--patients", "40")
    assert seeded.returncode == 0, seeded.stderr
    officer = login_for(settings.home, "privacy_officer", 0)
    # The hospital's contract is with one clinic of the group (one that has patients):
    # the operator registers its feed there, by the clinic's Organization id.
    services = build_services(settings)
    try:
        assert services.exports is not None
        clinic = sorted(services.exports.jobs.patient_clinics())[0]
    finally:
        services.close()

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    key_file = tmp_path / "hospital.jwks.json"
    key_file.write_text(
        json.dumps({"keys": [{**public, "kid": "hospital-1", "alg": "RS384", "use": "sig"}]})
    )
    added = run_cli(
        env,
        "client",
        "add",
        SERVICE,
        "--name",
        "Hospital bulk feed",
        "--confidential",
        "--scope",
        "system/*.rs",
        "--clinic",
        clinic,
        "--jwks",
        str(key_file),
    )
    assert added.returncode == 0, added.stderr

    with running_server(env, tmp_path) as server:
        service = BackendService(server.fhir, key)
        assert "private_key_jwt" in service.configuration["token_endpoint_auth_methods_supported"]
        assert "RS384" in service.configuration["token_endpoint_auth_signing_alg_values_supported"]
        granted = service.token("system/*.read")
        assert granted["scope"] == "system/*.read"  # as asked, in SMART v1
        headers = {"authorization": f"Bearer {granted['access_token']}"}

        kicked = httpx.get(
            f"{server.fhir}/Patient/$export",
            params={"_type": "Patient,Observation"},
            # Prefer on two lines, as a client adding its own preference sends it.
            headers=[
                *headers.items(),
                ("accept", "application/fhir+json"),
                ("prefer", "handling=strict"),
                ("prefer", "respond-async"),
            ],
        )
        assert kicked.status_code == 202, kicked.text
        status_url = kicked.headers["content-location"]
        assert status_url.startswith("http")

        waiting = httpx.get(status_url, headers={**headers, "accept": "application/json"})
        assert waiting.status_code == 202
        assert len(waiting.headers["x-progress"]) < 100
        assert int(waiting.headers["retry-after"]) > 0

        job_id = status_url.rsplit("/", 1)[1]
        officer_token = token_for(server.url, officer)
        approved = httpx.post(
            f"{server.url}/admin/exports/{job_id}/approve",
            json={"totp": fresh_code(officer)},
            headers={"authorization": f"Bearer {officer_token}"},
        )
        assert approved.status_code == 200, approved.text

        # Later: the first token may have run out; the service signs a new assertion.
        later = {"authorization": f"Bearer {service.token('system/*.read')['access_token']}"}
        deadline = time.monotonic() + 120
        while (done := httpx.get(status_url, headers=later)).status_code == 202:
            assert time.monotonic() < deadline, done.headers.get("x-progress")
            time.sleep(0.25)
        assert done.status_code == 200, done.text
        assert done.headers["content-type"].startswith("application/json")
        assert "expires" in done.headers
        manifest = done.json()
        assert manifest["requiresAccessToken"] is True
        assert manifest["request"].startswith(f"{server.fhir}/Patient/$export?_type=")
        assert manifest["error"] == [] and manifest["deleted"] == []
        types = set()
        for item in manifest["output"]:
            fetched = httpx.get(item["url"], headers=later)
            assert fetched.status_code == 200
            assert fetched.headers["content-type"].startswith("application/fhir+ndjson")
            lines = [json.loads(line) for line in fetched.content.splitlines()]
            assert len(lines) == item["count"]
            assert {line["resourceType"] for line in lines} == {item["type"]}
            types.add(item["type"])
        assert "Patient" in types

        # A token the service asked for less cannot read what the export holds.
        narrow = service.token("system/Patient.read")
        assert narrow["scope"] == "system/Patient.read"
        refused = httpx.get(
            manifest["output"][0]["url"],
            headers={"authorization": f"Bearer {narrow['access_token']}"},
        )
        assert refused.status_code == 403
        assert "insufficient_scope" in refused.headers["www-authenticate"]

        assert httpx.delete(status_url, headers=later).status_code == 202
        gone = httpx.get(status_url, headers=later)
        assert gone.status_code == 404
        assert gone.json()["resourceType"] == "OperationOutcome"
