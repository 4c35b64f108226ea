"""Webhooks and upstreams never reach internal addresses, whatever the URL or DNS says.

Each test runs edge in this process (``edge.server.running``, the same code as
``edge serve``) with one change: its outbound session resolves names through
:class:`MapResolver`, a stand-in for a DNS server under an attacker's control that
maps test names to loopback and internal addresses. Every target is configured
both as a staging webhook and as a staging upstream, so each form is tried
through the real webhook deliverer and the real upstream proxy.

Two guards keep these tests from ever sending a packet off this machine, even with
edge's defence switched off: internal targets that are not loopback are never
listened on, and :class:`Tripwire` replaces the event loop's ``sock_connect`` so
that any connection attempt to an address outside loopback is recorded and
failed instead of made. The loopback forms point at a live :class:`Sink`: a
target edge must refuse is one the sink never hears from.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import ipaddress
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

import edge.server
from edge.admin_api.auth import new_token
from edge.config import load_config
from edge.netguard import guarded_session
from tests.integration.conftest import free_port
from tests.waiting import eventually

STAGING_HOST = "acme-preview.example"
SECRET_ENV = "EDGE_TEST_HOOK_SECRET"
WAIT = 20.0  # seconds: generous, the machine is shared

# name -> what the attacker's DNS answers
NAMES = {
    "rebind.test": ["127.0.0.1"],
    "localhost": ["127.0.0.1"],
    "mapped.test": ["::ffff:127.0.0.1"],
    "metadata.test": ["169.254.169.254"],
    "intranet.test": ["10.1.2.3"],
    "everything.test": ["10.0.0.1", "192.168.1.1", "127.0.0.1", "::1"],
    "two.test": ["127.0.0.2", "127.0.0.1"],  # one refused, one allowed (with the allow-list)
}

# Hosts that must be refused without an allow-list: (label, host as written in the URL).
REFUSED = [
    ("loopback", "127.0.0.1"),
    ("loopback-other", "127.0.0.2"),
    ("ipv6-loopback", "[::1]"),
    ("ipv4-mapped", "[::ffff:127.0.0.1]"),
    ("ipv4-mapped-hex", "[::ffff:7f00:1]"),
    ("decimal", "2130706433"),
    ("octal", "0177.0.0.1"),
    ("hex", "0x7f000001"),
    ("hex-dotted", "0x7f.1"),
    ("short", "127.1"),
    ("unicode-digits", "\u2460\u2461\u2466.0.0.1"),
    ("unspecified", "0.0.0.0"),
    ("rfc1918-10", "10.0.0.1"),
    ("rfc1918-172", "172.16.0.1"),
    ("rfc1918-192", "192.168.0.1"),
    ("link-local", "169.254.1.1"),
    ("metadata", "169.254.169.254"),
    ("ipv6-link-local", "[fe80::1]"),
    ("cgnat", "100.64.0.1"),
    ("dns-loopback", "rebind.test"),
    ("dns-localhost", "localhost"),
    ("dns-mapped", "mapped.test"),
    ("dns-metadata", "metadata.test"),
    ("dns-private", "intranet.test"),
    ("dns-mixed", "everything.test"),
]


def _is_loopback(host: str) -> bool:
    ip = ipaddress.ip_address(host.partition("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_unspecified


class MapResolver(AbstractResolver):
    """Answers the test names from :data:`NAMES`; numeric hosts as getaddrinfo reads them.

    Never asks a real DNS server: an unknown name does not resolve.
    """

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        addresses = NAMES.get(host)
        if addresses is None:
            try:  # "0x7f.1", "127.1": numeric forms only, no lookup (AI_NUMERICHOST)
                infos = socket.getaddrinfo(
                    host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
                )
            except socket.gaierror:
                raise OSError(f"{host}: no such name in the test resolver") from None
            addresses = [str(info[4][0]) for info in infos]
        return [
            ResolveResult(
                hostname=host,
                host=a,
                port=port,
                family=socket.AF_INET6 if ":" in a else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for a in addresses
        ]

    async def close(self) -> None:
        pass


@dataclass
class Tripwire:
    """Every connect the event loop makes; non-loopback ones are failed, never made."""

    attempts: list[tuple[str, int]] = field(default_factory=list)

    def wrap(self, sock_connect: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        async def guarded(sock: socket.socket, address: Any) -> None:
            host, port = str(address[0]), int(address[1])
            self.attempts.append((host, port))
            if not _is_loopback(host):
                raise ConnectionRefusedError(f"tripwire: no traffic to {host} from tests")
            await sock_connect(sock, address)

        return guarded

    def outside_loopback(self) -> list[tuple[str, int]]:
        return [(h, p) for h, p in self.attempts if not _is_loopback(h)]

    def to_port(self, port: int) -> list[tuple[str, int]]:
        return [(h, p) for h, p in self.attempts if p == port]


@pytest.fixture
async def tripwire(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Tripwire]:
    wire = Tripwire()
    loop = asyncio.get_running_loop()
    monkeypatch.setattr(loop, "sock_connect", wire.wrap(loop.sock_connect))
    yield wire
    assert wire.outside_loopback() == [], "a connection left loopback"


@dataclass
class Sink:
    """A loopback HTTP server that records every request it gets."""

    host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    hits: list[str] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.hits.append(request.path)
        if "redirect" in request.path:
            # Where a follower would go next: another loopback address of ours.
            return web.Response(
                status=302, headers={"Location": f"http://{self.host}:{self.port}/landed"}
            )
        return web.Response(text="sink")


@asynccontextmanager
async def running_sink(host: str = "127.0.0.1") -> AsyncIterator[Sink]:
    sink = Sink(host=host)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", sink.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, sink.port).start()
        yield sink
    finally:
        await runner.cleanup()


@dataclass
class Edge:
    """An in-process edge and the HTTP clients to talk to it."""

    settings_path: Path
    token: str
    visitor_url: str
    admin_url: str
    session: aiohttp.ClientSession

    async def admin(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with self.session.request(
            method, self.admin_url + path, headers=headers, **kw
        ) as resp:
            return resp.status, await resp.json(content_type=None)

    async def visit(self, path: str) -> tuple[int, dict[str, str], bytes]:
        async with self.session.get(
            self.visitor_url + path, headers={"Host": STAGING_HOST}, allow_redirects=False
        ) as resp:
            return resp.status, dict(resp.headers), await resp.read()

    async def push_staging(self) -> None:
        """Create a snapshot and point staging at it: an environment.updated event."""
        page = b"<html><head></head><body>x</body></html>"
        digest = hashlib.sha256(page).hexdigest()
        headers = {"Authorization": f"Bearer {self.token}"}
        async with self.session.put(
            f"{self.admin_url}/v1/sites/acme/blobs/{digest}", data=page, headers=headers
        ) as resp:
            assert resp.status in (200, 201)
        status, doc = await self.admin(
            "POST", "/v1/sites/acme/snapshots", json={"files": {"/index.html": {"sha256": digest}}}
        )
        assert status == 201, doc
        status, doc = await self.admin(
            "PUT", "/v1/sites/acme/environments/staging", json={"snapshot": doc["id"]}
        )
        assert status == 200, doc

    async def deliveries(self, count: int) -> list[dict[str, Any]]:
        """Staging's webhook deliveries once each of ``count`` has been tried at least once."""

        async def listed() -> list[dict[str, Any]]:
            status, doc = await self.admin("GET", "/v1/sites/acme/webhooks/staging?limit=500")
            assert status == 200, doc
            return list(doc["deliveries"])

        return await eventually(
            listed,
            lambda items: len(items) >= count and all(d["attempts"] >= 1 for d in items),
            timeout=WAIT,
            what="every delivery tried",
            ignoring=(),
        )


def _config(tmp: Path, targets: list[str], allow: list[str], hook_path: str) -> tuple[Path, str]:
    token = new_token()[0]
    hook = '{{ url = "{url}", events = ["environment.updated"], secret_env = "{env}" }}'
    hooks = ", ".join(hook.format(url=t + hook_path, env=SECRET_ENV) for t in targets)
    upstreams = ", ".join(f'{{ prefix = "/t{i}/", origin = "{t}" }}' for i, t in enumerate(targets))
    allow_line = f"allow_private_targets = {allow!r}".replace("'", '"')
    path = tmp / "edge.toml"
    path.write_text(
        f"""
[server]
listen = "127.0.0.1:{free_port()}"
admin_listen = "127.0.0.1:{free_port()}"
data_dir = "data"
{allow_line}
upstream_connect_timeout = 5.0
upstream_read_timeout = 10.0

[[tokens]]
name = "admin"
sha256 = "{hashlib.sha256(token.encode()).hexdigest()}"
role = "admin"
sites = []

[[sites]]
id = "acme"
[sites.production]
hosts = ["acme.example"]
[sites.staging]
hosts = ["{STAGING_HOST}"]
webhooks = [{hooks}]
upstreams = [{upstreams}]
""",
        encoding="utf-8",
    )
    return path, token


@asynccontextmanager
async def running_edge(
    tmp: Path,
    targets: list[str],
    allow: list[str],
    monkeypatch: pytest.MonkeyPatch,
    hook_path: str = "/hook",
) -> AsyncIterator[Edge]:
    """edge's own runtime, with :class:`MapResolver` under its outbound guard."""
    monkeypatch.setenv(SECRET_ENV, "test-secret")
    monkeypatch.setattr(
        edge.server, "guarded_session", functools.partial(guarded_session, resolver=MapResolver())
    )
    path, token = _config(tmp, targets, allow, hook_path)
    settings = load_config(path)
    async with (
        edge.server.running(settings),
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT)) as session,
    ):
        yield Edge(
            settings_path=path,
            token=token,
            visitor_url=f"http://{settings.listen}",
            admin_url=f"http://{settings.admin_listen}",
            session=session,
        )


def _origin(host: str, sink: Sink) -> str:
    return f"http://{host}:{sink.port}"


async def test_internal_targets_are_refused_through_webhooks_and_upstreams(
    tmp_path: Path,
    tripwire: Tripwire,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with running_sink() as sink:
        targets = [_origin(host, sink) for _, host in REFUSED]
        async with running_edge(tmp_path, targets, [], monkeypatch) as edge_:
            await edge_.push_staging()
            for i, (label, _) in enumerate(REFUSED):
                caplog.clear()
                status, _, body = await edge_.visit(f"/t{i}/anything")
                assert status == 502, (label, status, body)
                assert b"127.0.0.1" not in body and str(sink.port).encode() not in body
                # Refused by the guard (not merely unreachable), and the log says so.
                logged = [r.getMessage() for r in caplog.records if r.name == "edge.upstream"]
                assert any("private address" in line for line in logged), (label, logged)
            deliveries = await edge_.deliveries(len(REFUSED))
            by_url = {d["url"]: d for d in deliveries}
            for (label, _), target in zip(REFUSED, targets, strict=True):
                delivery = by_url[f"{target}/hook"]
                assert delivery["status"] != "delivered", label
                assert "private address" in (delivery["last_error"] or ""), (label, delivery)
        assert sink.hits == []
        assert tripwire.to_port(sink.port) == []  # not even a connection was tried


async def test_the_allow_list_opens_exactly_its_networks(
    tmp_path: Path, tripwire: Tripwire, monkeypatch: pytest.MonkeyPatch
) -> None:
    """127.0.0.1/32 allowed: that address is reached by name; 127.0.0.2 and 10/8 are not."""
    async with running_sink() as sink, running_sink("127.0.0.2") as other:
        names = ["rebind.test", "two.test", "127.0.0.1"]
        targets = [_origin(host, sink) for host in names]
        refused = [_origin("127.0.0.2", other), _origin("intranet.test", sink)]
        async with running_edge(
            tmp_path, targets + refused, ["127.0.0.1/32"], monkeypatch
        ) as edge_:
            await edge_.push_staging()
            for i in range(len(targets)):
                status, _, body = await edge_.visit(f"/t{i}/ok")
                assert (status, body) == (200, b"sink"), names[i]
            for i in range(len(targets), len(targets) + len(refused)):
                status, _, _ = await edge_.visit(f"/t{i}/no")
                assert status == 502
            deliveries = {d["url"]: d for d in await edge_.deliveries(len(targets) + 2)}
            for target in targets:
                assert deliveries[f"{target}/hook"]["status"] == "delivered", target
            for target in refused:
                assert "private address" in deliveries[f"{target}/hook"]["last_error"]
        assert sorted(sink.hits) == sorted(
            [f"/t{i}/ok" for i in range(len(targets))] + ["/hook"] * len(targets)
        )
        # two.test also answered 127.0.0.2: edge dropped that answer, never connected to it.
        assert other.hits == []
        assert tripwire.to_port(other.port) == []


async def test_redirects_are_not_followed(
    tmp_path: Path, tripwire: Tripwire, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Targets answering 302 to another loopback URL (allowed, even): edge does not go there."""
    async with running_sink() as sink:
        origin = _origin("rebind.test", sink)
        # The upstream is the origin; the webhook URL is "<origin>/redirect/hook".
        async with running_edge(
            tmp_path, [origin], ["127.0.0.0/8"], monkeypatch, hook_path="/redirect/hook"
        ) as edge_:
            await edge_.push_staging()
            status, headers, _ = await edge_.visit("/t0/redirect")
            assert status == 302  # passed on to the visitor as it came
            assert headers["Location"] == f"http://127.0.0.1:{sink.port}/landed"
            (delivery,) = await edge_.deliveries(1)
            assert delivery["status"] != "delivered"
            assert delivery["last_error"] == "HTTP 302"
        assert sorted(sink.hits) == ["/redirect/hook", "/t0/redirect"]
        assert "/landed" not in sink.hits
