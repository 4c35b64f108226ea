"""Per-environment upstreams through a real ``edge serve`` (and the isolation guard)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from edge.admin_api.auth import new_token
from tests.integration.conftest import (
    PRODUCTION_HOST,
    ROLES,
    STAGING_HOST,
    Api,
    EdgeServer,
    Visitor,
    free_port,
)
from tests.waiting import TIMEOUT, eventually

PORTS = {"staging": free_port(), "production": free_port()}


@dataclass
class Hold:
    """``/api/hang`` on an upstream: held open until the test releases it."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: int = 0
    answered: int = 0


async def _app(name: str, hold: Hold) -> web.AppRunner:
    async def api(request: web.Request) -> web.Response:
        if request.path == "/api/hang":
            hold.arrived += 1
            await hold.release.wait()
            hold.answered += 1
        body = await request.read()
        return web.json_response(
            {
                "upstream": name,
                "path": request.path_qs,
                "body": body.decode(),
                "forwarded_proto": request.headers.get("X-Forwarded-Proto"),
                "forwarded_host": request.headers.get("X-Forwarded-Host"),
            },
            headers={"X-Robots-Tag": "all"},
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", api)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", PORTS[name]).start()
    return runner


@pytest.fixture
async def hold() -> Hold:
    return Hold()


@pytest.fixture
async def upstreams(hold: Hold) -> AsyncIterator[None]:
    runners = [await _app("staging", hold), await _app("production", hold)]
    yield
    hold.release.set()
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
def server(tmp_path: Path, upstreams: None) -> Iterator[EdgeServer]:
    srv = EdgeServer(root=tmp_path, tokens={name: new_token()[0] for name in ROLES})
    srv.extra_config = 'allow_private_targets = ["127.0.0.1/32"]\nupstream_read_timeout = 0.5'
    srv.env_extra = {
        env: f'upstreams = [{{ prefix = "/api/", origin = "http://127.0.0.1:{PORTS[env]}" }}]'
        for env in ("staging", "production")
    }
    srv.env_extra = {f"acme.{k}": v for k, v in srv.env_extra.items()}
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


async def test_each_environment_reaches_its_own_upstream(api: Api, visitor: Visitor) -> None:
    await api.push("acme", {"/index.html": b"<html><head></head>home</html>"})
    await api.publish()
    for host, env in ((STAGING_HOST, "staging"), (PRODUCTION_HOST, "production")):
        status, headers, body = await visitor.get(host, "/api/items?x=1")
        assert status == 200, body
        assert f'"upstream":"{env}"'.encode() in body.replace(b" ", b"")
        assert b'"path":"/api/items?x=1"' in body.replace(b" ", b"")
        assert headers["X-Edge-Env"] == env
        if env == "staging":
            assert headers["X-Robots-Tag"] == "noindex, nofollow"
        else:
            assert headers["X-Robots-Tag"] == "all"  # production passes the upstream's own
    # Content outside the prefix still comes from the snapshot.
    status, _, body = await visitor.get(PRODUCTION_HOST, "/")
    assert status == 200 and b"home" in body


async def test_a_hanging_upstream_answers_504_in_time(
    api: Api, visitor: Visitor, hold: Hold
) -> None:
    """A hanging upstream neither holds its visitor past the read timeout nor blocks others.

    The upstream holds ``/api/hang`` until the test releases it, so both answers
    below come while it still hangs: edge's own timeout, not the upstream, ends it.
    """
    await api.push("acme", {"/index.html": b"x"})
    await api.publish()
    slow = asyncio.ensure_future(visitor.get(PRODUCTION_HOST, "/api/hang"))
    await eventually(lambda: hold.arrived == 1, what="the upstream holding the request")
    status, _, body = await visitor.get(PRODUCTION_HOST, "/api/items")
    assert status == 200 and b"/api/items" in body
    status, _, body = await asyncio.wait_for(slow, TIMEOUT)
    assert status == 504
    assert b"127.0.0.1" not in body
    assert hold.answered == 0  # both answers came while the upstream still hung


def test_staging_integration_on_a_production_origin_stops_start_up(tmp_path: Path) -> None:
    config = tmp_path / "edge.toml"
    hook = '{{ url = "{url}", events = ["form.submitted"], secret_env = "{env}" }}'
    production = hook.format(url="https://hooks.example/prod", env="P")
    staging = hook.format(url="https://HOOKS.example:443/staging", env="S")
    config.write_text(
        f"""
[server]
listen = "127.0.0.1:{free_port()}"
admin_listen = "127.0.0.1:{free_port()}"
data_dir = "data"
[[sites]]
id = "acme"
[sites.production]
hosts = ["acme.example"]
webhooks = [{production}]
[sites.staging]
hosts = ["preview.acme.example"]
webhooks = [{staging}]
"""
    )
    result = subprocess.run(
        [sys.executable, "-m", "edge", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "sites[0].staging.webhooks[0].url" in result.stderr
    assert "production endpoint" in result.stderr


async def test_a_redirects_rewrite_reaches_only_this_environments_upstream(
    api: Api, visitor: Visitor
) -> None:
    """``_redirects`` 200 to another origin (issue 16): proxied when it is an upstream here."""
    rule = f"/svc/*  http://127.0.0.1:{PORTS['production']}/api/v2/:splat  200\n"
    site = {"/index.html": b"<html><head></head>home</html>", "/_redirects": rule.encode()}
    await api.push("acme", site, env="production")
    await api.push("acme", site, env="staging")
    status, headers, body = await visitor.get(PRODUCTION_HOST, "/svc/items?x=1")
    assert status == 200, body
    doc = json.loads(body)
    assert doc["upstream"] == "production" and doc["path"] == "/api/v2/items?x=1"
    assert headers["X-Edge-Env"] == "production"
    # Staging's upstream is another origin: the same rule is refused there.
    status, headers, body = await visitor.get(STAGING_HOST, "/svc/items")
    assert status == 502 and headers["X-Edge-Env"] == "staging"
