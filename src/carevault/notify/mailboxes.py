"""What the mail system tells us after the fact: the relay's journal (every message it
accepted) and delivery status notifications (RFC 3464 bounces), both read as Maildirs.

Both name a notice only by the ``Message-ID`` derived from its key.
"""

from __future__ import annotations

import mailbox
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

_NOTICE_ID = re.compile(r"<notice\.([0-9a-f]{32})@")


def journal_keys(directory: Path | None) -> set[str]:
    """Keys of every notice the relay's journal holds."""
    if directory is None or not directory.is_dir():
        return set()
    found: set[str] = set()
    box = mailbox.Maildir(str(directory), factory=None, create=False)
    for key in box.iterkeys():
        with box.get_file(key) as handle:
            head = handle.read(8192).decode("latin-1", "replace")
        for match in _NOTICE_ID.finditer(head.split("\r\n\r\n", 1)[0].split("\n\n", 1)[0]):
            found.add(match.group(1))
    return found


@dataclass(frozen=True)
class Bounce:
    notice_key: str
    address: str | None
    status: str
    mail_key: str


def _parts(message: Message) -> Iterator[Message]:
    if message.is_multipart():
        for part in message.get_payload():
            if isinstance(part, Message):
                yield part
                yield from _parts(part)


def _failed_recipients(report: Message) -> list[tuple[str | None, str]]:
    """(address, status) of every failed recipient of a message/delivery-status part."""
    found: list[tuple[str | None, str]] = []
    groups = report.get_payload()
    if not isinstance(groups, list):
        return found
    for group in groups[1:] if len(groups) > 1 else groups:
        if not isinstance(group, Message):
            continue
        if str(group.get("Action", "")).strip().lower() != "failed":
            continue
        final = str(group.get("Final-Recipient", ""))
        address = final.split(";", 1)[1].strip() if ";" in final else None
        found.append((address, str(group.get("Status", "5.0.0")).strip()))
    return found


def read_bounces(directory: Path | None) -> list[Bounce]:
    """Failed deliveries in the DSN Maildir, for notices of ours."""
    if directory is None or not directory.is_dir():
        return []
    bounces: list[Bounce] = []
    box = mailbox.Maildir(str(directory), create=False)
    for mail_key, message in box.iteritems():
        if message.get_content_type() != "multipart/report":
            continue
        failed: list[tuple[str | None, str]] = []
        notice: str | None = None
        for part in _parts(message):
            kind = part.get_content_type()
            if kind == "message/delivery-status":
                failed += _failed_recipients(part)
            elif kind in ("text/rfc822-headers", "message/rfc822"):
                text = part.as_string()
                match = _NOTICE_ID.search(text)
                if match:
                    notice = match.group(1)
        if notice is None:
            continue
        for address, status in failed:
            if status.startswith("5"):
                bounces.append(Bounce(notice, address, status, mail_key))
    return bounces
