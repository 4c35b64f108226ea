"""Several worker processes on one port: a publish is seen by every worker at once."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from pathlib import Path

import aiohttp

from tests.integration.conftest import PRODUCTION_HOST, Api, EdgeServer
from tests.waiting import eventually


def page(text: str) -> bytes:
    return f"<html><head></head><body>{text}</body></html>".encode()


async def fresh_get(server: EdgeServer, path: str = "/") -> tuple[int, str | None]:
    """One request on a new connection (the kernel picks the worker per connection)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        async with s.get(server.url + path, headers={"Host": PRODUCTION_HOST}) as resp:
            await resp.read()
            return resp.status, resp.headers.get("X-Edge-Snapshot")


def running(pid: int) -> bool:
    """Whether ``pid`` runs (neither gone nor a zombie, whose sockets are closed)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


async def exited(pid: int) -> None:
    """Wait until ``pid`` is gone or a zombie."""
    await eventually(lambda: not running(pid), what=f"process {pid} exiting")


async def test_every_request_after_publish_sees_the_new_snapshot(
    server: EdgeServer, api: Api
) -> None:
    assert len(server.worker_pids()) == 2
    one = await api.snapshot("acme", {"/index.html": page("one")})
    two = await api.snapshot("acme", {"/index.html": page("two")})
    stale = 0
    for i in range(20):
        # Two publishes back to back: a worker still catching up with the first
        # must not serve it to requests sent after the second answered.
        for target in (two, one) if i % 2 else (one, two):
            await api.set_env("acme", "staging", target)
            status, doc = await api.publish()
            assert status == 200, doc
        answers = await asyncio.gather(*(fresh_get(server) for _ in range(8)))
        stale += sum(1 for status, snap in answers if (status, snap) != (200, target))
    assert stale == 0


async def test_a_dead_worker_is_replaced_and_the_others_keep_serving(
    server: EdgeServer, api: Api
) -> None:
    snap = await api.push("acme", {"/index.html": page("up")})
    await api.publish()
    before = server.worker_pids()
    assert len(before) == 2
    os.kill(before[0], signal.SIGKILL)
    await exited(before[0])
    # Meanwhile visitors are served by the survivor (or the replacement). Only
    # connections queued on the dead worker's socket when it died were lost.
    for _ in range(20):
        assert await fresh_get(server) == (200, snap)
    await eventually(
        server.worker_pids,
        lambda after: len(after) == 2 and before[0] not in after,
        what="a replacement worker",
    )
    assert server.stop() == 0


async def test_a_reload_signal_during_start_up_does_not_kill_edge(server: EdgeServer) -> None:
    """`edge reload` finds the pid file as soon as it exists; workers are still starting."""
    server.stop()
    pid_file = server.root / "data" / "edge.pid"
    server.start_nowait()
    await eventually(pid_file.exists, what="the pid file", interval=0.01)
    pid = int(pid_file.read_text())
    for _ in range(30):
        os.kill(pid, signal.SIGHUP)
        await asyncio.sleep(0.02)
    server.wait_ready()
    assert server.process is not None and server.process.poll() is None
    # Every signal was delivered before the workers listened: one that killed a
    # worker left it dead (a zombie until reaped) by now. The first processes the
    # supervisor started all still run.
    runs = re.findall(r"supervising \d+ workers and the admin process \(pids \[([\d, ]+)\]\)",
                      server.log())  # fmt: skip
    assert runs, server.log()
    pids = [int(p) for p in runs[-1].split(",")]  # this run's (the log spans restarts)
    assert len(pids) == 3 and all(running(p) for p in pids), server.log()
    assert {*server.worker_pids(), server.admin_pid()} == set(pids)
    assert "exited with" not in server.log()  # no worker died on the way
