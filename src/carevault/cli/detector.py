"""The detectors in a process of their own: ``carevault detect``, which ``carevault
serve`` starts beside its server processes (``DetectorProcess``).

In a server process the engine's thread shares the interpreter lock with the requests:
under 32 clients of reads it took 9-14 % of the process's throughput (``bench.detect``),
though its own work is a tenth of a request's. Apart, it runs on whatever core the
requests leave. Nothing else changes: the engine already works across processes (one
holds the cursor's lease; entries committed elsewhere are read back from the ledger),
and its responses (suspensions, step-ups, revocations) reach the servers through the
database as the officers' do.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from carevault.cli.common import HomeOption, app, fail, settings_for
from carevault.logformat import configure

log = logging.getLogger("carevault.serve")

#: How long a stopping detection process may take to write what it judged and give up
#: its lease before it is killed (it is judged again by whoever takes over).
STOP_SECONDS = 20.0
#: The pause before a detection process that died is started again: doubled at each
#: death in a row, up to the most; back to the first once one has run a minute.
RESTART_FIRST_SECONDS = 1.0
RESTART_MOST_SECONDS = 60.0
STEADY_SECONDS = 60.0
#: How often the detection process looks for its parent.
PARENT_CHECK_SECONDS = 1.0


@app.command()
def detect(
    home: HomeOption = None,
    parent: Annotated[
        int | None,
        typer.Option(hidden=True, help="Stop when this process (the starter) is gone."),
    ] = None,
) -> None:
    """Run the detectors in a process of their own: what `carevault serve` starts beside
    its server processes (or run it yourself, e.g. as a service of its own). Stops on
    SIGTERM or SIGINT, or when the process that started it dies, after writing what it
    judged."""
    from carevault.bootstrap import build_services
    from carevault.keys.provider import KeyProviderUnavailable

    settings = settings_for(home, detect_thread=True)
    # Its lines go to the same standard error as the servers', in the same form: the
    # engine's and the alert sinks' warnings were bare messages in a JSON stream.
    configure(settings.log_format)
    if not settings.detect:
        raise fail("detection is off (CAREVAULT_DETECT=false): nothing to run", 2)
    stop = threading.Event()

    def stopped(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, stopped)
    # Started by ``carevault serve`` (``--parent``), it is stopped by ``serve``, after
    # the servers: a Ctrl-C at the terminal, which reaches the whole process group, is
    # not this process's to act on.
    signal.signal(signal.SIGINT, stopped if parent is None else signal.SIG_IGN)
    try:
        services = build_services(settings)
    except KeyProviderUnavailable as error:
        raise fail(f"cannot open the data directory: {error}", 2) from None
    try:
        assert services.detection is not None  # noqa: S101 - build_services always makes one
        services.detection.start()
        typer.echo(f"detectors running (process {os.getpid()})")
        # A detection process whose ``serve`` died (killed, not stopped) stops too, rather
        # than judge for a server nobody runs. Only a parent given is followed: one run
        # by hand (``nohup … &``) outlives the shell that started it.
        while not stop.wait(PARENT_CHECK_SECONDS):
            if parent is not None and os.getppid() != parent:
                log.warning("the process that started the detectors is gone: stopping")
                break
            if not services.detection.engine.alive:
                # Whatever ended the thread (it outlives every failure of a batch), this
                # process judges nothing any more: it ends, and ``serve`` starts another.
                log.error("the detectors' thread has ended: stopping")
                raise typer.Exit(1)
    finally:
        # The engine's last batch written and its lease given up (Detection.close).
        services.close()


class DetectorProcess:
    """``carevault detect`` as a child of ``carevault serve``: started with the servers,
    started again (after a growing pause) if it dies, stopped after them."""

    def __init__(self, home: Path, environ: Mapping[str, str]) -> None:
        self.home = home
        self.environ = dict(environ)
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._watch: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        with self._lock:
            return None if self._process is None else self._process.pid

    def start(self) -> None:
        self._spawn()
        self._watch = threading.Thread(target=self._keep, name="detector-watch", daemon=True)
        self._watch.start()

    def _spawn(self) -> None:
        with self._lock:
            if self._stopping.is_set():
                return
            # Its output goes where the server's does.
            self._process = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
                [
                    sys.executable,
                    "-m",
                    "carevault",
                    "detect",
                    "--home",
                    str(self.home),
                    "--parent",
                    str(os.getpid()),
                ],
                env=self.environ,
            )

    def _keep(self) -> None:
        pause = RESTART_FIRST_SECONDS
        while not self._stopping.is_set():
            with self._lock:
                process = self._process
            if process is None:
                return
            began = time.monotonic()
            code = process.wait()
            if self._stopping.is_set():
                return
            # Any other end is a death, a clean exit too: a SIGTERM sent to it alone (a
            # stray ``kill``) left the servers with no one judging the ledger.
            if time.monotonic() - began >= STEADY_SECONDS:
                pause = RESTART_FIRST_SECONDS
            log.error(
                "the detection process stopped (exit %s); starting it again in %.0f s",
                code,
                pause,
            )
            if self._stopping.wait(pause):
                return
            pause = min(pause * 2, RESTART_MOST_SECONDS)
            self._spawn()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not stopped within ``STOP_SECONDS``."""
        self._stopping.set()
        with self._lock:
            process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._watch is not None:
            self._watch.join(timeout=5)
