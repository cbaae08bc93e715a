"""What several server processes share about notices, through the database: /verify's
rate limits (two processes together get what one would) and the send job of an
incident (one process at a time; a dead one's job is taken over at once)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from carevault.bootstrap import Services
from carevault.config import Settings
from carevault.notify.job import JobRunning
from carevault.notify.lease import lease_owner, owner_alive
from carevault.notify.limits import SharedBuckets
from carevault.notify.scope import parse_scope
from carevault.notify.service import send_job
from carevault.notify.store import NoticeStore

pytestmark = pytest.mark.postgres

HAMMER = textwrap.dedent(
    """
    import sys, time
    from carevault.db import make_engine
    from carevault.notify.limits import SharedBuckets
    url, address = sys.argv[1], sys.argv[2]
    limits = SharedBuckets(make_engine(url), lambda: int(time.time() * 1e6),
                           per_address=(0.001, 10), everyone=(0.001, 16))
    print("ready", flush=True)
    sys.stdin.readline()
    print(sum(1 for _ in range(12) if limits.take(address) == 0))
    """
)


def _hammer(url: str, addresses: list[str]) -> list[int]:
    """One process per address, all starting together once every one is ready (rather
    than at a moment fixed in advance, which had to allow for the slowest start-up); the
    checks each was allowed."""
    processes = [
        subprocess.Popen(  # noqa: S603 - this interpreter, our own script
            [sys.executable, "-c", HAMMER, url, address],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for address in addresses
    ]
    for process in processes:
        assert process.stdout is not None
        ready = process.stdout.readline()
        assert ready == b"ready\n", process.stderr.read().decode()[-2000:] if process.stderr else ""
    for process in processes:
        assert process.stdin is not None
        process.stdin.write(b"go\n")
        process.stdin.flush()
    allowed = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err.decode()[-2000:]
        allowed.append(int(out.decode().split()[-1]))
    return allowed


def test_two_processes_share_the_limit_of_one_address(
    settings: Settings, services: Services
) -> None:
    # The same address through two server processes: 10 checks in all, not 10 each.
    allowed = _hammer(settings.resolved_database_url, ["203.0.113.7", "203.0.113.7"])
    assert sum(allowed) == 10
    # Both processes drew on the one bucket everyone shares (16): 6 left for others.
    limits = SharedBuckets(
        services.engine, services.now_us, per_address=(0.001, 10), everyone=(0.001, 16)
    )
    others = [limits.take(f"198.51.100.{n}") for n in range(1, 10)]
    assert others.count(0) == 6
    assert all(wait >= 1 for wait in others[6:])


def test_two_processes_share_the_global_verify_limit(
    settings: Settings, services: Services
) -> None:
    allowed = _hammer(settings.resolved_database_url, ["192.0.2.1", "192.0.2.2"])
    assert sum(allowed) == 16


def test_an_ipv6_host_counts_as_its_64(services: Services) -> None:
    limits = SharedBuckets(
        services.engine, services.now_us, per_address=(0.001, 3), everyone=(100.0, 100)
    )
    answers = [limits.take(f"2001:db8:1:2::{n}") for n in range(1, 6)]
    assert answers[:3] == [0, 0, 0] and all(wait > 0 for wait in answers[3:])
    assert limits.take("2001:db8:1:3::1") == 0


HOLDER = textwrap.dedent(
    """
    import sys, time
    from carevault.db import make_engine
    from carevault.notify.lease import lease_owner
    from carevault.notify.store import NoticeStore
    store = NoticeStore(make_engine(sys.argv[1]))
    owner = lease_owner()
    assert store.start_job(sys.argv[2], ("confirmed",), 1, int(time.time() * 1e6),
                           owner=owner, lease_us=600_000_000)
    print(owner, flush=True)
    time.sleep(120)
    """
)


def test_one_process_at_a_time_sends_an_incidents_notices(
    settings: Settings, services: Services, tmp_path: Path
) -> None:
    scope = parse_scope(
        {
            "incident": {"id": "INC-LEASE", "title": "t", "declared_at": "2026-12-01T00:00:00Z",
                         "compromised": {"accounts": ["staff:x"]}},
            "tiers": {"confirmed": [{"patient": "nobody", "categories": ["contact"]}]},
        }
    )  # fmt: skip
    holder = subprocess.Popen(  # noqa: S603 - this interpreter, our own script
        [sys.executable, "-c", HOLDER, settings.resolved_database_url, "INC-LEASE"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        owner = holder.stdout.readline().decode().strip()
        assert owner, holder.stderr.read().decode() if holder.stderr else ""
        assert owner_alive(owner)
        store = NoticeStore(services.engine)
        assert store.running("INC-LEASE", services.now_us())
        with pytest.raises(JobRunning):
            send_job(services).run(scope, ("confirmed",))
        assert store.rows("INC-LEASE") == {}
    finally:
        holder.kill()
        holder.communicate(timeout=30)
    # Its process is gone: the job is taken over at once, and the lease let go after.
    assert not owner_alive(owner)
    progress = send_job(services).run(scope, ("confirmed",))
    assert progress.done == 1 and progress.skipped == 1
    assert not NoticeStore(services.engine).running("INC-LEASE", services.now_us())


def test_a_lease_of_another_host_holds_until_it_runs_out(services: Services) -> None:
    store = NoticeStore(services.engine)
    now = services.now_us()
    elsewhere = "other-host.example:4242:abcd"
    assert owner_alive(elsewhere)
    assert store.start_job("INC-X", ("confirmed",), 1, now, owner=elsewhere, lease_us=10**6,
                           alive=owner_alive)  # fmt: skip
    mine = lease_owner()
    assert not store.start_job("INC-X", ("confirmed",), 1, now, owner=mine, lease_us=10**6,
                               alive=owner_alive)  # fmt: skip
    assert not store.renew_lease("INC-X", mine, now, 10**6)
    later = now + 2 * 10**6
    assert store.start_job("INC-X", ("confirmed",), 1, later, owner=mine, lease_us=10**6,
                           alive=owner_alive)  # fmt: skip
    assert not store.renew_lease("INC-X", elsewhere, later, 10**6)


def test_lanes_finishing_together_each_return_only_once_their_notice_is_sent(
    services: Services,
) -> None:
    import threading

    from carevault.ledger.events import AuditEvent, Tag
    from carevault.notify import store as states
    from carevault.notify.audit import notice_event
    from carevault.notify.delivery import SentCommits

    store = NoticeStore(services.engine)
    keys = [f"{n:032x}" for n in range(24)]
    store.insert(
        [
            {"notice_key": key, "incident_id": "INC-G", "patient_id": f"p{n}",
             "tier": "confirmed", "categories": "[]", "language": "en",
             "recipient": "patient", "channel": "email", "state": states.SENDING,
             "attempts": 0, "next_attempt_us": 0, "code_digest": key, "created_us": 1}
            for n, key in enumerate(keys)
        ]
    )  # fmt: skip
    commits = SentCommits(store, services.audit)
    start = threading.Barrier(len(keys))
    seen: dict[str, str] = {}

    def lane(key: str) -> None:
        start.wait()
        commits.commit({"key": key, "channel": "email", "sent_us": 5, "attempts": 1,
                        "address_digest": None, "code_digest": key},
                       notice_event(Tag.NOTIFY_NOTICE_SENT, "INC-G", None,
                                    {"notice": key, "channel": "email"}, 5))  # fmt: skip
        # Durable by the time commit() returns: a fresh read (another connection) sees it.
        seen[key] = store.rows("INC-G", [key])[key].state

    threads = [threading.Thread(target=lane, args=(key,)) for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert seen == dict.fromkeys(keys, states.SENT)
    rows = store.rows("INC-G")
    assert {(row.state, row.sent_us, row.attempts) for row in rows.values()} == {
        (states.SENT, 5, 1)
    }
    # Each row's ledger entry committed with it: one per notice.
    named = Counter(
        event.detail["notice"]
        for _, data in services.audit_ledger.store.entries()
        if (event := AuditEvent.from_canonical(data)).tag == Tag.NOTIFY_NOTICE_SENT
        and event.reason == "incident INC-G"
    )
    assert named == Counter(dict.fromkeys(keys, 1))
