"""Adversary round 67, the thief with the files: someone walks off with everything on
the server's disk except the key custodian's part (the keyring and key files), after a
working day in which every table and file got content: patients with distinctive details
written and searched by staff, refused input quoting them, a break-the-glass grant with
its justification, a desk's bulk read stopped by the release budget (an alert), an
incident declared and scoped, notices sent over a real SMTP server, a ``$export`` and an
``$import``, an access report, an erasure, and a backup. The thief then looks through
every file of the home and of the backup's data part (and, on PostgreSQL, a ``pg_dump``
of the schema) for any spelling of what was typed: as text, lower case, the HKID without
brackets, a phone number's digits, JSON escapes, base64, and inside zlib and gzip streams.
"""

from __future__ import annotations

import base64
import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from carevault.backup.service import take_backup
from carevault.bootstrap import Services, build_services
from carevault.config import Settings
from carevault.containment.service import Officer
from carevault.domain.hkid import check_digit
from carevault.domain.roles import Role
from carevault.export.worker import ExportWorker
from carevault.importjobs.worker import ImportWorker
from carevault.incidents import Actor, declare_case, scope_document
from carevault.keys.tables import data_key
from carevault.ledger.events import Outcome, Tag
from carevault.notify.scope import parse_scope
from carevault.notify.service import send_job
from carevault.web.app import create_app
from carevault.web.security import caller
from tests.conftest import make_settings
from tests.integration.access.browser import basic, bearer
from tests.integration.access.group import HKID_SYSTEM, TM, Group, build_group, encounter
from tests.integration.seeding.plaintext import Haystack, Needle, describe, find
from tests.integration.seeding.test_no_plaintext import pg_dump
from tests.support.client import FHIR_JSON, FhirTestClient
from tests.support.notify import MailSink, smtp_server
from tests.support.staff import Staff, make_staff

pytestmark = pytest.mark.postgres

ASYNC = {"prefer": "respond-async", "accept": "application/fhir+json"}
NDJSON = {"Content-Type": "application/fhir+ndjson", "Prefer": "respond-async"}


def hkid(prefix: str, digits: str) -> str:
    return f"{prefix}{digits}({check_digit(prefix, digits)})"


@dataclass(frozen=True)
class Secret:
    """A detail the thief looks for, and what it is."""

    text: str
    what: str


#: The people of the day, each with details no other text of the project holds.
QUILL = {
    "family": "Quillfeather",
    "given": "Zanzibar",
    "hkid": hkid("Q", "765432"),
    "phone": "+852 6789 1357",
    "email": "zanzibar.quill@example.org",
    "line": "88 Marmaladeterrace Road",
    "note": "Vampirebat insomnia since the divorce",
    "condition": "Gumdropvalley disclosure of status",
}
WOBBLE = {
    "family": "Wobblesprocket",
    "given": "Ulrika",
    "hkid": hkid("WX", "908172"),
    "phone": "+852 5432 1987",
    "email": "ulrika.wobble@example.net",
    "line": "12 Tangerinegorge Street",
    "note": "Peppermintfjord counselling notes",
    "condition": "Juniperbramble relapse",
}
IMPORTED = {
    "family": "Velvetpumpkin",
    "given": "Octavia",
    "hkid": hkid("V", "246813"),
    "phone": "+852 9182 7364",
    "email": "octavia.velvet@example.com",
    "line": "7 Lavenderquay Lane",
}
JUSTIFICATION = "Quillfeather collapsed at Saikungpier, records needed for Xylophonecrest"
BAD_BIRTH = "Quillfeather-Zanzibar"
SEARCHED_NAME = "Hollyhockmaze"


def secrets_of(person: dict[str, str], who: str) -> list[Secret]:
    out = [Secret(value, f"{key} of {who}") for key, value in person.items()]
    digits = person["hkid"][:-3]
    out += [
        Secret(digits, f"HKID without check digit of {who}"),
        Secret(re.sub(r"[()]", "", person["hkid"]), f"HKID without brackets of {who}"),
        Secret(re.sub(r"\D", "", person["phone"])[3:], f"phone digits of {who}"),
        Secret(person["email"].split("@")[0], f"mailbox of {who}"),
    ]
    return out


def needles(secrets: list[Secret]) -> list[Needle]:
    """Each secret as typed, lower and upper case, JSON-escaped and base64 of it."""
    found: dict[str, Needle] = {}
    for secret in secrets:
        forms = {secret.text, secret.text.lower(), secret.text.upper()}
        forms |= {json.dumps(form)[1:-1] for form in list(forms)}
        for form in forms:
            found.setdefault(form, Needle(form, secret.what, form))
        for encoded in (
            base64.b64encode(secret.text.encode()).decode().rstrip("="),
            base64.urlsafe_b64encode(secret.text.encode()).decode().rstrip("="),
        ):
            # Base64 of a text is stable except at its last few characters.
            core = encoded[: max(6, len(encoded) - 3)]
            found.setdefault(core, Needle(core, f"base64 of {secret.what}", core))
    return list(found.values())


_ZLIB_HEADERS = (b"\x78\x01", b"\x78\x5e", b"\x78\x9c", b"\x78\xda")


def inflated(raw: bytes) -> bytes:
    """Every zlib or gzip stream found in ``raw``, inflated and joined (a thief tries each
    header's offset: a ``pg_dump`` in custom format compresses each table's data)."""
    out: list[bytes] = []
    for header in (*_ZLIB_HEADERS, b"\x1f\x8b\x08"):
        at = raw.find(header)
        while at >= 0:
            wbits = 31 if header.startswith(b"\x1f") else 15
            try:
                decompressor = zlib.decompressobj(wbits)
                data = decompressor.decompress(raw[at : at + 64 * 1024 * 1024])
                if len(data) > 16:
                    out.append(data)
            except zlib.error:
                pass
            at = raw.find(header, at + 1)
    return b"\n".join(out)


def haystacks(root: Path, label: str) -> list[Haystack]:
    found: list[Haystack] = []
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        raw = path.read_bytes()
        name = f"{label}/{path.relative_to(root)}"
        found.append(Haystack(name, raw))
        inside = inflated(raw)
        if inside:
            found.append(Haystack(f"{name} (inflated)", inside))
    return found


@dataclass
class Day:
    services: Services
    settings: Settings
    group: Group
    web: FhirTestClient
    quill: str
    wobble: str
    backup: Path
    sink: MailSink
    keys_backup: Path

    def call(self, who: Staff, method: str, path: str, body: Any = None) -> Any:
        return self.group.call(who, method, path, body)


def patient_body(person: dict[str, str], clinic: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": HKID_SYSTEM, "value": person["hkid"]}],
        "name": [{"family": person["family"], "given": [person["given"]]}],
        "telecom": [
            {"system": "phone", "value": person["phone"], "use": "mobile"},
            {"system": "email", "value": person["email"]},
        ],
        "address": [{"line": [person["line"]], "district": "Sai Kung"}],
        "birthDate": "1961-07-19",
        "gender": "female",
        "managingOrganization": {"reference": f"Organization/{clinic}"},
    }


def clinical(patient: str, person: dict[str, str]) -> list[dict[str, Any]]:
    subject = {"reference": f"Patient/{patient}"}
    return [
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "sleep diary"},
            "subject": subject,
            "valueString": person["note"],
        },
        {
            "resourceType": "Condition",
            "code": {
                "coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "B20"}],
                "text": person["condition"],
            },
            "subject": subject,
            "note": [{"text": person["note"]}],
        },
    ]


def _created(day_web: Any, response: Any) -> str:
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _client_token(services: Services, web: FhirTestClient, client_id: str, scopes: str) -> str:
    _, secret = services.admin.add_client(
        "admin:test", client_id, "Integration", confidential=True, scopes=scopes,
        clinic_ids=[TM],
    )  # fmt: skip
    assert secret
    response = web.post(
        "/auth/token",
        data={"grant_type": "client_credentials", "scope": scopes},
        headers=basic(client_id, secret),
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def work_the_day(
    services: Services, group: Group, sink: MailSink, tmp_path: Path
) -> tuple[str, str]:
    """Everything a working day writes; the ids of Quillfeather and Wobblesprocket."""
    desk, doctor, officer = group.desk_tm, group.doctor_tm, group.officer
    quill = _created(None, group.call(desk, "POST", "/fhir/Patient", patient_body(QUILL, TM)))
    wobble = _created(None, group.call(desk, "POST", "/fhir/Patient", patient_body(WOBBLE, TM)))
    for patient, person in ((quill, QUILL), (wobble, WOBBLE)):
        made = group.call(desk, "POST", "/fhir/Encounter", encounter(patient, TM, "dr-tm"))
        assert made.status_code == 201, made.text
        for body in clinical(patient, person):
            made = group.call(doctor, "POST", f"/fhir/{body['resourceType']}", body)
            assert made.status_code == 201, made.text
    # A correction: the old version stays (encrypted) in the history.
    corrected = patient_body(QUILL, TM) | {"id": quill, "birthDate": "1961-07-20"}
    assert group.call(desk, "PUT", f"/fhir/Patient/{quill}", corrected).status_code == 200

    # Searches typed by staff, with patients' details as criteria.
    for query in (
        f"name={QUILL['family']}",
        f"family={SEARCHED_NAME}",
        f"given={QUILL['given']}",
        f"identifier={QUILL['hkid']}",
        f"identifier={HKID_SYSTEM}|{WOBBLE['hkid'].replace('(', '').replace(')', '')}",
        f"phone={re.sub(r'[^0-9]', '', QUILL['phone'])[3:]}",
        f"email={QUILL['email']}",
        f"address={QUILL['line'].split()[1]}",
    ):
        group.call(desk, "GET", f"/fhir/Patient?{query}")
    group.call(doctor, "GET", f"/fhir/Observation?patient={quill}&value-string={WOBBLE['note']}")
    # Refused input quoting a patient's details.
    bad = patient_body(QUILL, TM) | {"birthDate": BAD_BIRTH}
    assert group.call(desk, "POST", "/fhir/Patient", bad).status_code in (400, 422)
    bad_hkid = patient_body(QUILL, TM) | {
        "identifier": [{"system": HKID_SYSTEM, "value": QUILL["hkid"][:-2] + "X)"}]
    }
    assert group.call(desk, "POST", "/fhir/Patient", bad_hkid).status_code in (400, 422)
    group.call(desk, "GET", f"/fhir/Patient?bogus={WOBBLE['family']}")
    group.call(desk, "GET", f"/fhir/Patient?birthdate={BAD_BIRTH}")
    # Details typed where an id goes: a name, an HKID without brackets, a phone number.
    typed = (
        QUILL["family"],
        re.sub(r"[()]", "", WOBBLE["hkid"]),
        "ID" + QUILL["phone"][5:].replace(" ", ""),
    )
    for wrong in typed:
        for method, path in (
            ("GET", f"/fhir/Patient/{wrong}"),
            ("GET", f"/fhir/Patient/{wrong}/_history/1"),
            ("GET", f"/fhir/Patient/{wrong}/_history"),
            ("GET", f"/fhir/Patient/{wrong}/$everything"),
            ("DELETE", f"/fhir/Patient/{wrong}"),
            ("GET", f"/fhir/Observation?patient={wrong}"),
            ("GET", f"/fhir/Patient?_id={wrong}"),
        ):
            group.call(doctor, method, path)
        group.call(officer, "GET", f"/audit/patients/{wrong}/access-report")
    group.web.get(f"/fhir/Patient?name={WOBBLE['family']}", headers={"authorization": "Bearer x"})

    # Tsuen Wan's doctor breaks the glass for Quillfeather, in words.
    grant = group.web.post(
        f"/fhir/Patient/{quill}/$break-glass",
        content=json.dumps(
            {
                "resourceType": "Parameters",
                "parameter": [
                    {"name": "reason", "valueString": "emergency-treatment"},
                    {"name": "text", "valueString": JUSTIFICATION},
                ],
            }
        ),
        headers={**group.doctor_tw.headers, **FHIR_JSON},
    )
    assert grant.status_code == 200, grant.text
    assert group.call(group.doctor_tw, "GET", f"/fhir/Patient/{quill}").status_code == 200

    # Wobblesprocket asks to be forgotten: crypto-shredding.
    assert services.keys is not None
    pseudonym = services.vault.patient_pseudonyms([wobble])[wobble]
    services.contain.erase_patient(
        Officer(officer.account.username, officer.totp()),
        pseudonym,
        "erasure request",
        services.keys,
    )

    # A second desk login pages through the clinic until the release budget stops it.
    thief = make_staff(services, Role.FRONT_DESK, [TM])
    extra = {"resourceType": "Patient", "managingOrganization": {"reference": f"Organization/{TM}"}}
    third = _created(None, group.call(desk, "POST", "/fhir/Patient", extra))
    statuses = [
        group.call(thief, "GET", f"/fhir/Patient/{patient}").status_code
        for patient in (quill, group.tm_patient.id, third)
    ]
    assert 429 in statuses, statuses

    # The incident, its scope, and the notices.
    now = datetime.now(UTC)
    case = {
        "title": "A reception login used by someone else",
        "since": (now - timedelta(hours=1)).isoformat(),
        "until": (now + timedelta(minutes=1)).isoformat(),
        "accounts": [thief.account.username],
    }
    incident = declare_case(services, Actor("staff:officer.test"), case).incident_id
    document = scope_document(services, incident)
    assert document["tiers"]["confirmed"], document
    send_job(services).run(parse_scope(document), ("confirmed", "decrypted"))
    assert sink.messages

    # A patient access report for Quillfeather.
    report = group.call(officer, "GET", f"/audit/patients/{quill}/access-report")
    assert report.status_code == 200, report.text

    # A $export of the clinic, approved and run; its files stay in the home.
    exporter = _client_token(services, group.web, "exporter-67", "system/*.read")
    kicked = group.web.get("/fhir/Patient/$export", headers={**bearer(exporter), **ASYNC})
    assert kicked.status_code == 202, kicked.text
    job = kicked.headers["content-location"].rsplit("/", 1)[1]
    assert services.exports is not None
    services.exports.approve(Officer(officer.account.username, officer.totp()), job)
    ExportWorker(services.exports, "test-worker").run_once(None)

    # An $import of a new patient (and a line that is refused, quoting nothing back).
    importer = _client_token(services, group.web, "importer-67", "system/*.cruds")
    lines = [
        json.dumps(patient_body(IMPORTED, TM) | {"id": "imported-67"}),
        json.dumps(patient_body(IMPORTED, TM) | {"birthDate": IMPORTED["family"]}),
        f"not json {IMPORTED['family']} {IMPORTED['email']}",
    ]
    started = group.web.post(
        "/fhir/$import", content="\n".join(lines).encode(), headers={**bearer(importer), **NDJSON}
    )
    assert started.status_code == 202, started.text
    assert services.imports is not None
    ImportWorker(services.imports, "test-worker").run_once(None)

    return quill, wobble


@pytest.fixture
def day(settings: Settings, tmp_path: Path) -> Iterator[Day]:
    smtp, sink = smtp_server(tmp_path / "journal")
    configured = make_settings(
        settings.home,
        settings.database_url,
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_from="notices@clinics.example.hk",
        notify_journal_dir=tmp_path / "journal",
        notify_rate=1000.0,
        notify_retry_seconds=0.05,
        notify_site="clinics.example.hk",
        release_budget="front_desk=2/20",
    )
    services = build_services(configured, create_keys=True, migrate=True)
    try:
        app = create_app(configured, services)
        from carevault.gate import Caller

        app.dependency_overrides[caller] = lambda: Caller(principal="system:test")
        with FhirTestClient(app) as api:
            groups = build_group(services, api)
            group = next(groups)
            try:
                quill, wobble = work_the_day(services, group, sink, tmp_path)
                backup, keys_backup = tmp_path / "backup", tmp_path / "backup-keys"
                take_backup(configured, backup, keys_backup, "os:operator")
                yield Day(
                    services, configured, group, group.web, quill, wobble, backup, sink,
                    keys_backup,
                )  # fmt: skip
            finally:
                groups.close()
    finally:
        services.close()
        smtp.stop()


def _key_file(name: str) -> bool:
    """The key custodian's part: the keyring and key files (the key store's database,
    wrapped keys and unwrap log, is the thief's, as it is in a backup's data part)."""
    return name.startswith("home/keys/") and not name.startswith("home/keys/keys.db")


def stolen(day: Day) -> list[Haystack]:
    """What the thief has: the home without its key files, the backup's data part, and
    on PostgreSQL a dump of the schema."""
    home = day.settings.home
    taken = [h for h in haystacks(home, "home") if not _key_file(h.name)]
    taken += haystacks(day.backup, "backup")
    if not day.settings.is_sqlite:
        taken.append(Haystack("pg_dump", pg_dump(day.settings)))
    return taken


ALL_SECRETS = [
    *secrets_of(QUILL, "Quillfeather"),
    *secrets_of(WOBBLE, "Wobblesprocket (erased)"),
    *secrets_of(IMPORTED, "Velvetpumpkin (imported)"),
    Secret(JUSTIFICATION, "break-the-glass justification"),
    Secret("Saikungpier", "a word of the justification"),
    Secret(BAD_BIRTH, "refused birth date quoting a name"),
    Secret(SEARCHED_NAME, "a family name searched for"),
]


def test_nothing_typed_about_a_patient_is_in_the_stolen_files(day: Day) -> None:
    taken = stolen(day)
    hits = find(taken, needles(ALL_SECRETS))
    assert not hits, describe(hits, limit=1000)


def _wrapped_key(services: Services, key_id: str) -> bytes | None:
    assert services.keys is not None
    with services.keys.engine.connect() as connection:
        found = connection.execute(
            select(data_key.c.wrapped).where(data_key.c.key_id == key_id)
        ).scalar()
    return None if found is None else bytes(found)


def _holding(root: Path, data: bytes) -> list[str]:
    return sorted(
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and data in path.read_bytes()
    )


def test_an_erased_patients_data_key_is_not_left_in_the_key_stores_files(
    services: Services, api: FhirTestClient, group_officer: Staff
) -> None:
    """Crypto-shredding leaves no copy of the destroyed (wrapped) data key on disk while
    the server runs: the key store's page as it stood before the erasure (until SQLite's
    next checkpoint) or its old frames in the -wal file. Whoever later holds those files
    and the key custodian's keyring (its KEK is not rotated at each erasure) would unwrap
    the key and read every record of the erased patient, whose ciphertext stays."""
    ids = []
    for number in range(300):
        body = {"resourceType": "Patient", "name": [{"family": f"Shredtest{number}"}]}
        ids.append(_created(None, api.post_json("/fhir/Patient", body)))
    patient = ids[7]
    pseudonym = services.vault.patient_pseudonyms([patient])[patient]
    wrapped = _wrapped_key(services, pseudonym)
    assert wrapped is not None and len(wrapped) >= 32
    assert services.keys is not None
    services.contain.erase_patient(
        Officer(group_officer.account.username, group_officer.totp()),
        pseudonym,
        "erasure request",
        services.keys,
    )
    assert _wrapped_key(services, pseudonym) is None
    assert api.get(f"/fhir/Patient/{patient}").status_code == 410
    assert _holding(services.settings.home, wrapped) == []
    if not services.settings.is_sqlite:
        # A dump holds live rows only; another patient's key shows the scan reads them.
        dump = pg_dump(services.settings)
        other = services.vault.patient_pseudonyms([ids[8]])[ids[8]]
        assert _wrapped_key(services, other) in dump
        assert wrapped not in dump


@pytest.fixture
def group_officer(services: Services) -> Staff:
    return make_staff(services, Role.PRIVACY_OFFICER, [TM])


def test_an_erasures_reason_does_not_keep_the_erased_patients_details(
    services: Services, api: FhirTestClient, group_officer: Staff
) -> None:
    body = {"resourceType": "Patient", "name": [{"family": WOBBLE["family"]}]}
    patient = _created(None, api.post_json("/fhir/Patient", body))
    pseudonym = services.vault.patient_pseudonyms([patient])[patient]
    assert services.keys is not None
    services.contain.erase_patient(
        Officer(group_officer.account.username, group_officer.totp()),
        pseudonym,
        f"erasure asked in person by {WOBBLE['given']} {WOBBLE['family']}, {WOBBLE['hkid']}",
        services.keys,
    )
    taken = [h for h in haystacks(services.settings.home, "home") if "/keys/" not in h.name]
    if not services.settings.is_sqlite:
        taken.append(Haystack("pg_dump", pg_dump(services.settings)))
    hits = find(taken, needles([Secret(WOBBLE["hkid"], "HKID"), Secret("Ulrika", "given")]))
    assert not hits, describe(hits)


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def test_an_id_no_record_holds_is_named_in_the_ledger_by_a_keyed_digest(group: Group) -> None:
    """A desk types an HKID number, then a name, where a Patient's id goes, twice each:
    the entries name the same digest for the same typed id, never the text; a record that
    exists but is refused (another clinic's observation, 403 to this doctor) keeps its id,
    which is what the detectors and that patient's access report read."""
    typed = [re.sub(r"[()]", "", WOBBLE["hkid"]), QUILL["family"]]
    for wrong in typed * 2:
        assert group.call(group.desk_tm, "GET", f"/fhir/Patient/{wrong}").status_code == 404
    hidden = group.tw_patient.observation
    assert group.call(group.doctor_tm, "GET", f"/fhir/Observation/{hidden}").status_code == 403
    entries = b"".join(data for _, data in group.services.audit_ledger.store.entries())
    assert [wrong for wrong in typed if wrong.encode() in entries] == []
    refused = [e for e in group.events(Tag.FHIR_READ) if e.outcome is not Outcome.SUCCESS]
    named = [(e.resource_id, e.reason) for e in refused]
    digests = [group.services.vault.unknown_id("Patient", wrong) for wrong in typed]
    assert named[:4] == [(d, f"Patient/{d} is not known") for d in digests * 2]
    assert all(d.startswith("unknown-") and len(d) <= 64 for d in digests)
    assert refused[4].resource_id == hidden


def test_a_refused_requests_path_keeps_the_routes_words_only(group: Group) -> None:
    """The officer asks for the access report of an HKID number typed as the patient's
    id: 404 before the gate, recorded as ``web:request:refused`` with the route's shape."""
    wrong = re.sub(r"[()]", "", WOBBLE["hkid"])
    path = f"/audit/patients/{wrong}/access-report"
    assert group.call(group.officer, "GET", path).status_code == 404
    (entry,) = [e for e in group.events(Tag.REQUEST_REFUSED) if e.detail.get("status") == 404]
    assert entry.detail["path"] == "/audit/patients/{}/access-report"
