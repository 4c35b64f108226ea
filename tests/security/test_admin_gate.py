"""Every operation of the admin table lets in exactly its role and refuses every role below.

Generated from :data:`edge.admin_api.operations.OPERATIONS` itself, on the admin
application ``edge serve`` builds (in process, real SQLite store): an operation
added to the table is tested here at once, and a route cannot reach the
application without an operation (the application refuses to be built).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from edge.admin_api.auth import new_token
from edge.admin_api.operations import OPERATIONS, Operation
from edge.config import ROLE_RANK, Role, load_config
from edge.server import build_admin_app, open_runtime
from tests.integration.conftest import ROLES, EdgeServer
from tests.security.admin_routes import concrete_paths, is_static_ui

# The test tokens (tests.integration.conftest.ROLES) that hold each role on acme.
ON_ACME: dict[Role, str] = {"editor": "editor", "publisher": "publisher", "admin": "admin"}
SCOPED = ("editor", "publisher", "other")  # tokens that do not see every site

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def admin(
    tmp_path: Path, aiohttp_client: Callable[[web.Application], Awaitable[Client]]
) -> AsyncIterator[tuple[Client, dict[str, str]]]:
    server = EdgeServer(root=tmp_path, tokens={name: new_token()[0] for name in ROLES})
    server.write_config()
    async with open_runtime(load_config(server.config_path)) as runtime:
        yield await aiohttp_client(build_admin_app(runtime)), server.tokens


async def _status(client: Client, method: str, path: str, token: str | None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with client.request(method, path, headers=headers, data=b"{}") as resp:
        body = await resp.read()
        is_json = resp.content_type == "application/json" and body
        return resp.status, (await resp.json() if is_json else None)


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: f"{op.method} {op.path}")
async def test_operation_admits_its_role_and_refuses_below(
    op: Operation, admin: tuple[Client, dict[str, str]]
) -> None:
    client, tokens = admin
    for path, env in concrete_paths(op.path):
        status, doc = await _status(client, op.method, path, None)
        assert (status, doc["error"]["code"]) == (401, "unauthorized"), (op.path, doc)
        role = op.role_for(env)
        if op.every_site is not None:
            for name in SCOPED:  # whatever their role
                status, doc = await _status(client, op.method, path, tokens[name])
                assert (status, doc["error"]["code"]) == (403, "forbidden"), (path, name)
        if role is None:  # any valid token (that sees every site, for every_site)
            allowed = ["admin"] if op.every_site is not None else list(tokens)
            for name in allowed:
                status, doc = await _status(client, op.method, path, tokens[name])
                assert status == 200, (op.method, path, name, doc)
            continue
        status, doc = await _status(client, op.method, path, tokens[ON_ACME[role]])
        assert status not in (401, 403), (op.method, path, role, doc)
        if status == 404:
            assert doc["error"]["code"] != "unknown_site", (op.method, path, doc)
        below = [r for r in ON_ACME if ROLE_RANK[r] < ROLE_RANK[role]]
        for lower in below:
            status, doc = await _status(client, op.method, path, tokens[ON_ACME[lower]])
            assert (status, doc["error"]["code"]) == (403, "forbidden"), (path, lower)
        if op.site_scoped:
            # The role on another site is no role here; a missing site is told only
            # to a token that sees every site.
            status, doc = await _status(client, op.method, path, tokens["other"])
            assert (status, doc["error"]["code"]) == (403, "forbidden"), (path, "other")
            elsewhere = path.replace("/v1/sites/acme/", "/v1/sites/nosuchsite/", 1)
            for name in SCOPED:
                status, doc = await _status(client, op.method, elsewhere, tokens[name])
                assert (status, doc["error"]["code"]) == (403, "forbidden"), (elsewhere, name)
            status, doc = await _status(client, op.method, elsewhere, tokens["admin"])
            assert (status, doc["error"]["code"]) == (404, "unknown_site"), elsewhere


async def test_every_route_is_an_operation_of_the_table(tmp_path: Path) -> None:
    server = EdgeServer(root=tmp_path, tokens={"admin": new_token()[0]})
    server.write_config()
    async with open_runtime(load_config(server.config_path)) as runtime:
        app = build_admin_app(runtime)
    routes = {
        (r.method, r.resource.canonical)
        for r in app.router.routes()
        if r.resource is not None and not is_static_ui(r.resource.canonical)
    }
    table = {(op.method, op.path) for op in OPERATIONS}
    assert routes - {("HEAD", path) for method, path in table if method == "GET"} == table


async def test_an_operation_without_a_handler_stops_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = EdgeServer(root=tmp_path, tokens={"admin": new_token()[0]})
    server.write_config()
    settings = load_config(server.config_path)
    unanswered = Operation("GET", "/v1/nothing", "nothingHere", "no handler", None, {200: None})
    monkeypatch.setattr(
        "edge.admin_api.application.OPERATIONS", (*OPERATIONS, unanswered), raising=True
    )
    async with open_runtime(settings) as runtime:
        with pytest.raises(RuntimeError, match="nothing_here"):
            build_admin_app(runtime)


async def test_a_route_outside_the_table_stops_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = EdgeServer(root=tmp_path, tokens={"admin": new_token()[0]})
    server.write_config()

    async def sneaky(request: web.Request) -> web.Response:
        return web.Response(text="no token asked")

    def with_sneaky_route(app: web.Application) -> None:
        app.router.add_get("/v1/sneaky", sneaky)

    monkeypatch.setattr("edge.admin_api.application.add_ui_routes", with_sneaky_route)
    async with open_runtime(load_config(server.config_path)) as runtime:
        with pytest.raises(RuntimeError, match="/v1/sneaky is not an operation"):
            build_admin_app(runtime)
