"""``edge serve --workers N``: N visitor workers on the same ports, and the admin process.

The supervisor checks the configuration and migrates the store once, then starts
N copies of ``edge serve`` (each told its index) that bind the visitor ports with
``SO_REUSEPORT``, so the kernel spreads connections over them, and one more, the
admin process (``--admin-process``), which alone binds the admin port and runs
the control plane: admin API calls, snapshot decoding and validation, diffs,
the schedule timer, webhook delivery and (PostgreSQL) other nodes' moves. A
visitor worker's event loop thus serves visitors only; it learns of pointer
moves through the shared generation, after the admin process had it load the
new snapshots (:mod:`edge.snapshots.readiness`). This holds with ``--workers 1``
too: a separate process, not a thread, because decoding a large snapshot holds
the GIL for its whole length and a thread would stall the visitor loop anyway.

It forwards SIGINT/SIGTERM and SIGHUP (reload) to every process, restarts one that
dies (with backoff; the others keep serving: visitors while the admin process
restarts, the admin API while a worker does), and gives up only if one cannot
even start.

Stopping: each worker drains for up to ``[server] shutdown_grace`` seconds
(:mod:`edge.lifecycle`); the supervisor waits that long plus
:data:`STOP_MARGIN_SECONDS`, then SIGKILLs a worker that is still there and exits
with status 1. Workers are born with a parent-death signal: if the supervisor
itself is killed, they get SIGTERM and drain instead of serving on unsupervised.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from edge.config import Settings
from edge.observability.metrics import (
    MULTIPROC_ENV,
    prepare_multiprocess_dir,
    remove_multiprocess_dir,
    shared_metrics_dir,
    worker_exited,
)
from edge.snapshots.backends import open_store
from edge.snapshots.generation import SharedCounters

log = logging.getLogger("edge.supervisor")

POLL_SECONDS = 0.1
STARTUP_GRACE_SECONDS = 5.0  # a worker dying this soon after start-up is a start failure
# Beyond shutdown_grace: time for a worker to flush analytics and close the store.
STOP_MARGIN_SECONDS = 5.0
MAX_BACKOFF_SECONDS = 10.0


@dataclass
class _Worker:
    index: int
    admin: bool = False
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    failures: int = 0
    restart_at: float = field(default=0.0)


_PR_SET_PDEATHSIG = 1


def _libc() -> ctypes.CDLL | None:
    """Linux's C library, for ``prctl`` (loaded in the supervisor, before any fork)."""
    return ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _worker_preexec(supervisor: int, libc: ctypes.CDLL | None) -> None:
    """In the forked child, before ``exec``: the signal setup a worker is born with."""
    # Born ignoring SIGHUP until it installs its own handler: a reload forwarded
    # while it is still starting must not kill it (it reads the file anyway).
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    if libc is not None:
        # SIGTERM (a graceful drain) when the supervisor dies; kept across exec.
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != supervisor:  # it died before prctl took effect
            os._exit(1)


def _command(config: Path, index: int, workers: int, *, admin: bool = False) -> list[str]:
    return [
        sys.executable, "-m", "edge", "serve", "--config", str(config),
        "--workers", str(workers), "--worker-index", str(index),
        *(["--admin-process"] if admin else []),
    ]  # fmt: skip


def _name(w: _Worker) -> str:
    return "the admin process" if w.admin else f"worker {w.index + 1}"


async def _prepare_store(settings: Settings) -> None:
    async with open_store(settings, role="supervisor"):
        pass  # opening migrates; workers then find the schema current


def supervise(config: Path, settings: Settings, workers: int) -> int:
    try:
        return _supervise(config, settings, workers)
    finally:
        remove_multiprocess_dir(shared_metrics_dir(settings.data_dir))


def _supervise(config: Path, settings: Settings, workers: int) -> int:
    """Run ``workers`` worker processes until SIGINT/SIGTERM; the exit status."""
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        _signal_running(pool, signal.SIGTERM)

    def reload(signum: int, _frame: object) -> None:
        _signal_running(pool, signal.SIGHUP)

    # The admin process's index follows the workers' (its readiness socket's name).
    pool = [_Worker(i) for i in range(workers)] + [_Worker(workers, admin=True)]
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, reload)  # none to forward yet: workers read the file anyway
    if stopping:
        return 0
    asyncio.run(_prepare_store(settings))
    # The workers' metrics meet in one fresh directory (any worker answers /metrics).
    metrics_dir = prepare_multiprocess_dir(settings.data_dir)
    environ = {**os.environ, MULTIPROC_ENV: str(metrics_dir)}
    began = time.monotonic()

    supervisor, libc = os.getpid(), _libc()
    counters = SharedCounters.for_data_dir(settings.data_dir)
    stop_timeout = settings.config.server.shutdown_grace + STOP_MARGIN_SECONDS

    def start(w: _Worker) -> None:
        w.process = subprocess.Popen(
            _command(config, w.index, workers, admin=w.admin),
            preexec_fn=lambda: _worker_preexec(supervisor, libc),
            env=environ,
        )
        w.started = time.monotonic()
        if stopping:
            # The stop signal landed while Popen was still starting this worker
            # (its child already forked): the handler could not see it to pass it on.
            w.process.send_signal(signal.SIGTERM)

    for w in pool:
        start(w)
    log.info(
        "supervising %d workers and the admin process (pids %s)",
        workers, [w.process.pid for w in pool if w.process],
    )  # fmt: skip
    while not stopping:
        time.sleep(POLL_SECONDS)
        now = time.monotonic()
        for w in pool:
            if stopping or w.process is None:
                continue
            code = w.process.poll()
            if code is None:
                if now - w.started > 2 * MAX_BACKOFF_SECONDS:
                    w.failures = 0  # up long enough: forget earlier crashes
                continue
            if now - began < STARTUP_GRACE_SECONDS and code > 0:
                # It exited by itself (a port in use, an unreadable store), not by a
                # signal: restarting would fail the same way.
                log.error("%s failed to start (exit %s); stopping", _name(w), code)
                stop(signal.SIGTERM, None)
                _wait_all(pool, stop_timeout)
                return 1
            if w.restart_at == 0.0:
                worker_exited(w.process.pid, metrics_dir)
                # It may have died between committing a pointer move and telling the
                # others: make every worker re-read the pointers from the store.
                counters.bump_pointers()
                w.failures += 1
                delay = min(2.0 ** (w.failures - 1) * 0.5, MAX_BACKOFF_SECONDS)
                w.restart_at = now + delay
                log.warning(
                    "%s (pid %d) exited with %s; restarting in %.1fs",
                    _name(w), w.process.pid, code, delay,
                )  # fmt: skip
            elif now >= w.restart_at:
                w.restart_at = 0.0
                start(w)
                log.info("%s restarted (pid %d)", _name(w), w.process.pid)
    return 0 if _wait_all(pool, stop_timeout) else 1


def _signal_running(pool: list[_Worker], sig: signal.Signals) -> None:
    """Send ``sig`` to every worker that is running now."""
    for w in pool:
        if w.process is not None and w.process.poll() is None:
            w.process.send_signal(sig)


def _wait_all(pool: list[_Worker], timeout: float) -> bool:
    """Wait for every worker to exit; SIGKILL those still there after ``timeout``.

    ``False`` when one had to be killed (its last page views were lost).
    """
    deadline = time.monotonic() + timeout
    clean = True
    for w in pool:
        if w.process is None:
            continue
        try:
            w.process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            log.error(
                "%s (pid %d) did not stop within shutdown_grace + %.0fs; killing it",
                _name(w), w.process.pid, STOP_MARGIN_SECONDS,
            )  # fmt: skip
            w.process.kill()
            w.process.wait()
            clean = False
    return clean
