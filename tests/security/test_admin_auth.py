"""Every admin route, as the server registers it, refuses callers without the right token.

The routes come from the admin application itself (see ``admin_routes``), so a
new route is tested here the moment it exists, and fails here until SPEC_ROLES
gives it a role. Each is called on a live ``edge serve``:

- without a token, or with a malformed or unknown one: 401 with the JSON error body;
- with a token whose role is just below the route's least role: 403;
- with a token of another site: 403 (and 403, not 404, for a site that does not
  exist: a scoped token learns nothing about other sites);
- with a token of exactly the least role: neither 401 nor 403 (the role is the
  least one, not just some role that works).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edge.config import Role
from tests.integration.conftest import EdgeServer
from tests.security.admin_routes import (
    EVERY_SITE_ONLY,
    SPEC_ROLES,
    concrete_paths,
    registered_routes,
)

# conftest's tokens: editor and publisher of acme, admin of all, publisher of "other".
BELOW: dict[Role, str | None] = {"editor": None, "publisher": "editor", "admin": "publisher"}
AT: dict[Role, str] = {"editor": "editor", "publisher": "publisher", "admin": "admin"}
BAD_AUTHORIZATION = [
    "Bearer",
    "Bearer ",
    "Bearer not-a-token",
    "Bearer edge_" + "A" * 43,
    "bearer\tedge_x",
    "Basic YWRtaW46YWRtaW4=",
    "Token abc",
    "Bearer tok\u00e9n",
    "Bearer " + "x" * 4000,
]


async def _call(
    session: aiohttp.ClientSession,
    server: EdgeServer,
    method: str,
    path: str,
    authorization: str | None,
) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    async with session.request(
        method, server.admin_url + path, headers=headers, data=b"{}"
    ) as resp:
        body = await resp.read()
        if method == "HEAD" or not body:
            return resp.status, None
        if resp.content_type != "application/json" and resp.status == 200:
            return resp.status, body  # a text answer (Prometheus metrics)
        return resp.status, await resp.json(content_type=None)


def _bearer(server: EdgeServer, name: str) -> str:
    return f"Bearer {server.tokens[name]}"


def _assert_error(status: int, doc: Any, expected: int, code: str, where: str) -> None:
    assert status == expected, (where, status, doc)
    if doc is not None:
        assert doc["error"]["code"] == code, (where, doc)
        assert isinstance(doc["error"]["message"], str) and doc["error"]["message"]


@pytest.fixture
async def routes(tmp_path: Path) -> list[tuple[str, str]]:
    found = await registered_routes(tmp_path / "routes")
    get_routes = {p for m, p in found if m == "GET"}
    for method, template in found:
        if method == "HEAD":
            assert template in get_routes, template
        else:
            assert (method, template) in SPEC_ROLES, (
                f"{method} {template} has no role in SPEC_ROLES: decide who may call it"
            )
    return sorted(found)


def _least_role(method: str, template: str, env: str | None) -> Role | None:
    spec = SPEC_ROLES[("GET" if method == "HEAD" else method, template)]
    if isinstance(spec, tuple):
        return spec[0] if env == "staging" else spec[1]
    return spec


@pytest.mark.timeout(300)
async def test_every_admin_route_answers_401_without_a_valid_token(
    server: EdgeServer, session: aiohttp.ClientSession, routes: list[tuple[str, str]]
) -> None:
    assert len(routes) >= len(SPEC_ROLES)
    for method, template in routes:
        for path, _env in concrete_paths(template):
            for authorization in [None, *BAD_AUTHORIZATION]:
                where = f"{method} {path} Authorization={authorization!r:.40}"
                status, doc = await _call(session, server, method, path, authorization)
                _assert_error(status, doc, 401, "unauthorized", where)


@pytest.mark.timeout(300)
async def test_every_admin_route_answers_403_for_a_role_or_site_the_token_lacks(
    server: EdgeServer, session: aiohttp.ClientSession, routes: list[tuple[str, str]]
) -> None:
    checked_below = 0
    for method, template in routes:
        for path, env in concrete_paths(template):
            role = _least_role(method, template, env)
            if role is None:  # any valid token: every role gets through
                every_site = ("GET" if method == "HEAD" else method, template) in EVERY_SITE_ONLY
                for name in server.tokens:
                    status, doc = await _call(session, server, method, path, _bearer(server, name))
                    if every_site and name != "admin":  # a token scoped to some sites
                        _assert_error(status, doc, 403, "forbidden", f"{method} {path} {name}")
                        continue
                    assert status == 200, (method, path, name, doc)
                continue
            below = BELOW[role]
            if below is not None:
                checked_below += 1
                status, doc = await _call(session, server, method, path, _bearer(server, below))
                _assert_error(status, doc, 403, "forbidden", f"{method} {path} as {below}")
            # A publisher of another site: a role high enough, on the wrong site.
            status, doc = await _call(session, server, method, path, _bearer(server, "other"))
            _assert_error(status, doc, 403, "forbidden", f"{method} {path} as other")
            if "{site}" in template:
                # A site that does not exist: 403 for a scoped token, 404 for an admin.
                elsewhere = path.replace("/v1/sites/acme/", "/v1/sites/nosuchsite/", 1)
                for name in ("editor", "publisher", "other"):
                    status, doc = await _call(
                        session, server, method, elsewhere, _bearer(server, name)
                    )
                    _assert_error(status, doc, 403, "forbidden", f"{method} {elsewhere} {name}")
                status, doc = await _call(
                    session, server, method, elsewhere, _bearer(server, "admin")
                )
                _assert_error(status, doc, 404, "unknown_site", f"{method} {elsewhere} admin")
            # The least role itself is let in (whatever the call then makes of it).
            status, doc = await _call(session, server, method, path, _bearer(server, AT[role]))
            assert status not in (401, 403), (method, path, AT[role], status, doc)
    assert checked_below >= 8  # the publisher-only routes were really tried as an editor
