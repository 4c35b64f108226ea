"""Fixtures for the reliability tests: a real ``edge serve`` killed, stopped and restarted.

The server fixtures come from the integration suite (``EdgeServer``, ``Api``,
``Visitor``); this folder adds what stopping and crashing need: a slow loopback
upstream, process helpers and a server in a process group of its own.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from edge.admin_api.auth import new_token
from tests.integration.conftest import PRODUCTION_HOST as PRODUCTION_HOST
from tests.integration.conftest import ROLES as ROLES
from tests.integration.conftest import STAGING_HOST as STAGING_HOST
from tests.integration.conftest import Api as Api
from tests.integration.conftest import EdgeServer as EdgeServer
from tests.integration.conftest import Visitor as Visitor
from tests.integration.conftest import api as api
from tests.integration.conftest import free_port as free_port
from tests.integration.conftest import server as server
from tests.integration.conftest import session as session
from tests.integration.conftest import visitor as visitor
from tests.waiting import eventually

FORMS = {"forms": {"contact": {}}}


def page(text: str) -> bytes:
    return f"<html><head></head><body>{text}</body></html>".encode()


@dataclass
class GroupedServer(EdgeServer):
    """An ``EdgeServer`` whose supervisor and workers form one process group.

    ``kill_group`` then SIGKILLs all of them at once, as a power cut would.
    """

    def start_nowait(self) -> None:
        self.write_config()
        with (self.root / "server.log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable, "-m", "edge", "serve", "--config", str(self.config_path),
                    "--workers", str(self.workers),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.environ},
                start_new_session=True,
            )  # fmt: skip

    def kill_group(self) -> None:
        assert self.process is not None
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()

    def group(self) -> list[int]:
        """Live (not zombie) processes of this server's process group."""
        assert self.process is not None
        return live_in_group(self.process.pid)


def new_server(root: Path, *, workers: int = 2, cls: type[EdgeServer] = EdgeServer) -> EdgeServer:
    return cls(root=root, tokens={name: new_token()[0] for name in ROLES}, workers=workers)


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie has closed its sockets and files: not alive)."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def live_in_group(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and fields[0] != "Z" and int(fields[2]) == pgid:
                pids.append(int(entry.name))
    return pids


async def wait_gone(pids: list[int], timeout: float) -> None:
    """Wait (bounded) until none of ``pids`` runs any more."""
    await eventually(
        lambda: [p for p in pids if alive(p)],
        lambda running: not running,
        timeout=timeout,
        what="the processes to be gone",
    )


async def wait_exit(process: subprocess.Popen[bytes], timeout: float) -> int:
    """The exit status of ``process``, waiting (bounded) without blocking the event loop."""
    code: int = await eventually(
        process.poll,
        lambda c: c is not None,
        timeout=timeout,
        what=f"edge (pid {process.pid}) exiting",
    )
    return code


async def workers_listening(
    srv: EdgeServer, count: int | None = None, timeout: float = 30.0
) -> None:
    """Wait (bounded) until ``count`` (default: every) worker start was logged in full.

    A worker logs that line once it listens and handles SIGTERM itself.
    """
    try:
        await eventually(
            lambda: srv.log().count(" visitors on http") >= (count or srv.workers),
            timeout=timeout,
            what="every worker listening",
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}:\n{srv.log()}") from None


async def connect_refused(port: int, timeout: float = 20.0) -> None:
    """Wait (bounded) until a new connection to ``port`` on loopback is refused.

    A reset is not a refusal: under load the kernel may complete a handshake into
    the backlog of a listener that is closing (or of one worker's listener while
    another still listens), then reset it. Only a refusal proves nobody listens.
    """

    async def refused() -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except ConnectionRefusedError:
            return True
        except ConnectionResetError:
            return False
        writer.close()
        return False

    await eventually(
        refused, timeout=timeout, interval=0.02, what=f"port {port} refusing connections"
    )


async def fresh_get(server: EdgeServer, host: str = PRODUCTION_HOST) -> tuple[int, str | None]:
    """GET / on a new connection (the kernel picks the worker per connection)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        async with s.get(server.url + "/", headers={"Host": host}) as resp:
            await resp.read()
            return resp.status, resp.headers.get("X-Edge-Snapshot")


@dataclass
class SlowUpstream:
    """A loopback origin whose ``/api/slow`` answers only when released (or after ``hold``)."""

    port: int = field(default_factory=free_port)
    hold: float = 60.0
    body: bytes = bytes(range(256)) * 1024  # 256 KiB, so a cut answer is visibly short
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.arrived.set()
        try:
            await asyncio.wait_for(self.release.wait(), self.hold)
        except TimeoutError:
            pass
        return web.Response(body=self.body, content_type="application/octet-stream")

    def upstream_config(self) -> str:
        return f'upstreams = [{{ prefix = "/api/", origin = "http://127.0.0.1:{self.port}" }}]'


@pytest.fixture
async def slow_upstream() -> AsyncIterator[SlowUpstream]:
    upstream = SlowUpstream()
    app = web.Application()
    app.router.add_get("/api/slow", upstream.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", upstream.port).start()
    try:
        yield upstream
    finally:
        upstream.release.set()
        await runner.cleanup()
