"""Stopping edge: SIGTERM/SIGINT drain in-flight requests, refuse new ones, lose nothing.

Each test drives a real ``edge serve`` (one process, or a supervisor with two
workers) and a loopback upstream that answers only when the test lets it, so
"in flight" is a fact the test establishes, not a timing guess.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.reliability.conftest import (
    PRODUCTION_HOST,
    Api,
    EdgeServer,
    SlowUpstream,
    Visitor,
    alive,
    connect_refused,
    free_port,
    new_server,
    page,
    wait_exit,
    wait_gone,
    workers_listening,
)

GRACE = 20.0  # generous: these tests release the upstream themselves
EXIT_BOUND = 60.0  # how long a test waits for an exit: a bound, not a speed claim
# Each test starts edge once or twice and waits on it: room for a loaded machine.
pytestmark = pytest.mark.timeout(240)


def upstream_server(root: Path, upstream: SlowUpstream, workers: int, grace: float) -> EdgeServer:
    srv = new_server(root, workers=workers)
    srv.extra_config = (
        'allow_private_targets = ["127.0.0.1/32"]\n'
        "upstream_read_timeout = 120.0\n"
        "analytics_flush_seconds = 3600.0\n"  # only the shutdown flush writes counts
        f"shutdown_grace = {grace}\n"
    )
    srv.env_extra = {"acme.production": upstream.upstream_config()}
    return srv


async def slow_get(srv: EdgeServer) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as s:
        async with s.get(
            srv.url + "/api/slow",
            headers={"Host": PRODUCTION_HOST, "Accept-Encoding": "identity"},
            timeout=aiohttp.ClientTimeout(total=120),
        ) as resp:
            return resp.status, await resp.read()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("workers", [2, 1])
async def test_stop_signal_drains_in_flight_and_refuses_new_connections(
    tmp_path: Path, slow_upstream: SlowUpstream, sig: signal.Signals, workers: int
) -> None:
    srv = upstream_server(tmp_path, slow_upstream, workers, GRACE)
    srv.start()
    try:
        assert "event loop: uvloop" in srv.log()
        async with aiohttp.ClientSession(skip_auto_headers=["Accept-Encoding"]) as session:
            api, visitor = Api(srv, session), Visitor(srv, session)
            await api.push("acme", {"/index.html": page("home")}, env="production")
            for _ in range(7):
                status, _, _ = await visitor.get(PRODUCTION_HOST, "/")
                assert status == 200
        in_flight = asyncio.create_task(slow_get(srv))
        await asyncio.wait_for(slow_upstream.arrived.wait(), 30)

        assert srv.process is not None
        srv.process.send_signal(sig)
        # The listeners close at once: new connections are refused while the slow
        # request is still being answered.
        await connect_refused(srv.port)
        await connect_refused(srv.admin_port)
        assert not in_flight.done()
        assert srv.process.poll() is None

        await asyncio.sleep(2)  # the upstream answers a while after the signal
        slow_upstream.release.set()
        status, body = await asyncio.wait_for(in_flight, 60)
        assert status == 200
        assert body == slow_upstream.body
        assert await wait_exit(srv.process, EXIT_BOUND) == 0

        # Page views counted before the signal were flushed before the store closed.
        srv.start()
        async with aiohttp.ClientSession() as session:
            status, doc = await Api(srv, session).call("GET", "/v1/sites/acme/analytics/production")
        assert status == 200, doc
        assert doc["total"] == 7
    finally:
        srv.stop()


@pytest.mark.parametrize("workers", [2, 1])
async def test_a_request_outliving_the_grace_is_cut_and_edge_still_exits(
    tmp_path: Path, slow_upstream: SlowUpstream, workers: int
) -> None:
    srv = upstream_server(tmp_path, slow_upstream, workers, grace=1.0)
    srv.start()
    try:
        async with aiohttp.ClientSession() as session:
            await Api(srv, session).push("acme", {"/index.html": page("x")}, env="production")
        in_flight = asyncio.create_task(slow_get(srv))
        await asyncio.wait_for(slow_upstream.arrived.wait(), 30)
        assert srv.process is not None
        srv.process.send_signal(signal.SIGTERM)
        # The upstream never answers: after shutdown_grace the connection is cut...
        with pytest.raises(aiohttp.ClientError):
            await asyncio.wait_for(in_flight, EXIT_BOUND)
        # ...and edge exits anyway, with status 0 (it stopped as asked).
        assert await wait_exit(srv.process, EXIT_BOUND) == 0
        assert "still busy after shutdown_grace" in srv.log()
    finally:
        srv.stop()


async def test_the_supervisor_kills_a_worker_that_does_not_stop(tmp_path: Path) -> None:
    srv = new_server(tmp_path, workers=2)
    srv.extra_config = "shutdown_grace = 1.0"
    srv.start()
    await workers_listening(srv)  # SIGTERM is handled now, no longer fatal
    stuck, other = srv.worker_pids()
    try:
        os.kill(stuck, signal.SIGSTOP)  # a worker that cannot react to SIGTERM
        assert srv.process is not None
        srv.process.send_signal(signal.SIGTERM)
        # Waits shutdown_grace + a margin, then SIGKILLs it; status 1 says so.
        assert await wait_exit(srv.process, EXIT_BOUND) == 1
        await wait_gone([stuck, other], 10)
        assert "did not stop within shutdown_grace" in srv.log()
    finally:
        for pid in (stuck, other):
            if alive(pid):  # the defence failed: do not leave them behind
                os.kill(pid, signal.SIGKILL)
        srv.stop()


async def test_workers_stop_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    srv = new_server(tmp_path, workers=2)
    srv.extra_config = "shutdown_grace = 2.0"
    srv.start()
    workers = srv.worker_pids()
    try:
        async with aiohttp.ClientSession() as session:
            await Api(srv, session).push("acme", {"/index.html": page("x")}, env="production")
        assert len(workers) == 2
        assert srv.process is not None
        srv.process.kill()
        srv.process.wait()
        # Orphaned workers get SIGTERM (parent-death signal), drain and exit: none
        # keeps serving unsupervised on the shared ports.
        await wait_gone(workers, 30)
        await connect_refused(srv.port)
    finally:
        for pid in workers:
            if alive(pid):  # the defence failed: do not leave them running
                os.kill(pid, signal.SIGKILL)
        srv.stop()


async def test_a_stop_while_a_worker_is_being_restarted_stops_it_too(tmp_path: Path) -> None:
    """SIGTERM lands while the supervisor is still inside Popen for a replacement.

    The replacement's process exists (forked) before Popen returns; a stop handler
    running then once missed it, and the supervisor waited out shutdown_grace and
    SIGKILLed it (exit 1). The window is milliseconds wide: a few rounds hit it.
    """
    for round_no in range(4):
        root = tmp_path / str(round_no)
        root.mkdir()
        srv = new_server(root, workers=2)
        srv.extra_config = "shutdown_grace = 2.0"
        srv.start()
        assert srv.process is not None
        before = srv.worker_pids()
        try:
            os.kill(before[0], signal.SIGKILL)
            for _ in range(20000):  # as soon as the replacement is forked
                if any(pid not in before for pid in srv.worker_pids()):
                    break
            srv.process.send_signal(signal.SIGTERM)
            assert await wait_exit(srv.process, EXIT_BOUND) == 0, srv.log()[-3000:]
        finally:
            srv.stop()


@pytest.mark.parametrize("value", ["0", "-1.5", '"soon"'])
def test_shutdown_grace_must_be_a_positive_number(tmp_path: Path, value: str) -> None:
    config = tmp_path / "edge.toml"
    config.write_text(
        f"""
[server]
listen = "127.0.0.1:{free_port()}"
admin_listen = "127.0.0.1:{free_port()}"
data_dir = "data"
shutdown_grace = {value}
"""
    )
    result = subprocess.run(
        [sys.executable, "-m", "edge", "serve", "--config", str(config), "--workers", "1"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "server.shutdown_grace" in result.stderr
