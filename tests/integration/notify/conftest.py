"""A clinic of a dozen patients, an attacker's reads, a real SMTP server, a fake SMS
gateway: the send job runs against all of them on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from carevault.bootstrap import Services, build_services
from carevault.config import Settings
from carevault.notify.sms import FakeSmsGateway
from tests.conftest import make_settings
from tests.support.notify import (
    MailSink,
    Person,
    attack,
    scope_from_ledger,
    smtp_server,
    write_people,
)

LONG = "Chan" * 125  # 500 characters
GUARDIAN = {
    "relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
                                  "code": "GUARD"}]}],
    "name": {"family": "Wong", "given": ["Mei Ling"]},
    "telecom": [{"system": "email", "value": "guardian.wong@example.org"}],
}  # fmt: skip

PEOPLE = [
    Person("en_email", "Smith", "Alice", "en", email="alice@example.com", clinical=True),
    Person(
        "zh_email", "陳", "大文", "yue", email="chan.taiman@example.net", hkid="A123456(3)"
    ),  # fmt: skip
    Person("zh_hant", "李", "小明", "zh-HK", email="lee@example.org"),
    Person("sms_only", "Patel", "Ravi", "en", phone="+852 9123 4567"),
    Person(
        "letter_only",
        "何",
        "美玲",
        "yue",
        clinical=True,
        address=("香港九龍彌敦道100號5樓", "油麻地"),
    ),  # fmt: skip
    Person("minor", "Wong", "Kit", "en", birth="2015-03-02", guardian=GUARDIAN),
    Person("deceased", "Lam", "Old", "en", email="lam@example.com", deceased=True),
    Person(
        "hostile",
        "\u202eRTL" + LONG,
        "<b>Evil</b>\r\nBcc: victim@example.com",
        "en",
        email="hostile@example.com",
        address=("<script>alert(1)</script>\r\nLine", "X" * 500),
    ),  # fmt: skip
    Person("bounces", "Ng", "Bounce", "en", email="gone@example.com", phone="+852 6123 4567"),
]
BYSTANDER = Person("bystander", "Tse", "Safe", "en", email="safe@example.com")


@dataclass
class Clinic:
    services: Services
    settings: Settings
    ids: dict[str, str]
    scope: dict[str, Any]
    sink: MailSink
    sms: FakeSmsGateway
    smtp: Controller
    home: Path


def notify_settings(home: Path, database_url: str | None, smtp_port: int, sms_url: str,
                    **extra: Any) -> Settings:  # fmt: skip
    return make_settings(
        home,
        database_url,
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        smtp_from="notices@clinics.example.hk",
        sms_gateway_url=sms_url,
        notify_journal_dir=home.parent / "journal",
        notify_letters_dir=home.parent / "letters",
        notify_rate=1000.0,
        notify_retry_seconds=0.05,
        notify_site="clinics.example.hk",
        public_base_url="https://clinics.example.hk",
        **extra,
    )


@pytest.fixture
def clinic(settings: Settings, tmp_path: Path) -> Iterator[Clinic]:
    smtp, sink = smtp_server(tmp_path / "journal")
    sms = FakeSmsGateway().start()
    configured = notify_settings(settings.home, settings.database_url, smtp.port, sms.url)
    services = build_services(configured, create_keys=True, migrate=True)
    try:
        ids = write_people(services, [*PEOPLE, BYSTANDER])
        attack(services, PEOPLE, ids)
        scope = scope_from_ledger(services, "INC-2026-001")
        yield Clinic(services, configured, ids, scope, sink, sms, smtp, tmp_path)
    finally:
        services.close()
        smtp.stop()
        sms.stop()
