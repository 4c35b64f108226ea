"""Structured logs of a real ``edge serve``: access lines, pointer moves, refusals, failures."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

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
from tests.waiting import eventually

PAGE = b"<html><head><title>t</title></head><body>hello</body></html>"
ACCESS_FIELDS = {
    "ts",
    "event",
    "site",
    "env",
    "host",
    "method",
    "path",
    "status",
    "bytes",
    "duration_ms",
    "snapshot",
    "remote",
    "user_agent",
}


def lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.startswith(b"{")]


async def wait_lines(
    path: Path, check: Callable[[list[dict[str, Any]]], bool], timeout: float = 20.0
) -> list[dict[str, Any]]:
    """The JSON lines of ``path`` once ``check`` holds for them."""
    return await eventually(lambda: lines(path), check, timeout=timeout, what=path.name)


def events(found: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [line for line in found if line.get("event") == name]


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., EdgeServer]]:
    started: list[EdgeServer] = []

    def make(extra_config: str, **kwargs: Any) -> EdgeServer:
        srv = EdgeServer(root=tmp_path, tokens={name: new_token()[0] for name in ROLES}, **kwargs)
        srv.extra_config = extra_config
        srv.start()
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.stop()


async def test_full_access_log_has_one_line_per_request(
    make_server: Callable[..., EdgeServer], fresh: aiohttp.ClientSession
) -> None:
    server = make_server('access_log = "full"\naccess_log_file = "access.log"')
    api, visitor = Api(server, fresh), Visitor(server, fresh)
    snapshot = await api.push("acme", {"/index.html": PAGE})
    await api.publish()
    sent = [
        (PRODUCTION_HOST, "/", 200),
        (PRODUCTION_HOST, "/index.html?token=s3cret-query", 200),
        (PRODUCTION_HOST, "/missing.html", 404),
        (STAGING_HOST, "/", 200),
        (STAGING_HOST, "/robots.txt", 200),
        ("nobody.example", "/x", 421),
    ] * 3
    for host, path, status in sent:
        assert (await visitor.get(host, path, headers={"User-Agent": "probe/1"}))[0] == status
    access = server.root / "access.log"
    found = await wait_lines(access, lambda found: len(events(found, "access")) >= len(sent))
    found = events(found, "access")  # the admin calls above have lines of their own
    assert len(found) == len(sent)
    assert all(set(line) == ACCESS_FIELDS and line["event"] == "access" for line in found)
    assert b"s3cret-query" not in access.read_bytes()
    seen = sorted((line["host"], line["path"], line["status"]) for line in found)
    expected = sorted((host, path.partition("?")[0], status) for host, path, status in sent)
    assert seen == expected
    for line in found:
        assert line["method"] == "GET" and line["user_agent"] == "probe/1"
        assert line["remote"] == "127.0.0.1" and line["bytes"] > 0 and line["duration_ms"] >= 0
        assert line["ts"].endswith("Z") and "T" in line["ts"]
        if line["host"] == "nobody.example":
            assert (line["site"], line["env"], line["snapshot"]) == (None, None, None)
        else:
            env = "production" if line["host"] == PRODUCTION_HOST else "staging"
            assert (line["site"], line["env"], line["snapshot"]) == ("acme", env, snapshot)


async def test_access_log_off_writes_no_line(
    make_server: Callable[..., EdgeServer], fresh: aiohttp.ClientSession
) -> None:
    server = make_server(
        'access_log = "off"\naccess_log_file = "access.log"\nevent_log_file = "events.log"'
    )
    api, visitor = Api(server, fresh), Visitor(server, fresh)
    await api.push("acme", {"/index.html": PAGE})
    await api.publish()
    for _ in range(10):
        assert (await visitor.get(PRODUCTION_HOST, "/"))[0] == 200
    assert (await api.call("POST", "/v1/sites/acme/publish", as_="editor", json={}))[0] == 403
    # The event log is written (so the server is logging) while the access log is not.
    await wait_lines(server.root / "events.log", lambda f: bool(events(f, "admin.refused")))
    assert lines(server.root / "access.log") == []


async def test_pointer_moves_are_logged_with_actor_from_and_to(
    make_server: Callable[..., EdgeServer], fresh: aiohttp.ClientSession
) -> None:
    server = make_server("")  # no event_log_file: event lines go to stderr
    api = Api(server, fresh)
    first = await api.push("acme", {"/index.html": PAGE})
    status, _ = await api.call("POST", "/v1/sites/acme/publish", as_="publisher", json={})
    assert status == 200
    second = await api.push("acme", {"/index.html": PAGE + b"2"})
    assert (await api.call("POST", "/v1/sites/acme/publish", as_="publisher", json={}))[0] == 200
    stderr = server.root / "server.log"

    def moved(found: list[dict[str, Any]]) -> bool:
        return len(events(found, "pointer.moved")) == 4

    found = events(await wait_lines(stderr, moved), "pointer.moved")
    production = [line for line in found if line["env"] == "production"]
    assert [(m["from"], m["to"], m["actor"], m["action"]) for m in production] == [
        (None, first, "publisher", "publish"),
        (first, second, "publisher", "publish"),
    ]
    staging = [line for line in found if line["env"] == "staging"]
    assert [(m["from"], m["to"], m["actor"], m["action"]) for m in staging] == [
        (None, first, "admin", "set"),
        (first, second, "admin", "set"),
    ]
    assert all(m["site"] == "acme" and m["swap_ms"] >= 0 for m in found)


async def test_refused_admin_calls_are_logged_without_the_token(
    make_server: Callable[..., EdgeServer], fresh: aiohttp.ClientSession
) -> None:
    server = make_server('event_log_file = "events.log"')
    api = Api(server, fresh)
    wrong = "edge_" + "w" * 40
    url = server.admin_url + "/v1/sites/acme/publish"
    async with fresh.post(url, json={}) as resp:
        assert resp.status == 401
    async with fresh.post(url, json={}, headers={"Authorization": f"Bearer {wrong}"}) as resp:
        assert resp.status == 401
    assert (await api.call("POST", "/v1/sites/acme/publish", as_="editor", json={}))[0] == 403
    assert (await api.call("POST", "/v1/sites/acme/publish", as_="other", json={}))[0] == 403
    async with fresh.get(server.admin_url + "/metrics") as resp:
        assert resp.status == 401

    path = server.root / "events.log"
    found = events(
        await wait_lines(path, lambda f: len(events(f, "admin.refused")) == 5), "admin.refused"
    )
    summary = sorted((r["status"], r["route"], r["token"], r["reason"]) for r in found)
    assert summary == sorted(
        [
            (401, "/v1/sites/{site}/publish", None, "missing bearer token"),
            (401, "/v1/sites/{site}/publish", None, "unknown token"),
            (401, "/metrics", None, "missing bearer token"),
            (
                403,
                "/v1/sites/{site}/publish",
                "editor",
                "this call needs the publisher role; token 'editor' is editor",
            ),
            (
                403,
                "/v1/sites/{site}/publish",
                "other",
                "token 'other' has no access to site 'acme'",
            ),
        ]
    )
    assert all(r["method"] in ("POST", "GET") and r["remote"] == "127.0.0.1" for r in found)
    written = path.read_text() + server.log()
    for secret in [wrong, *server.tokens.values()]:
        assert secret not in written


HOOK_PORT, UPSTREAM_PORT = free_port(), free_port()  # nothing listens on either


async def test_failures_are_logged_and_sampling_keeps_server_errors(
    make_server: Callable[..., EdgeServer], fresh: aiohttp.ClientSession
) -> None:
    server = make_server(
        'allow_private_targets = ["127.0.0.1/32"]\nevent_log_file = "events.log"\n'
        'access_log = "sampled"\naccess_log_sample = 1e-9\naccess_log_file = "access.log"',
        env_extra={
            "acme.production": (
                f'webhooks = [{{ url = "http://127.0.0.1:{HOOK_PORT}/hook?key=s3cret",'
                ' events = ["environment.updated"], secret_env = "HOOK_SECRET" }]\n'
                f'upstreams = [{{ prefix = "/api/", origin = "http://127.0.0.1:{UPSTREAM_PORT}" }}]'
            )
        },
        environ={"HOOK_SECRET": "hook-secret-value"},
    )
    api, visitor = Api(server, fresh), Visitor(server, fresh)
    await api.push("acme", {"/index.html": PAGE})
    await api.publish()
    for _ in range(20):
        assert (await visitor.get(PRODUCTION_HOST, "/"))[0] == 200
    for _ in range(2):
        assert (await visitor.get(PRODUCTION_HOST, "/api/items?q=1"))[0] == 502

    access = await wait_lines(server.root / "access.log", lambda f: len(f) >= 2)
    assert [(a["status"], a["path"]) for a in access] == [(502, "/api/items")] * 2

    def failures(found: list[dict[str, Any]]) -> bool:
        return len(events(found, "upstream.error")) == 2 and bool(events(found, "webhook.failed"))

    found = await wait_lines(server.root / "events.log", failures)
    upstream = events(found, "upstream.error")[0]
    assert (upstream["site"], upstream["env"], upstream["kind"], upstream["path"]) == (
        "acme",
        "production",
        "unreachable",
        "/api/items",
    )
    assert upstream["origin"] == f"http://127.0.0.1:{UPSTREAM_PORT}"
    hook = events(found, "webhook.failed")[0]
    assert (hook["site"], hook["env"], hook["webhook_event"]) == (
        "acme",
        "production",
        "environment.updated",
    )
    assert hook["endpoint"] == f"http://127.0.0.1:{HOOK_PORT}/hook"
    assert hook["attempt"] == 1 and hook["will_retry"] is True and hook["error"]
    written = (server.root / "events.log").read_text()
    assert "s3cret" not in written and "hook-secret-value" not in written
