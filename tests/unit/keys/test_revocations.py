"""The register of revocations and step-ups beside the keyring (``keys.revocations``):
what its lines say, the pruning rule, and several processes appending, reading and
rewriting it at once."""

from __future__ import annotations

import threading
from pathlib import Path

from carevault.keys.revocations import (
    AFTER_EXPIRY_US,
    COMPACT_BYTES,
    RegisterIndex,
    RevocationRegister,
    client_line,
    met_line,
    revoked_line,
    step_up_line,
)

HOUR_US = 3600 * 1_000_000
NOW_US = 1_800_000_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now_us = NOW_US

    def __call__(self) -> int:
        return self.now_us


def _index(*lines: str) -> RegisterIndex:
    index = RegisterIndex()
    for line in lines:
        index.add(line)
    return index


def test_a_step_up_is_due_until_a_line_names_it_met_in_any_order() -> None:
    expires = NOW_US + HOUR_US
    asked_first = _index(step_up_line("s1", 10, expires), met_line("s1", [10], expires))
    met_first = _index(met_line("s1", [10], expires), step_up_line("s1", 10, expires))
    assert asked_first.step_ups("s1") == met_first.step_ups("s1") == frozenset()
    again = _index(
        step_up_line("s1", 10, expires),
        met_line("s1", [10], expires),
        step_up_line("s1", 20, expires),
    )
    assert again.step_ups("s1") == frozenset({20})
    assert again.session_revoked("s1") is None


def test_a_line_cut_short_is_skipped_and_the_rest_still_read() -> None:
    index = _index('{"session": "s1", "revok', "", revoked_line("s2", 5, NOW_US), "[1]")
    assert index.session_revoked("s1") is None
    assert index.session_revoked("s2") == 5


def test_what_no_longer_matters_is_dropped_and_apps_are_kept() -> None:
    """The pruning rule: a session's lines go a day after its sealed expiry; a met
    step-up goes with what asked it; a revoked session keeps only its revocation; an
    app's revocation is kept for good."""
    live = NOW_US + HOUR_US
    gone = NOW_US - AFTER_EXPIRY_US - 1
    lately = NOW_US - HOUR_US  # expired an hour ago: within the day kept after
    index = _index(
        revoked_line("old", 1, gone),
        step_up_line("old-step", 1, gone),
        revoked_line("recent", 2, lately),
        step_up_line("met", 3, live),
        met_line("met", [3], live),
        step_up_line("due", 4, live),
        step_up_line("revoked", 5, live),
        revoked_line("revoked", 6, live),
        client_line("feed", 7),
    )
    kept = _index(*index.lines(NOW_US))
    assert set(kept.sessions) == {"recent", "due", "revoked"}
    assert kept.session_revoked("recent") == 2
    assert kept.step_ups("due") == frozenset({4})
    assert kept.session_revoked("revoked") == 6 and not kept.sessions["revoked"].asked
    assert kept.client_revoked("feed") == 7
    assert kept.lines(NOW_US) == index.lines(NOW_US)


def test_another_process_reads_what_one_appends(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "revocations"
    writer, reader = RevocationRegister(path, clock), RevocationRegister(path, clock)
    assert reader.session_revoked("s1") is None  # no file yet
    writer.append([revoked_line("s1", 1, NOW_US + HOUR_US)])
    assert reader.session_revoked("s1") == 1
    writer.append([step_up_line("s2", 2, NOW_US + HOUR_US), client_line("feed", 3)])
    assert reader.step_ups("s2") == frozenset({2})
    assert reader.client_revoked("feed") == 3
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_part_line_is_read_whole_once_it_is_finished(tmp_path: Path) -> None:
    """A write under way (or cut short by a crash) is not taken for a line, and never
    joins the next one: each append is framed by newlines."""
    path = tmp_path / "revocations"
    register = RevocationRegister(path, Clock())
    line = revoked_line("s1", 1, NOW_US + HOUR_US)
    path.write_text(line[:20])
    assert register.session_revoked("s1") is None
    register.append([revoked_line("s2", 2, NOW_US + HOUR_US)])
    assert register.session_revoked("s2") == 2
    with path.open("a") as handle:
        handle.write(line[:20])
    assert register.session_revoked("s1") is None
    with path.open("a") as handle:
        handle.write(line[20:] + "\n")
    assert register.session_revoked("s1") == 1


def test_the_register_stays_bounded_however_many_sign_outs(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "revocations"
    register = RevocationRegister(path, clock)
    reader = RevocationRegister(path, clock)
    for day in range(4):
        for n in range(2_000):
            session = f"s{day}-{n}"
            register.append([revoked_line(session, clock.now_us, clock.now_us + 12 * HOUR_US)])
        assert reader.session_revoked(f"s{day}-0") is not None
        clock.now_us += 24 * HOUR_US
    register.append([client_line("feed", clock.now_us)])
    # Four days of 2,000 sign-outs; only the last day's (and the day before's, within
    # the day kept after their expiry) may be left.
    size = path.stat().st_size
    assert size < 2 * max(COMPACT_BYTES, 2 * 2_000 * 80)
    register.compact()
    # Day 2's sessions expired 36 hours ago (beyond the day kept after); day 3's 12.
    assert reader.session_revoked("s2-1999") is None
    assert reader.session_revoked("s3-0") is not None
    assert reader.client_revoked("feed") is not None


def test_appends_racing_a_rewrite_are_never_lost(tmp_path: Path) -> None:
    """Processes appending while another rewrites the file: each appender lands in the
    file that is the register (it waits on the lock and opens the new one)."""
    clock = Clock()
    path = tmp_path / "revocations"
    RevocationRegister(path, clock).append(
        [revoked_line(f"old{n}", 1, NOW_US - AFTER_EXPIRY_US - 1) for n in range(3_000)]
    )
    stop = threading.Event()

    def rewrite() -> None:
        rewriter = RevocationRegister(path, clock)
        while not stop.is_set():
            rewriter.compact()

    def append(name: str) -> None:
        writer = RevocationRegister(path, clock)
        for n in range(200):
            writer.append([revoked_line(f"{name}{n}", 2, NOW_US + HOUR_US)])

    rewriter = threading.Thread(target=rewrite)
    rewriter.start()
    appenders = [threading.Thread(target=append, args=(name,)) for name in "abc"]
    for thread in appenders:
        thread.start()
    for thread in appenders:
        thread.join()
    stop.set()
    rewriter.join()
    reader = RevocationRegister(path, clock)
    assert all(reader.session_revoked(f"{name}{n}") == 2 for name in "abc" for n in range(200))
    assert reader.session_revoked("old0") is None


def test_a_reader_alive_across_rewrites_sees_what_the_last_file_holds(tmp_path: Path) -> None:
    """A reader that read once, then another process rewrites the file, appends a
    revocation and rewrites again: the reader sees it. It compared inode numbers only,
    and Linux gave the freed inode's number to the next rewrite at once: the reader read
    on past the end of a shorter file, found nothing and kept what it knew (review of
    stop 57: a copied-back row honoured in that process). Whatever the inodes, many
    times over."""
    clock = Clock()
    path = tmp_path / "revocations"
    expired = NOW_US - AFTER_EXPIRY_US - HOUR_US
    for attempt in range(50):
        writer = RevocationRegister(path, clock)
        reader = RevocationRegister(path, clock)
        # Enough old lines that each rewrite makes the file shorter.
        writer.append(revoked_line(f"old-{attempt}-{n}", 1, expired) for n in range(40))
        assert reader.session_revoked(f"victim-{attempt}") is None
        writer.compact()
        writer.append([revoked_line(f"victim-{attempt}", 7, NOW_US + HOUR_US)])
        writer.append(revoked_line(f"old2-{attempt}-{n}", 1, expired) for n in range(40))
        writer.compact()
        assert reader.session_revoked(f"victim-{attempt}") == 7, attempt
