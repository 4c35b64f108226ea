"""``edge serve --workers N``: N worker processes on the same ports.

The supervisor checks the configuration and migrates the store once, then starts
N copies of ``edge serve`` (each told its index) that bind the visitor and admin
ports with ``SO_REUSEPORT``, so the kernel spreads connections over them. It
forwards SIGINT/SIGTERM and SIGHUP (reload), restarts a worker that dies (with
backoff; the others keep serving), and gives up only if a worker cannot even
start.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from edge.config import Settings
from edge.snapshots.backends import open_store

log = logging.getLogger("edge.supervisor")

POLL_SECONDS = 0.1
STARTUP_GRACE_SECONDS = 5.0  # a worker dying this soon after start-up is a start failure
STOP_TIMEOUT_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 10.0


@dataclass
class _Worker:
    index: int
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    failures: int = 0
    restart_at: float = field(default=0.0)


def _ignore_hup() -> None:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


def _command(config: Path, index: int, workers: int) -> list[str]:
    return [
        sys.executable, "-m", "edge", "serve", "--config", str(config),
        "--workers", str(workers), "--worker-index", str(index),
    ]  # fmt: skip


async def _prepare_store(settings: Settings) -> None:
    async with open_store(settings, role="supervisor"):
        pass  # opening migrates; workers then find the schema current


def supervise(config: Path, settings: Settings, workers: int) -> int:
    """Run ``workers`` worker processes until SIGINT/SIGTERM; the exit status."""
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for w in pool:
            if w.process is not None and w.process.poll() is None:
                w.process.send_signal(signal.SIGTERM)

    def reload(signum: int, _frame: object) -> None:
        for w in pool:
            if w.process is not None and w.process.poll() is None:
                w.process.send_signal(signal.SIGHUP)

    pool = [_Worker(i) for i in range(workers)]
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, reload)  # none to forward yet: workers read the file anyway
    if stopping:
        return 0
    asyncio.run(_prepare_store(settings))
    began = time.monotonic()

    def start(w: _Worker) -> None:
        # Born ignoring SIGHUP until it installs its own handler: a reload forwarded
        # while it is still starting must not kill it (it reads the file anyway).
        w.process = subprocess.Popen(_command(config, w.index, workers), preexec_fn=_ignore_hup)
        w.started = time.monotonic()

    for w in pool:
        start(w)
    log.info(
        "supervising %d workers (pids %s)", workers, [w.process.pid for w in pool if w.process]
    )
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
                log.error("worker %d failed to start (exit %s); stopping", w.index + 1, code)
                stop(signal.SIGTERM, None)
                _wait_all(pool)
                return 1
            if w.restart_at == 0.0:
                w.failures += 1
                delay = min(2.0 ** (w.failures - 1) * 0.5, MAX_BACKOFF_SECONDS)
                w.restart_at = now + delay
                log.warning(
                    "worker %d (pid %d) exited with %s; restarting in %.1fs",
                    w.index + 1, w.process.pid, code, delay,
                )  # fmt: skip
            elif now >= w.restart_at:
                w.restart_at = 0.0
                start(w)
                log.info("worker %d restarted (pid %d)", w.index + 1, w.process.pid)
    _wait_all(pool)
    return 0


def _wait_all(pool: list[_Worker]) -> None:
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for w in pool:
        if w.process is None:
            continue
        try:
            w.process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            log.warning("worker %d did not stop in time; killing it", w.index + 1)
            w.process.kill()
            w.process.wait()
