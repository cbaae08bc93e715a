"""The ledger's HTTP face: signed checkpoints and proofs that a third party checks with
the standalone verifier alone; AuditEvent search and access reports for the privacy
officer only; fail closed when the ledger cannot be written."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

from sqlalchemy import text

from carevault.bootstrap import Services
from carevault.clock import to_micros
from carevault.domain.roles import Role
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.ledger.verifier import (
    VerifierKey,
    leaf_hash,
    open_checkpoint,
    verify_consistency,
    verify_cosignature,
    verify_inclusion,
)
from tests.integration.ledger.conftest import StaffToken, bearer, patient
from tests.support.client import FhirTestClient

VERIFIER = Path(__file__).parents[3] / "src" / "carevault" / "ledger" / "verifier.py"


def standalone(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The verifier copied out of the project and run with nothing of CareVault's."""
    copy = tmp_path / "verifier.py"
    shutil.copy(VERIFIER, copy)
    return subprocess.run(
        [sys.executable, "-I", str(copy), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )


def test_evidence_verifies_offline_with_the_standalone_verifier(
    web: FhirTestClient, staff_token: StaffToken, tmp_path: Path
) -> None:
    desk, officer = staff_token(Role.FRONT_DESK), staff_token(Role.PRIVACY_OFFICER)
    someone = patient(web, desk, "Chan")
    keys = web.get("/audit/vkey").json()
    vkey = VerifierKey.parse(keys["audit"])
    first = web.get("/audit/checkpoint", headers=bearer(officer)).text
    old = open_checkpoint(first, vkey)
    assert verify_cosignature(first, VerifierKey.parse(keys["witnesses"][0])) > 0

    assert web.get(f"/fhir/Patient/{someone}", headers=bearer(desk)).status_code == 200
    proof = web.get("/audit/proof/inclusion?seq=" + str(old.size), headers=bearer(officer)).json()
    new = open_checkpoint(proof["checkpoint"], vkey)
    entry = base64.b64decode(proof["entry"])
    hashes = [base64.b64decode(item) for item in proof["proof"]]
    verify_inclusion(leaf_hash(entry), proof["seq"], new.size, hashes, new.root)
    assert json.loads(entry)["resource_id"] == someone

    (tmp_path / "cp.txt").write_text(proof["checkpoint"])
    (tmp_path / "entry.json").write_bytes(entry)
    (tmp_path / "proof.txt").write_text("\n".join(proof["proof"]) + "\n")
    checked = standalone(
        tmp_path,
        "inclusion",
        "--vkey", keys["audit"],
        "--checkpoint", "cp.txt",
        "--index", str(proof["seq"]),
        "--entry", "entry.json",
        "--proof", "proof.txt",
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    (tmp_path / "entry.json").write_bytes(entry.replace(b"success", b"denied!"))
    assert standalone(
        tmp_path,
        "inclusion",
        "--vkey", keys["audit"],
        "--checkpoint", "cp.txt",
        "--index", str(proof["seq"]),
        "--entry", "entry.json",
        "--proof", "proof.txt",
    ).returncode == 1  # fmt: skip

    consistency = web.get(f"/audit/proof/consistency?old={old.size}&new={new.size}").json()
    hashes = [base64.b64decode(item) for item in consistency["proof"]]
    verify_consistency(old.size, new.size, hashes, old.root, new.root)
    (tmp_path / "old.txt").write_text(first)
    (tmp_path / "consistency.txt").write_text("\n".join(consistency["proof"]) + "\n")
    checked = standalone(
        tmp_path,
        "consistency",
        "--vkey", keys["audit"],
        "--old", "old.txt",
        "--new", "cp.txt",
        "--proof", "consistency.txt",
        "--witness", keys["witnesses"][0],
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr


def test_only_the_privacy_officer_reads_the_audit_trail(
    web: FhirTestClient, staff_token: StaffToken, services: Services
) -> None:
    desk, doctor, officer = (
        staff_token(Role.FRONT_DESK),
        staff_token(Role.PHYSICIAN),
        staff_token(Role.PRIVACY_OFFICER),
    )
    someone = patient(web, desk, "Wong")
    web.get(f"/fhir/Patient/{someone}", headers=bearer(desk))
    for path in (
        "/fhir/AuditEvent",
        f"/audit/patients/{someone}/access-report",
        "/audit/proof/inclusion?seq=0",
    ):
        refused = web.get(path, headers=bearer(doctor))
        assert refused.status_code == 403
    assert web.get("/fhir/AuditEvent").status_code == 401

    found = web.get(f"/fhir/AuditEvent?patient={someone}", headers=bearer(officer))
    assert found.status_code == 200
    events = [entry["resource"] for entry in found.json()["entry"]]
    assert {event["subtype"][0]["code"] for event in events} >= {
        "fhir:resource:create",
        "fhir:resource:read",
    }
    assert all(
        event["agent"][0]["who"]["identifier"]["value"].startswith("staff:") for event in events
    )

    denials = web.get("/fhir/AuditEvent?outcome=4&_count=100", headers=bearer(officer)).json()
    reasons = [entry["resource"].get("outcomeDesc", "") for entry in denials["entry"]]
    assert sum("only a privacy officer may read" in reason for reason in reasons) == 3

    report = web.get(f"/audit/patients/{someone}/access-report", headers=bearer(officer)).json()
    root = open_checkpoint(report["checkpoint"], services.audit_ledger.checkpoints.signer.vkey).root
    # The officer's search of the patient's entries above is itself a line: it told who
    # opened the record (adversary round 51).
    assert [line["action"] for line in report["accesses"]] == [
        "fhir:resource:create",
        "fhir:resource:read",
        "audit:ledger:read",
    ]
    for line in report["accesses"]:
        expected = "privacy_officer" if line["action"] == "audit:ledger:read" else "front_desk"
        assert line["role"] == expected and line["name"] == f"Test {expected}"
        verify_inclusion(
            leaf_hash(base64.b64decode(line["entry"])),
            line["seq"],
            report["tree_size"],
            [base64.b64decode(item) for item in line["proof"]],
            root,
        )


def test_the_audit_search_reads_a_date_as_every_fhir_date_search_does(
    web: FhirTestClient, staff_token: StaffToken, services: Services
) -> None:
    """``date`` takes R4's prefixes with the main search's meaning, read by its one
    parser: ``ap`` widens the value by a tenth of the gap to now (an entry of mid-January
    2016 is approximately the first of June 2016, asked ten years and more on; one of
    2014 is not, and ``eq`` of that day finds neither); a value covers its precision (no
    prefix is ``eq``, ``le`` takes the whole day); repeated values all hold. An unknown
    prefix is a 400 OperationOutcome that names it."""
    officer = staff_token(Role.PRIVACY_OFFICER)
    zone = ZoneInfo(services.settings.timezone)
    services.audit.record(
        [
            AuditEvent(
                tag=Tag.AUDIT_READ,
                outcome=Outcome.SUCCESS,
                at_us=to_micros(datetime(year, 1, 15, 10, tzinfo=zone)),
                principal="staff:long-ago",
                role="privacy_officer",
            )
            for year in (2014, 2016)
        ]
    )

    def years(*dates: str) -> list[str]:
        query = "&".join(f"date={quote(value)}" for value in dates)
        found = web.get(f"/fhir/AuditEvent?agent=staff:long-ago&{query}", headers=bearer(officer))
        assert found.status_code == 200, (dates, found.text)
        return [entry["resource"]["recorded"][:4] for entry in found.json().get("entry", [])]

    assert years("ap2016-06-01") == ["2016"]
    assert years("2016-06-01") == []
    assert years("2016-01-15") == ["2016"]
    assert years("le2016-01-15") == ["2014", "2016"]
    assert years("lt2016-01-15") == ["2014"]
    assert years("ge2016-01-15T10:00") == ["2016"]
    assert years("gt2016-01-15T10:00") == []
    assert years("ne2016-01-15") == ["2014"]
    assert years("sa2014", "eb2017") == ["2016"]
    assert years("ge2015", "ge2014") == ["2016"]
    assert years("ap2014-01-15T10:00:00+08:00", "ne2016") == ["2014"]
    for value, said in (
        ("zz2016", "unsupported date prefix 'zz'"),
        ("2016-1-5", "not a FHIR date"),
    ):
        refused = web.get(f"/fhir/AuditEvent?date={value}", headers=bearer(officer))
        assert refused.status_code == 400, value
        (issue,) = refused.json()["issue"]
        assert issue["code"] == "invalid" and said in issue["diagnostics"], issue


def test_the_audit_search_pages_on_with_its_filters(
    web: FhirTestClient, staff_token: StaffToken, services: Services
) -> None:
    """The next page of a filtered search is the same search: the next link keeps every
    filter (it kept only ``_after`` and ``_count``, so page two of one account's denials
    listed everyone's entries)."""
    officer = staff_token(Role.PRIVACY_OFFICER)
    services.audit.record(
        [
            AuditEvent(
                tag=Tag.AUDIT_READ,
                outcome=Outcome.DENIED if index % 2 else Outcome.SUCCESS,
                at_us=to_micros(services.clock()) + index,
                principal=f"staff:pager-{index % 3}",
                role="privacy_officer",
            )
            for index in range(30)
        ]
    )
    url = "/fhir/AuditEvent?agent=staff:pager-1&outcome=4&date=ge2000&_count=2"
    seen: list[str] = []
    pages = 0
    while url:
        page = web.get(url, headers=bearer(officer))
        assert page.status_code == 200, page.text
        bundle = page.json()
        pages += 1
        for entry in bundle.get("entry", []):
            event = entry["resource"]
            assert event["agent"][0]["who"]["identifier"]["value"] == "staff:pager-1"
            assert event["outcome"] == "4"
            seen.append(entry["fullUrl"])
        following = [link["url"] for link in bundle.get("link", []) if link["relation"] == "next"]
        url = urlsplit(following[0])._replace(scheme="", netloc="").geturl() if following else ""
    # Indices 1..29 that are odd (denied) and 1 modulo 3: 1, 7, 13, 19, 25.
    assert len(seen) == len(set(seen)) == 5
    assert pages == 3


def test_no_data_leaves_when_the_ledger_cannot_be_written(
    web: FhirTestClient, staff_token: StaffToken, services: Services
) -> None:
    desk = staff_token(Role.FRONT_DESK)
    someone = patient(web, desk, "Failclosed")
    with services.engine.begin() as connection:
        connection.execute(text("DROP TABLE audit_entry"))
    response = web.get(f"/fhir/Patient/{someone}", headers=bearer(desk))
    assert response.status_code == 503
    assert response.json()["resourceType"] == "OperationOutcome"
    assert "Failclosed" not in response.text
    created = web.post_json(
        "/fhir/Patient", {"resourceType": "Patient", "name": [{"family": "Never"}]}, **bearer(desk)
    )
    assert created.status_code == 503


def test_consistency_proofs_stop_at_the_latest_signed_checkpoint(
    web: FhirTestClient, staff_token: StaffToken, services: Services
) -> None:
    """The live tree is no size anyone can hold the operator to, nor one to publish before
    it is signed: a proof reaches only as far as the latest signed checkpoint, and a
    refusal names no size."""
    desk = staff_token(Role.FRONT_DESK)
    patient(web, desk, "Lee")
    signed = services.audit_ledger.checkpoints.make("test").size
    patient(web, desk, "Ho")  # the ledger grows past the checkpoint
    live = services.audit_ledger.store.head()[0]
    assert live > signed

    assert web.get(f"/audit/proof/consistency?old=1&new={signed}").status_code == 200
    for old, new in ((1, signed + 1), (1, live), (signed + 1, signed + 1), (2, 1)):
        refused = web.get(f"/audit/proof/consistency?old={old}&new={new}")
        assert refused.status_code == 400, (old, new)
        text = refused.json()["issue"][0]["diagnostics"]
        assert "latest signed checkpoint" in text
        assert str(live) not in text and str(signed) not in text
