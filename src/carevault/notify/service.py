"""Breach notification wired from settings: the sender, the channels, the job, the
verifier. Built on demand by the CLI and the web app from the running services."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from carevault.clock import from_micros
from carevault.config import Settings
from carevault.notify.channels import Channel
from carevault.notify.codes import CodeKeys
from carevault.notify.job import Pacing, Reader, SendJob
from carevault.notify.letters import LetterChannel
from carevault.notify.mail import DkimSigner, SmtpChannel, dkim_key
from carevault.notify.notice import Sender
from carevault.notify.sms import SmsGatewayChannel
from carevault.notify.store import NoticeStore
from carevault.notify.verify import CodeAddresses, Verifier
from carevault.notify.wording import day

if TYPE_CHECKING:
    from carevault.bootstrap import Services


def site_of(settings: Settings) -> str:
    if settings.notify_site:
        return settings.notify_site
    if settings.public_base_url:
        return urlsplit(settings.public_base_url).netloc
    return "127.0.0.1:8000"


def sender_of(settings: Settings) -> Sender:
    return Sender(
        name_en=settings.notify_group_name,
        name_zh=settings.notify_group_name_zh,
        site=site_of(settings),
        hotline=settings.notify_hotline,
        contact_name=settings.notify_contact_name,
        zone=ZoneInfo(settings.timezone),
        contact_name_zh=contact_name_zh(settings),
        code_days=settings.notify_code_days,
    )


#: The default contact (``Settings.notify_contact_name``) as Chinese notices name it.
DEFAULT_CONTACT_ZH = "保障資料主任"


def contact_name_zh(settings: Settings) -> str:
    """The contact a Chinese notice names: the setting; else, while the English contact is
    the default role ("The Data Protection Officer"), that role in Chinese; else the
    English name as configured (a person's name reads the same in both notices)."""
    if settings.notify_contact_name_zh:
        return settings.notify_contact_name_zh
    default = type(settings).model_fields["notify_contact_name"].default
    return (
        DEFAULT_CONTACT_ZH
        if settings.notify_contact_name == default
        else (settings.notify_contact_name)
    )


def code_keys(settings: Settings) -> CodeKeys:
    return CodeKeys.from_file(settings.home / "keys" / "notice-codes.key")


def letters_dir(settings: Settings) -> Path:
    return settings.notify_letters_dir or settings.home / "notify" / "letters"


def channels_of(settings: Settings, now_us: int) -> dict[str, Channel]:
    sender = settings.smtp_from
    domain = settings.dkim_domain or sender.rsplit("@", 1)[-1]
    signer = DkimSigner(
        dkim_key(settings.resolved_dkim_key_path, create=True), domain, settings.dkim_selector
    )
    channels: dict[str, Channel] = {
        "email": SmtpChannel(
            settings.smtp_host,
            settings.smtp_port,
            sender=sender,
            sender_name=settings.notify_group_name,
            signer=signer,
            timeout=settings.smtp_timeout,
            starttls=settings.smtp_starttls,
            ca_file=settings.smtp_ca_file,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        )
    }
    if settings.sms_gateway_url:
        token = settings.sms_gateway_token
        channels["sms"] = SmsGatewayChannel(
            settings.sms_gateway_url, token.get_secret_value() if token else None
        )
    zone = ZoneInfo(settings.timezone)
    channels["letter"] = LetterChannel(
        letters_dir(settings),
        settings.pdf_font,
        day(from_micros(now_us), "en", zone) + " / " + day(from_micros(now_us), "zh", zone),
        {"en": settings.notify_group_name, "zh": settings.notify_group_name_zh},
    )
    return channels


def reader_of(services: Services) -> Reader:
    zone = ZoneInfo(services.settings.timezone)

    def today() -> date:
        return services.clock().astimezone(zone).date()

    return Reader(services.gate, today, services.audit_ledger.store)


def send_job(services: Services, channels: dict[str, Channel] | None = None) -> SendJob:
    settings = services.settings
    return SendJob(
        store=NoticeStore(services.engine),
        reader=reader_of(services),
        channels=channels if channels is not None else channels_of(settings, services.now_us()),
        codes=code_keys(settings),
        sender=sender_of(settings),
        audit=services.audit,
        pacing=Pacing(
            rate=settings.notify_rate,
            attempts=settings.notify_attempts,
            retry_seconds=settings.notify_retry_seconds,
            batch=settings.notify_batch,
            lanes=settings.notify_lanes,
        ),
        now_us=services.now_us,
        journal=settings.notify_journal_dir,
        dsn=settings.notify_dsn_dir,
    )


def verifier_of(services: Services, per_code: CodeAddresses | None = None) -> Verifier:
    return Verifier(
        NoticeStore(services.engine), code_keys(services.settings), services.audit,
        services.now_us, per_code, code_days=services.settings.notify_code_days,
    )  # fmt: skip
