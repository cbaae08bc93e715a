"""One process at a time runs an incident's send job: it holds a lease on the job's row
(``notify_job``), renewed at every batch, whichever server worker or CLI started it.

A lease whose holder is a process of this host that no longer exists is taken at once
(a job killed here is resumed without waiting); one held from another host is taken
once it runs out.
"""

from __future__ import annotations

import os
import secrets
import socket

#: How long a job's lease lasts without renewal (it is renewed at every batch); a job
#: whose process died on another host is taken over once it runs out.
LEASE_US = 180 * 1_000_000


class JobRunning(ValueError):
    """Another process is running this incident's send job (reported like bad input)."""


def lease_owner() -> str:
    """This process, as a job's lease names it: host, process id, and a random tag."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(4)}"


def owner_alive(owner: str) -> bool:
    """False only when ``owner`` is a process of this host that no longer exists (its
    lease can be taken at once: a job killed here is resumed without waiting)."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname()[:60] or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True
