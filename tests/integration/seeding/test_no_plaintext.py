"""No seeded patient's name, HKID, phone number or email is in raw storage.

Every file of the data directory (the SQLite database and key store with any WAL or
journal, key files, the demo logins) and, on PostgreSQL, a ``pg_dump`` of the schema
are scanned for every spelling of every seeded patient's details: zero hits. The same
scan finds staff names, which are in the clear by design, and finds the patients when
a benchmark home stores them unencrypted: it can fail.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from carevault.bootstrap import build_services
from carevault.config import Settings
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate import Caller
from carevault.sim.group import ClinicGroup, build_group
from carevault.sim.loader import LOGINS_FILE
from carevault.sim.patients import PatientRecord
from carevault.vault.writer import Put
from tests.integration.seeding.conftest import SEED, TODAY, SeededHome, expected_records
from tests.integration.seeding.plaintext import (
    Haystack,
    Hit,
    Needle,
    describe,
    find,
    haystacks_of_files,
    patient_needles,
)

#: In a dump in COPY text format a bytea value is ``\\x`` and its bytes in hex.
_BYTEA = re.compile(rb"\\\\x((?:[0-9a-f]{2})*)")


def needles_of(records: list[PatientRecord]) -> list[Needle]:
    return [
        needle
        for number, record in enumerate(records)
        for needle in patient_needles(number, record)
    ]


def in_the_clear_by_design(group: ClinicGroup) -> list[str]:
    """Staff names and usernames (staff are not patients), clinic and group names."""
    staff = [
        text
        for member in group.staff
        for text in (member.username, member.display_name, member.display_name_zh, member.email)
        if text
    ]
    clinics = [name for clinic in group.clinics for name in (clinic.name, clinic.name_zh)]
    return [*staff, *clinics, group.name, group.name_zh]


def leaks(haystacks: list[Haystack], records: list[PatientRecord], group: ClinicGroup) -> list[Hit]:
    return find(haystacks, needles_of(records), in_the_clear_by_design(group))


def pg_dump(settings: Settings) -> bytes:
    """A plain-text dump of the test's schema, bytea values decoded back to bytes."""
    assert settings.database_url is not None
    url = make_url(settings.database_url)
    schema = str(url.query["options"]).removeprefix("-csearch_path=")
    env = {**os.environ, "PGPASSWORD": url.password or ""}
    command = ["pg_dump", "-h", url.host or "127.0.0.1", "-p", str(url.port or 5432)]
    command += ["-U", url.username or "postgres", "-d", str(url.database), "-n", schema]
    dump = subprocess.run(command, env=env, capture_output=True, check=True, timeout=120).stdout
    assert f"CREATE TABLE {schema}.resource_version".encode() in dump
    return _BYTEA.sub(lambda match: bytes.fromhex(match[1].decode()), dump)


def raw_storage(settings: Settings) -> list[Haystack]:
    haystacks = haystacks_of_files(settings.home)
    if not settings.is_sqlite:
        haystacks.append(Haystack("pg_dump", pg_dump(settings)))
    return haystacks


@pytest.fixture(scope="module")
def scanned(seeded: SeededHome) -> list[Haystack]:
    return raw_storage(seeded.settings)


def test_no_seeded_patient_detail_is_in_any_file_or_the_database_dump(
    seeded: SeededHome, scanned: list[Haystack]
) -> None:
    names = {haystack.name for haystack in scanned}
    expected = {"carevault.db", "keys/keys.db"} if seeded.backend == "sqlite" else {"pg_dump"}
    assert expected | {LOGINS_FILE, "keys/keyring.json"} <= names
    hits = leaks(scanned, seeded.records, seeded.group)
    assert not hits, describe(hits)


def test_every_seeded_patient_has_details_to_look_for(seeded: SeededHome) -> None:
    needles = needles_of(seeded.records)
    for number, record in enumerate(seeded.records):
        mine = {needle.text for needle in needles if f"patient {number} " in needle.what}
        assert {record.hkid, record.phone, record.mrn, *record.names} <= mine
        assert record.email is None or record.email in mine
    assert sum(record.email is not None for record in seeded.records) >= 10
    assert any(not name.isascii() for record in seeded.records for name in record.names)


def test_the_scan_finds_staff_names_which_are_in_the_clear_by_design(
    seeded: SeededHome, scanned: list[Haystack]
) -> None:
    """A positive control: the scanner reads the stored rows, not just file headers."""
    database = [h for h in scanned if h.name in ("carevault.db", "pg_dump")]
    members = [member for member in seeded.group.staff if member.practitioner_id][:5]
    needles = [
        Needle(text, f"staff {member.username}", text)
        for member in members
        for text in (member.display_name, member.username)
    ]
    hits = find(database, needles)
    assert {hit.needle.text for hit in hits} == {needle.text for needle in needles}
    # Allowed text explains those hits, and only those.
    assert not find(database, needles, in_the_clear_by_design(seeded.group))


def _without_references(patient: dict[str, Any]) -> dict[str, Any]:
    """The Patient alone: the directory it refers to is not written in this control."""
    references = ("generalPractitioner", "managingOrganization")
    body = {key: value for key, value in patient.items() if key not in references}
    body["identifier"] = [
        {k: v for k, v in identifier.items() if k != "assigner"}
        for identifier in patient["identifier"]
    ]
    return body


def test_the_scan_finds_patients_a_benchmark_home_stores_unencrypted(settings: Settings) -> None:
    """A positive control: with encryption off the same scan reports every kind of detail."""
    plain = settings.model_copy(update={"environment": "benchmark", "encryption": False})
    group = build_group(SEED, TODAY)
    # A patient's name that is also a staff member's is in the clear by design: pick others.
    records = [
        record
        for record in expected_records()
        if record.email is not None
        and any(not name.isascii() for name in record.names)
        and not set(record.names) & set(in_the_clear_by_design(group))
    ][:2]
    services = build_services(plain, create_keys=True, migrate=True)
    try:
        patients = [
            (record.patient["id"], _without_references(record.patient)) for record in records
        ]
        services.gate.write(
            Caller(principal="system:test"),
            [Put(RESOURCE_TYPES["Patient"], pid, body) for pid, body in patients],
        )
    finally:
        services.close()
    hits = leaks(raw_storage(plain), records, group)
    found = {hit.needle.text for hit in hits}
    for record in records:
        chinese = next(name for name in record.names if not name.isascii())
        assert {record.hkid, record.phone, record.email, chinese, *record.names} <= found
    places = {hit.where.split(", ", 1)[0] for hit in hits}
    assert places == ({"carevault.db"} if plain.is_sqlite else {"pg_dump"})


def test_the_scan_finds_text_written_as_utf16_and_json_escapes(tmp_path: Path) -> None:
    record = next(r for r in expected_records() if any(not n.isascii() for n in r.names))
    chinese = next(name for name in record.names if not name.isascii())
    official = record.names[0]
    noise = os.urandom(50_000)
    (tmp_path / "utf16.bin").write_bytes(noise + official.encode("utf-16-le") + noise)
    (tmp_path / "cjk16.bin").write_bytes(noise + chinese.encode("utf-16-le") + noise)
    escaped = '{"text": "' + chinese.encode("unicode_escape").decode() + '"}'
    (tmp_path / "json.bin").write_bytes(noise + escaped.encode() + noise)
    (tmp_path / "phone.bin").write_bytes(noise + record.phone.replace(" ", "").encode() + noise)
    hits = find(haystacks_of_files(tmp_path), patient_needles(0, record))
    found = {(hit.where.split(",")[0], hit.needle.text) for hit in hits}
    assert ("utf16.bin", official) in found
    assert ("cjk16.bin", chinese) in found
    assert any(where == "json.bin" for where, _ in found)
    assert ("phone.bin", record.phone.replace(" ", "")) in found
