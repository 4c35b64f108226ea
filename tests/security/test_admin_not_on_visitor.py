"""No admin route is reachable on the visitor listener, whatever the Host says.

Every admin route (from the admin app ``edge serve`` builds), with every method it
has, is sent to the visitor listener with a valid admin token and a Host that is
a configured site host, an unknown host, the admin listener's own address, or an
IP literal; and in absolute form naming the admin listener. The answer is always
the visitor side's: 421 for a Host no site claims, a plain 404 (405 for another
method) from the site's snapshot otherwise; never JSON, never an admin answer.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from tests.integration.conftest import (
    PRODUCTION_HOST,
    STAGING_HOST,
    STAGING_WILDCARD_HOST,
    Api,
    EdgeServer,
)
from tests.security.admin_routes import concrete_paths, registered_routes

SITE_HOSTS = [
    PRODUCTION_HOST,
    "www.acme.example",
    "ACME.Example.",
    STAGING_HOST,
    STAGING_WILDCARD_HOST,
    "other.example",
]
UNKNOWN_HOSTS = [
    "evil.example",
    "localhost",
    "admin",
    "acme.example.evil.example",
    "127.0.0.1",
    "[::1]",
    "2130706433",
    "0x7f000001",
    "0.0.0.0",
]


def _own_hosts(server: EdgeServer) -> list[str]:
    return [
        f"127.0.0.1:{server.admin_port}",
        f"localhost:{server.admin_port}",
        f"[::1]:{server.admin_port}",
        f"127.0.0.1:{server.port}",
    ]


def _assert_visitor_answer(status: int, headers: dict[str, str], body: bytes, where: str) -> None:
    assert status in (404, 405, 421), (where, status, body[:200])
    assert not headers.get("Content-Type", "").startswith("application/json"), where
    assert b'"error"' not in body and b"openapi" not in body, where
    if status != 421:
        assert headers.get("X-Edge-Env") in ("staging", "production"), where


@pytest.mark.timeout(300)
async def test_no_admin_route_answers_on_the_visitor_listener(
    server: EdgeServer, api: Api, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    for site in ("acme", "other"):
        await api.push(site, {"/index.html": b"<html><head></head>home</html>"})
        await api.publish(site)
    routes = await registered_routes(tmp_path / "routes")
    auth = {"Authorization": f"Bearer {server.tokens['admin']}"}
    hosts = [*SITE_HOSTS, *UNKNOWN_HOSTS, *_own_hosts(server)]
    tried = 0
    for method, template in sorted(routes):
        for path, _env in concrete_paths(template):
            for host in hosts:
                async with session.request(
                    method,
                    server.url + path,
                    headers={"Host": host, "Content-Type": "application/json", **auth},
                    data=b"{}",
                    allow_redirects=False,
                ) as resp:
                    body = await resp.read()
                    where = f"{method} {path} Host: {host}"
                    _assert_visitor_answer(resp.status, dict(resp.headers), body, where)
                    if host in UNKNOWN_HOSTS or host.endswith(f":{server.admin_port}"):
                        assert resp.status == 421, where
                    tried += 1
    assert tried > 400


async def _raw(server: EdgeServer, request: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", server.port), timeout=10
    )
    try:
        writer.write(request)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(65536), timeout=10)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return status, headers, body


async def test_absolute_form_and_missing_host_never_reach_the_admin_api(
    server: EdgeServer, api: Api
) -> None:
    await api.push("acme", {"/index.html": b"<html><head></head>home</html>"})
    await api.publish()
    token = server.tokens["admin"]
    admin = f"127.0.0.1:{server.admin_port}"
    target_hosts = [admin, f"localhost:{server.admin_port}", PRODUCTION_HOST, "evil.example"]
    for target_host in target_hosts:
        for host_header in (PRODUCTION_HOST, admin, None):
            for path in ("/v1/openapi.json", "/v1/sites/acme/environments"):
                lines = [
                    f"GET http://{target_host}{path} HTTP/1.1",
                    f"Authorization: Bearer {token}",
                ]
                if host_header is not None:
                    lines.append(f"Host: {host_header}")
                request = ("\r\n".join([*lines, "Connection: close"]) + "\r\n\r\n").encode()
                status, headers, body = await _raw(server, request)
                where = f"{target_host}{path} Host: {host_header}"
                if host_header is None:  # HTTP/1.1 without Host: refused by the parser
                    assert status == 400 and b"error" not in body, where
                    continue
                _assert_visitor_answer(status, headers, body, where)
                if target_host != PRODUCTION_HOST:
                    assert status == 421, where
    # HTTP/1.0 may omit Host: no site, so 421.
    request = f"GET /v1/sites/acme/environments HTTP/1.0\r\nAuthorization: Bearer {token}\r\n\r\n"
    status, headers, body = await _raw(server, request.encode())
    _assert_visitor_answer(status, headers, body, "HTTP/1.0 without Host")
    assert status == 421
