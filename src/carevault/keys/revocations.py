"""Sessions revoked or paused for a step-up, and client apps revoked, kept beside the
keyring, outside the database.

A session's row and a client app's row are sealed (adversary rounds 70 and 69): a seal
says a row is as CareVault once wrote it, not that it is the latest row CareVault wrote.
Someone who may write to the database but holds no key saved a session's row before a
sign-out, an officer's revocation or a detector's step-up, and wrote it back after, old
seal and all: the session was live again, or its step-up lifted; a client app's row
written back got tokens again (review of round 70). So each of these is written here
too, in the custodian's part (B7), as the erasures and the containment measures are
(``keys.shreds``, ``keys.measures``), and what the register says wins over the row: a
session it names as revoked stays revoked, a step-up it names stays asked until it names
the step-up met, an app it names as revoked stays revoked.

One JSON object a line, never a person's name nor a patient (ids and times only)::

    {"session": ID, "revoked_us": R, "expires_us": E}      revoked at R
    {"session": ID, "step_up_us": T, "expires_us": E}      a step-up asked at T
    {"session": ID, "met": [T, ...], "expires_us": E}      those step-ups met
    {"client": ID, "revoked_us": R}                        a client app revoked

``E`` is the session's expiry as its row held it when the line was written (the seal
covers it, and nothing changes it in a session's life).

Pruning. A session's lines matter only while some genuine row of the session could let
it act: a row copied back holds the sealed expiry ``E``, and after ``E`` every request
is refused for expiry. Work that outlives its token (an approved export or import:
``Sessions.standing``) is judged without the expiry, but is stopped by the workers'
sweep within seconds of a revocation; a day more covers a worker that was down. So a
session's lines are dropped once ``E + AFTER_EXPIRY_US`` has passed, and a met step-up
with the lines that asked it, and a step-up of a revoked session. A client app's
revocation is kept for good: an app is never re-enabled (a new one is registered), and
there are few. The file is rewritten without what it no longer needs (``compact``)
when it has grown to twice its size after the last rewrite (at least ``COMPACT_BYTES``),
and at each start: it stays within twice the lines of the sessions revoked or paused in
the last ``session_max_seconds`` and a day, whatever the number of sign-outs before.

Several processes share it. Lines are appended with ``O_APPEND`` under a shared
``flock`` of the file, each write framed by newlines (a line cut short by a crash never
joins the next), and fsynced before returning; a rewrite takes the lock exclusively,
writes a new file and renames it over the old (and fsyncs the folder), so an appender
waiting on the old file sees it is no longer the register and opens the new one. A
reader stats the file at each check and reads only when its inode, size or time moved
(only what was appended, unless it was rewritten): a check costs a ``stat``.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import threading
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from carevault.keys.files import write_private

log = logging.getLogger("carevault.keys")

#: The register's file name, beside the keyring (``revocations_path``).
REVOCATIONS = "revocations"

#: How long after a session's sealed expiry its lines are kept (see the module's text).
AFTER_EXPIRY_US = 24 * 3600 * 1_000_000

#: The first bytes of the file a reader compares to tell a rewritten file (whose
#: generation line, some 50 bytes, is its first) from the one it read.
_HEAD = 64

#: Below this size the file is never rewritten.
COMPACT_BYTES = 64 * 1024

#: How long after a line was written a row that says less is told as written back: a
#: revocation or step-up is written here inside its transaction, before the commit, and
#: another process reading the row in between is not looking at a row written back.
WRITTEN_BACK_AFTER_US = 30 * 1_000_000


def revocations_path(keyring: Path) -> Path:
    """Where the register of a home whose keyring is ``keyring`` is kept."""
    return keyring.with_name(REVOCATIONS)


@dataclass
class _Session:
    expires_us: int
    revoked_us: int | None = None
    asked: set[int] = field(default_factory=set)
    met: set[int] = field(default_factory=set)


@dataclass
class RegisterIndex:
    """What the register's lines say, folded: pure, the order of lines does not matter
    (processes append at once)."""

    sessions: dict[str, _Session] = field(default_factory=dict)
    clients: dict[str, int] = field(default_factory=dict)

    def add(self, line: str) -> None:
        """Fold one line in; one that does not read (cut short by a crash) is skipped."""
        if not line.strip():
            return
        try:
            entry = json.loads(line)
            if "client" in entry:
                client_id, revoked_us = str(entry["client"]), int(entry["revoked_us"])
                self.clients[client_id] = min(revoked_us, self.clients.get(client_id, revoked_us))
                return
            session_id, expires_us = str(entry["session"]), int(entry["expires_us"])
            session = self.sessions.setdefault(session_id, _Session(expires_us))
            session.expires_us = max(session.expires_us, expires_us)
            if "revoked_us" in entry:
                revoked_us = int(entry["revoked_us"])
                if session.revoked_us is None or revoked_us < session.revoked_us:
                    session.revoked_us = revoked_us
            elif "step_up_us" in entry:
                session.asked.add(int(entry["step_up_us"]))
            else:
                session.met.update(int(asked) for asked in entry["met"])
        except (ValueError, KeyError, TypeError, AttributeError):
            return

    def session_revoked(self, session_id: str) -> int | None:
        """When the register says the session was revoked, or None."""
        session = self.sessions.get(session_id)
        return None if session is None else session.revoked_us

    def step_ups(self, session_id: str) -> frozenset[int]:
        """The step-ups asked of the session and not met, by when they were asked."""
        session = self.sessions.get(session_id)
        return frozenset() if session is None else frozenset(session.asked - session.met)

    def client_revoked(self, client_id: str) -> int | None:
        return self.clients.get(client_id)

    def lines(self, now_us: int) -> list[str]:
        """What still matters at ``now_us``, as lines (the pruning rule)."""
        kept = [client_line(client_id, at) for client_id, at in sorted(self.clients.items())]
        for session_id, session in sorted(self.sessions.items()):
            if session.expires_us + AFTER_EXPIRY_US <= now_us:
                continue
            if session.revoked_us is not None:
                kept.append(revoked_line(session_id, session.revoked_us, session.expires_us))
                continue
            kept.extend(
                step_up_line(session_id, asked, session.expires_us)
                for asked in sorted(session.asked - session.met)
            )
        return kept


def revoked_line(session_id: str, revoked_us: int, expires_us: int) -> str:
    return json.dumps({"session": session_id, "revoked_us": revoked_us, "expires_us": expires_us})


def step_up_line(session_id: str, step_up_us: int, expires_us: int) -> str:
    return json.dumps({"session": session_id, "step_up_us": step_up_us, "expires_us": expires_us})


def met_line(session_id: str, asked: Collection[int], expires_us: int) -> str:
    return json.dumps({"session": session_id, "met": sorted(asked), "expires_us": expires_us})


def client_line(client_id: str, revoked_us: int) -> str:
    return json.dumps({"client": client_id, "revoked_us": revoked_us})


class RevocationRegister:
    """The register at ``path``; ``now_us`` the services' clock (for pruning)."""

    def __init__(self, path: Path, now_us: Callable[[], int]) -> None:
        self.path = path
        self.now_us = now_us
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._offset = 0
        #: The file's first bytes as last read (at most ``_HEAD``): a rewrite changes them.
        self._head = b""
        self._index = RegisterIndex()
        #: The size the file may grow to before this process rewrites it.
        self._compact_at = COMPACT_BYTES

    # --- writing -----------------------------------------------------------------------

    def append(self, lines: Iterable[str]) -> None:
        """Append ``lines``, durably (fsynced) before returning; raises ``OSError`` if the
        register cannot be written. Rewrites the file if it has grown enough."""
        written = list(lines)
        if not written:
            return
        if any("\n" in line or "\r" in line for line in written):
            raise ValueError("one line at a time")
        data = ("\n" + "\n".join(written) + "\n").encode()
        with self._locked(fcntl.LOCK_SH) as fd:
            os.write(fd, data)
            os.fsync(fd)
            size = os.fstat(fd).st_size
        if size >= self._compact_at:
            # The lines are written: a rewrite that fails is the register's size, not a
            # lost revocation, and is tried again when the file has doubled.
            try:
                self.compact()
            except OSError as error:
                self._compact_at = 2 * size
                log.error(
                    "the revocations' register beside the keyring: not rewritten: %s",
                    error.strerror or type(error).__name__,
                )

    def compact(self) -> int:
        """Rewrite the file with only the lines that still matter (the module's rule);
        returns how many bytes it dropped."""
        try:
            self.path.stat()
        except FileNotFoundError:
            return 0
        with self._locked(fcntl.LOCK_EX) as fd:
            before = _read_from(fd, 0)
            index = RegisterIndex()
            for line in before.decode(errors="replace").split("\n"):
                index.add(line)
            kept = index.lines(self.now_us())
            # A rewritten file begins with a generation of its own: a reader tells it from
            # the file it read before by its first bytes, whatever its inode (Linux gives
            # a freed inode's number again at once: review of stop 57).
            generation = json.dumps({"generation": secrets.token_hex(16)})
            after = "".join(f"{line}\n" for line in (generation, *kept)).encode()
            if len(after) < len(before):
                _replace(self.path, after)
            size = min(len(after), len(before))
        self._compact_at = max(COMPACT_BYTES, 2 * size)
        return len(before) - size

    @contextmanager
    def _locked(self, mode: int) -> Iterator[int]:
        """The register's file open for appending, locked ``mode``: the file now at
        ``path`` (one renamed over it while this waited is opened again)."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                fcntl.flock(fd, mode)
                try:
                    current = os.stat(self.path).st_ino == os.fstat(fd).st_ino
                except FileNotFoundError:
                    current = False
            except BaseException:
                os.close(fd)
                raise
            if current:
                break
            os.close(fd)
        try:
            yield fd
        finally:
            os.close(fd)

    # --- reading -----------------------------------------------------------------------

    def session_revoked(self, session_id: str) -> int | None:
        """When the register says the session was revoked, or None."""
        return self.session(session_id)[0]

    def session(self, session_id: str) -> tuple[int | None, frozenset[int]]:
        """What the register holds of the session, for one ``stat``: when it was revoked
        (or None), and the step-ups asked of it and not met."""
        self._refresh()
        with self._lock:
            return self._index.session_revoked(session_id), self._index.step_ups(session_id)

    def step_ups(self, session_id: str) -> frozenset[int]:
        """The step-ups asked of the session and not met, by when they were asked."""
        self._refresh()
        with self._lock:
            return self._index.step_ups(session_id)

    def client_revoked(self, client_id: str) -> int | None:
        """When the register says the client app was revoked, or None."""
        self._refresh()
        with self._lock:
            return self._index.client_revoked(client_id)

    def _refresh(self) -> None:
        """Bring what this process knows up to the file: a ``stat``, and a read only if
        the file changed (what was appended since the last read, or the whole of a
        rewritten file). A register that cannot be read raises ``OSError`` (the caller
        decides); one that is gone leaves this process with what it last read."""
        try:
            status = os.stat(self.path)
        except FileNotFoundError:
            return
        if (status.st_ino, status.st_size, status.st_mtime_ns) == self._stamp:
            return
        with self._lock:
            self._reload()

    def _reload(self) -> None:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            status = os.fstat(fd)
            head = os.pread(fd, _HEAD, 0)
            # The same file as read before, grown: the same inode, no shorter than what was
            # read, and the same first bytes (a rewrite's generation line differs, even
            # where the rewritten file was given the freed inode's number again).
            grown = (
                self._stamp is not None
                and status.st_ino == self._stamp[0]
                and status.st_size >= self._offset
                and head[: len(self._head)] == self._head
            )
            index, offset = (self._index, self._offset) if grown else (RegisterIndex(), 0)
            tail = _read_from(fd, offset)
        finally:
            os.close(fd)
        # Only whole lines: a write under way shows the rest at the next read.
        end = tail.rfind(b"\n") + 1
        for line in tail[:end].decode(errors="replace").split("\n"):
            index.add(line)
        self._index, self._offset = index, offset + end
        self._head = head[: self._offset]
        # The size read up to: a part line left over does not match, and is read again.
        self._stamp = (status.st_ino, self._offset, status.st_mtime_ns)


def _read_from(fd: int, offset: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        chunk = os.pread(fd, 1 << 20, offset)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        offset += len(chunk)


def _replace(path: Path, content: bytes) -> None:
    """Put ``content`` at ``path`` whole (0600), the rename made durable: lines appended
    to the new file after it must not be lost to the old one coming back."""
    write_private(path, content, durable_rename=True)
