"""Integration fixtures: a real ``edge serve`` process on loopback ports.

Tests talk to it only over HTTP (aiohttp client) or through the ``edge`` CLI.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edge.admin_api.auth import new_token
from tests.waiting import eventually_sync

ROLES = {
    "editor": ("editor", ["acme"]),
    "publisher": ("publisher", ["acme"]),
    "admin": ("admin", []),
    "other": ("publisher", ["other"]),
}
PRODUCTION_HOST = "acme.example"
STAGING_HOST = "acme-preview.example"
STAGING_WILDCARD_HOST = "acme.staging.example"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening_inodes(ports: set[int]) -> dict[int, int]:
    """Socket inode -> port, for sockets in LISTEN state on one of ``ports``."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            port = int(fields[1].rsplit(":", 1)[1], 16)
            if fields[3] == "0A" and port in ports:
                found[int(fields[9])] = port
    return found


def socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets process ``pid`` has open."""
    inodes = set()
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


@dataclass
class EdgeServer:
    """One ``edge serve`` subprocess and everything needed to talk to it."""

    root: Path
    tokens: dict[str, str]
    port: int = field(default_factory=free_port)
    admin_port: int = field(default_factory=free_port)
    tls_port: int = field(default_factory=free_port)  # used when a test configures HTTPS
    process: subprocess.Popen[bytes] | None = None
    extra_config: str = ""
    workers: int = 2
    # Extra lines per environment table, keyed "acme.production" etc.
    env_extra: dict[str, str] = field(default_factory=dict)
    site_extra: str = ""  # extra keys of the acme site table
    environ: dict[str, str] = field(default_factory=dict)  # extra environment variables
    store_config: str = ""  # lines of a [store] table (none: the default SQLite store)

    @property
    def config_path(self) -> Path:
        return self.root / "edge.toml"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def write_config(self) -> None:
        token_blocks = "".join(
            f'[[tokens]]\nname = "{name}"\nsha256 = "{hashlib.sha256(tok.encode()).hexdigest()}"\n'
            f'role = "{ROLES[name][0]}"\nsites = {ROLES[name][1]!r}\n\n'.replace("'", '"')
            for name, tok in self.tokens.items()
        )
        self.config_path.write_text(
            f"""
[server]
listen = "127.0.0.1:{self.port}"
admin_listen = "127.0.0.1:{self.admin_port}"
data_dir = "data"
cache_max_bytes = 4194304
staging_domain = "staging.example"
{self.extra_config}
{"[store]" if self.store_config else ""}
{self.store_config}

{token_blocks}
[[sites]]
id = "acme"
{self.site_extra}
[sites.production]
hosts = ["{PRODUCTION_HOST}", "www.acme.example"]
{self.env_extra.get("acme.production", "")}
[sites.staging]
hosts = ["{STAGING_HOST}"]
{self.env_extra.get("acme.staging", "")}

[[sites]]
id = "other"
[sites.production]
hosts = ["other.example"]
{self.env_extra.get("other.production", "")}
"""
        )

    def start(self) -> None:
        self.start_nowait()
        self.wait_ready()

    def start_nowait(self) -> None:
        self.write_config()
        with (self.root / "server.log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "edge",
                    "serve",
                    "--config",
                    str(self.config_path),
                    "--workers",
                    str(self.workers),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.environ},
            )

    def wait_ready(self) -> None:
        process = self.process
        assert process is not None

        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"edge serve exited early:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.admin_port), timeout=0.2):
                    with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                        pass
            except OSError:
                return False
            # One worker answering is not all of them: a test that kills a worker
            # must not find the only one already listening.
            return self.all_workers_listening()

        try:
            eventually_sync(ready, timeout=20, what="edge serve to start")
        except AssertionError as exc:
            raise RuntimeError(f"{exc}:\n{self.log()}") from None

    def all_workers_listening(self) -> bool:
        """Every visitor worker listens on the visitor port, the admin process on its own."""
        pids = self.worker_pids()
        admin = self.admin_pid()
        if len(pids) < self.workers or admin is None:
            return False
        listening = listening_inodes({self.port, self.admin_port})
        for pid, port in [*((p, self.port) for p in pids), (admin, self.admin_port)]:
            ports = {listening[i] for i in socket_inodes(pid) if i in listening}
            if ports != {port}:
                return False
        return True

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def worker_pids(self) -> list[int]:
        """The server's visitor workers (its children but the admin process)."""
        return sorted(pid for pid, admin in self._children() if not admin)

    def admin_pid(self) -> int | None:
        """The server's admin process (a child of the supervisor beside the workers)."""
        return next((pid for pid, admin in self._children() if admin), None)

    def _children(self) -> list[tuple[int, bool]]:
        assert self.process is not None
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) != self.process.pid:
                    continue
                cmdline = (stat.parent / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            found.append((int(stat.parent.name), b"--admin-process" in cmdline))
        return found

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def cli(
        self, *args: str, token: str = "admin", env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the ``edge`` CLI against this server."""
        environ = dict(os.environ)
        environ.update(
            {"EDGE_ADMIN_URL": self.admin_url, "EDGE_TOKEN": self.tokens.get(token, token)}
        )
        environ.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", "edge", *args],
            capture_output=True,
            text=True,
            env=environ,
            timeout=60,
        )


class Api:
    """Admin API calls as a given token; answers are ``(status, json)``."""

    def __init__(self, server: EdgeServer, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.session = session

    async def call(
        self,
        method: str,
        path: str,
        *,
        as_: str = "admin",
        json: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        hdrs = {"Authorization": f"Bearer {self.server.tokens[as_]}"} if as_ else {}
        hdrs.update(headers or {})
        async with self.session.request(
            method, self.server.admin_url + path, json=json, data=data, headers=hdrs
        ) as resp:
            body = await resp.read()
            try:
                doc = await resp.json(content_type=None) if body else None
            except ValueError:
                doc = body
            return resp.status, doc

    async def upload(self, site: str, files: dict[str, bytes], as_: str = "admin") -> None:
        hashes = {hashlib.sha256(b).hexdigest(): b for b in files.values()}
        status, doc = await self.call(
            "POST", f"/v1/sites/{site}/blobs/missing", as_=as_, json={"sha256": list(hashes)}
        )
        assert status == 200, doc
        for h in doc["missing"]:
            status, doc2 = await self.call(
                "PUT", f"/v1/sites/{site}/blobs/{h}", as_=as_, data=hashes[h]
            )
            assert status == 201, doc2

    async def snapshot(
        self, site: str, files: dict[str, bytes], *, as_: str = "admin", **extra: Any
    ) -> str:
        """Upload blobs and create a snapshot of ``files``; its id."""
        await self.upload(site, files, as_=as_)
        body = {"files": {p: {"sha256": hashlib.sha256(b).hexdigest()} for p, b in files.items()}}
        body.update(extra)
        status, doc = await self.call("POST", f"/v1/sites/{site}/snapshots", as_=as_, json=body)
        assert status == 201, doc
        return str(doc["id"])

    async def set_env(self, site: str, env: str, snapshot: str, as_: str = "admin") -> None:
        status, doc = await self.call(
            "PUT", f"/v1/sites/{site}/environments/{env}", as_=as_, json={"snapshot": snapshot}
        )
        assert status == 200, doc

    async def push(self, site: str, files: dict[str, bytes], env: str = "staging") -> str:
        snap = await self.snapshot(site, files)
        await self.set_env(site, env, snap)
        return snap

    async def publish(self, site: str = "acme", **body: Any) -> tuple[int, Any]:
        return await self.call("POST", f"/v1/sites/{site}/publish", json=body)


class Visitor:
    """Plain HTTP requests to the visitor listener with a chosen Host."""

    def __init__(self, server: EdgeServer, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.session = session

    async def get(
        self, host: str, path: str, *, method: str = "GET", headers: dict[str, str] | None = None
    ) -> tuple[int, Any, bytes]:
        hdrs = {"Host": host, "Accept-Encoding": "identity"}
        hdrs.update(headers or {})
        async with self.session.request(
            method,
            self.server.url + path,
            headers=hdrs,
            auto_decompress=False,
            allow_redirects=False,
        ) as resp:
            return resp.status, resp.headers, await resp.read()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EdgeServer]:
    srv = EdgeServer(root=tmp_path, tokens={name: new_token()[0] for name in ROLES})
    try:
        srv.start()
        yield srv
    finally:
        if srv.process is not None:  # also when start-up failed: never leak the process
            srv.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    # skip_auto_headers: tests choose Accept-Encoding themselves.
    async with aiohttp.ClientSession(skip_auto_headers=["Accept-Encoding"]) as s:
        yield s


@pytest.fixture
async def fresh() -> AsyncIterator[aiohttp.ClientSession]:
    """A session that opens a new connection per request, so requests spread over workers."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(
        connector=connector, skip_auto_headers=["Accept-Encoding"]
    ) as s:
        yield s


@pytest.fixture
def api(server: EdgeServer, session: aiohttp.ClientSession) -> Api:
    return Api(server, session)


@pytest.fixture
def visitor(server: EdgeServer, session: aiohttp.ClientSession) -> Visitor:
    return Visitor(server, session)
