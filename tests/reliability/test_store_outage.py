"""A store that goes away (a PostgreSQL outage) while edge serves visitors.

What is cached keeps serving; a request that needs the store gets 503 with
``Retry-After`` and its environment's headers, never a 500. The outage is a
stand-in (``get_blob`` raising :class:`StoreUnavailable`, as the PostgreSQL store
does when its database is unreachable): the rest is edge's own runtime on real
loopback sockets.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import edge.server
from edge.admin_api.auth import new_token
from edge.config import load_config
from edge.errors import StoreUnavailable
from tests.integration.conftest import PRODUCTION_HOST, ROLES, EdgeServer

PAGES = {"/index.html": b"<html><head></head><body>home</body></html>", "/b.html": b"b"}


async def test_a_cache_miss_during_a_store_outage_is_503_not_500(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = EdgeServer(root=tmp_path, tokens={name: new_token()[0] for name in ROLES})
    config.write_config()
    settings = load_config(config.config_path)
    auth = {"Authorization": f"Bearer {config.tokens['admin']}"}
    async with edge.server.running(settings) as runtime, aiohttp.ClientSession() as session:

        async def admin(method: str, path: str, **kw: Any) -> Any:
            async with session.request(
                method, config.admin_url + path, headers=auth, **kw
            ) as resp:
                assert resp.status in (200, 201), await resp.text()
                return await resp.json()

        for body in PAGES.values():
            digest = hashlib.sha256(body).hexdigest()
            await admin("PUT", f"/v1/sites/acme/blobs/{digest}", data=body)
        files = {p: {"sha256": hashlib.sha256(b).hexdigest()} for p, b in PAGES.items()}
        snap = await admin("POST", "/v1/sites/acme/snapshots", json={"files": files})
        await admin("PUT", "/v1/sites/acme/environments/production", json={"snapshot": snap["id"]})

        async def visit(path: str) -> tuple[int, dict[str, str]]:
            async with session.get(
                config.url + path, headers={"Host": PRODUCTION_HOST}
            ) as resp:
                await resp.read()
                return resp.status, dict(resp.headers)

        assert (await visit("/"))[0] == 200  # cached from now on

        async def unreachable(site: str, sha256: str) -> bytes | None:
            raise StoreUnavailable("the database is unreachable")

        monkeypatch.setattr(runtime.store, "get_blob", unreachable)
        status, headers = await visit("/")
        assert status == 200  # the cache keeps serving
        status, headers = await visit("/b.html")  # needs the store
        assert status == 503
        assert headers["Retry-After"].isdigit()
        assert headers["X-Edge-Env"] == "production"
