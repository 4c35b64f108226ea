"""Issue 19 against a real ``edge serve``: visitors cannot fill the disk through forms,
a snapshot that cannot be served is refused, limits apply to results."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edge.admin_api.auth import new_token
from tests.integration.conftest import PRODUCTION_HOST, ROLES, Api, EdgeServer, Visitor

FORMS = {"contact": {"max_bytes": 4096}, "big": {"max_bytes": 1048576, "burst": 100}}
OTHER_HOST = "other.example"


def page(text: str) -> bytes:
    return f"<html><head></head><body>{text}</body></html>".encode()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def data_dir_bytes(server: EdgeServer) -> int:
    return sum(p.stat().st_size for p in (server.root / "data").rglob("*") if p.is_file())


def events(server: EdgeServer, name: str) -> list[dict[str, Any]]:
    path = server.root / "events.log"
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [e for e in lines if e.get("event") == name]


def make_server(tmp_path: Path, extra: str = "") -> EdgeServer:
    server = EdgeServer(root=tmp_path, tokens={name: new_token()[0] for name in ROLES}, workers=1)
    server.extra_config = 'event_log_file = "events.log"\n' + extra
    return server


@pytest.fixture
def limits_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EdgeServer]:
    server = make_server(tmp_path, getattr(request, "param", ""))
    try:
        server.start()
        yield server
    finally:
        if server.process is not None:
            server.stop()


@pytest.fixture
def api(limits_server: EdgeServer, session: aiohttp.ClientSession) -> Api:
    return Api(limits_server, session)


@pytest.fixture
def visitor(limits_server: EdgeServer, session: aiohttp.ClientSession) -> Visitor:
    return Visitor(limits_server, session)


async def post(
    session: aiohttp.ClientSession,
    server: EdgeServer,
    form: str = "contact",
    *,
    host: str = PRODUCTION_HOST,
    fields: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str]]:
    async with session.post(
        f"{server.url}/_edge/forms/{form}",
        data=fields or {"message": "hello"},
        headers={"Host": host, **(headers or {})},
        allow_redirects=False,
    ) as resp:
        await resp.read()
        return resp.status, dict(resp.headers)


async def publish_forms(api: Api, site: str = "acme") -> str:
    snap = await api.snapshot(site, {"/index.html": page(site)}, settings={"forms": FORMS})
    await api.set_env(site, "staging", snap)
    status, doc = await api.publish(site)
    assert status == 200, doc
    return snap


async def inbox(api: Api, site: str = "acme", env: str = "production") -> list[dict[str, Any]]:
    status, doc = await api.call("GET", f"/v1/sites/{site}/forms/{env}?limit=500")
    assert status == 200, doc
    return list(doc["submissions"])


# -- the rate limit ------------------------------------------------------------------


@pytest.mark.parametrize(
    "limits_server", ["form_burst = 5\nform_rate_per_minute = 1"], indirect=True
)
async def test_a_burst_from_one_client_hits_429_and_nothing_more_is_stored(
    limits_server: EdgeServer, api: Api, session: aiohttp.ClientSession
) -> None:
    await publish_forms(api)
    statuses = [(await post(session, limits_server))[0] for _ in range(5)]
    assert statuses == [204] * 5
    status, headers = await post(session, limits_server)
    assert status == 429
    assert 1 <= int(headers["Retry-After"]) <= 60
    assert headers["X-Edge-Env"] == "production"
    stored = len(await inbox(api))
    size = data_dir_bytes(limits_server)
    big = {"message": "x" * 3000}
    for _ in range(50):
        status, _ = await post(session, limits_server, fields=big)
        assert status == 429
    assert len(await inbox(api)) == stored == 5
    assert data_dir_bytes(limits_server) == size  # the data_dir stopped growing
    # Other forms, and the posts of another client, have buckets of their own.
    assert (await post(session, limits_server, "big"))[0] == 204


@pytest.mark.parametrize(
    "limits_server",
    ['form_burst = 2\nform_rate_per_minute = 1\ntrusted_proxies = ["127.0.0.1"]'],
    indirect=True,
)
async def test_clients_behind_a_trusted_proxy_get_buckets_of_their_own(
    limits_server: EdgeServer, api: Api, session: aiohttp.ClientSession
) -> None:
    await publish_forms(api)
    for client in ("198.51.100.1", "198.51.100.2"):
        for _ in range(2):
            status, _ = await post(
                session, limits_server, headers={"X-Forwarded-For": f"6.6.6.{_}, {client}"}
            )
            assert status == 204
        status, _ = await post(session, limits_server, headers={"X-Forwarded-For": client})
        assert status == 429


# -- the inbox cap ---------------------------------------------------------------------


@pytest.mark.parametrize("limits_server", ["inbox_max_submissions = 3"], indirect=True)
async def test_an_inbox_at_its_cap_refuses_with_507_while_other_sites_and_publishing_work(
    limits_server: EdgeServer, api: Api, session: aiohttp.ClientSession, visitor: Visitor
) -> None:
    await publish_forms(api)
    await publish_forms(api, "other")
    for _ in range(3):
        assert (await post(session, limits_server))[0] == 204
    size = data_dir_bytes(limits_server)
    for form in ("contact", "big"):
        status, headers = await post(session, limits_server, form)
        assert status == 507
        assert headers["X-Edge-Env"] == "production"
    assert len(await inbox(api)) == 3
    assert data_dir_bytes(limits_server) <= size + 64 * 1024  # no submission written
    # Another site's forms, and the same site's staging inbox, keep taking posts.
    assert (await post(session, limits_server, host=OTHER_HOST))[0] == 204
    assert len(await inbox(api, "other")) == 1
    # Every publish keeps working: push, publish, rollback.
    snap = await api.push("acme", {"/index.html": page("v2")})
    status, doc = await api.publish()
    assert status == 200 and doc["production"] == snap, doc
    status, body = (await visitor.get(PRODUCTION_HOST, "/"))[::2]
    assert status == 200 and b"v2" in body
    status, doc = await api.call("POST", "/v1/sites/acme/rollback", json={})
    assert status == 200, doc
    # Said in the event log, with the status documented for it.
    refused = events(limits_server, "form.refused")
    assert refused and refused[0]["reason"] == "inbox_full"
    assert refused[0]["site"] == "acme" and refused[0]["env"] == "production"
    async with session.get(
        limits_server.admin_url + "/metrics",
        headers={"Authorization": f"Bearer {limits_server.tokens['admin']}"},
    ) as resp:
        text = await resp.text()
    assert 'edge_form_refusals_total{env="production",reason="inbox_full",site="acme"} 2.0' in text


@pytest.mark.parametrize("limits_server", ["inbox_max_submissions = 3"], indirect=True)
async def test_delete_empties_an_inbox_and_it_takes_posts_again(
    limits_server: EdgeServer, api: Api, session: aiohttp.ClientSession
) -> None:
    await publish_forms(api)
    for _ in range(3):
        assert (await post(session, limits_server))[0] == 204
    assert (await post(session, limits_server))[0] == 507
    # An editor may read staging's inbox but not delete; a publisher may delete.
    status, doc = await api.call("DELETE", "/v1/sites/acme/forms/production", as_="editor")
    assert status == 403, doc
    status, doc = await api.call("DELETE", "/v1/sites/acme/forms/staging", as_="other")
    assert status == 403, doc
    first = (await inbox(api))[-1]["id"]
    status, doc = await api.call(
        "DELETE", f"/v1/sites/acme/forms/production/{first}", as_="publisher"
    )
    assert status == 204, doc
    status, doc = await api.call("DELETE", f"/v1/sites/acme/forms/production/{first}")
    assert status == 404 and doc["error"]["code"] == "not_found"
    status, doc = await api.call("DELETE", "/v1/sites/acme/forms/production?before=yesterday")
    assert status == 400, doc
    status, doc = await api.call(
        "DELETE", "/v1/sites/acme/forms/production?before=2000-01-01T00:00:00Z"
    )
    assert (status, doc) == (200, {"deleted": 0})
    status, doc = await api.call("DELETE", "/v1/sites/acme/forms/production", as_="publisher")
    assert (status, doc) == (200, {"deleted": 2})
    assert await inbox(api) == []
    assert (await post(session, limits_server))[0] == 204

    # The CLI does the same.
    result = limits_server.cli("inbox", "--site", "acme", "--delete", token="publisher")
    assert result.returncode == 0, result.stderr
    assert "deleted 1 submission(s)" in result.stdout
    assert await inbox(api) == []
    for _ in range(3):
        assert (await post(session, limits_server))[0] == 204
    one = str((await inbox(api))[0]["id"])
    result = limits_server.cli("inbox", "--site", "acme", "--delete", "--id", one)
    assert result.returncode == 0 and f"deleted submission {one}" in result.stdout, result
    result = limits_server.cli("inbox", "--site", "acme", "--delete", "--id", one)
    assert result.returncode != 0  # already gone: 404
    result = limits_server.cli(
        "inbox", "--site", "acme", "--delete", "--before", "2000-01-01T00:00:00+00:00"
    )
    assert result.returncode == 0 and "deleted 0 submission(s)" in result.stdout, result
    result = limits_server.cli(
        "inbox", "--site", "acme", "--delete", "--before", "2999-01-01T00:00:00+00:00"
    )
    assert result.returncode == 0 and "deleted 2 submission(s)" in result.stdout, result
    assert await inbox(api) == []


async def test_reading_a_large_inbox_comes_in_bounded_pages(
    limits_server: EdgeServer, api: Api, session: aiohttp.ClientSession
) -> None:
    await publish_forms(api)
    large = {"message": "m" * 1_000_000}
    for _ in range(6):
        assert (await post(session, limits_server, "big", fields=large))[0] == 204
    status, doc = await api.call("GET", "/v1/sites/acme/forms/production?limit=500")
    assert status == 200
    assert 1 <= len(doc["submissions"]) <= 4 and doc["next"] is not None  # 4 MiB a page
    seen = [s["id"] for s in doc["submissions"]]
    while doc["next"] is not None:
        status, doc = await api.call(
            "GET", f"/v1/sites/acme/forms/production?limit=500&before={doc['next']}"
        )
        seen += [s["id"] for s in doc["submissions"]]
    assert len(seen) == len(set(seen)) == 6


# -- the disk reserve ------------------------------------------------------------------


@pytest.mark.parametrize(
    "limits_server", ["disk_reserve_bytes = 1152921504606846976"], indirect=True
)
async def test_below_the_disk_reserve_forms_stop_but_publishing_goes_on(
    limits_server: EdgeServer, api: Api, session: aiohttp.ClientSession, visitor: Visitor
) -> None:
    await publish_forms(api)  # a reserve larger than any disk: always below it
    status, headers = await post(session, limits_server)
    assert status == 503 and headers["Retry-After"] == "60"
    assert await inbox(api) == []
    snap = await api.push("acme", {"/index.html": page("v2")})
    status, doc = await api.publish()
    assert status == 200 and doc["production"] == snap
    status, doc = await api.call("POST", "/v1/sites/acme/rollback", json={})
    assert status == 200, doc
    assert (await visitor.get(PRODUCTION_HOST, "/"))[0] == 200
    assert events(limits_server, "form.refused")[0]["reason"] == "disk_reserve"


# -- snapshots that could not be served ------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "content_type", "key"),
    [
        ({"headers": {"/": {"X-Frame-Options\n": "DENY"}}}, None, "settings.headers"),
        ({"headers": {"/": {"Set-Cookie\n": "a=b"}}}, None, "settings.headers"),
        ({"headers": {"/": {"Refresh": "0; url=//evil.example/"}}}, None, "Refresh"),
        (None, "text/html\n", "files./index.html.content_type"),
    ],
)
async def test_a_header_or_content_type_ending_in_a_newline_is_refused_at_creation(
    api: Api,
    visitor: Visitor,
    settings: dict[str, Any] | None,
    content_type: str | None,
    key: str,
) -> None:
    body = page("home")
    await api.upload("acme", {"/index.html": body})
    spec: dict[str, Any] = {"sha256": sha(body)}
    if content_type is not None:
        spec["content_type"] = content_type
    request: dict[str, Any] = {"files": {"/index.html": spec}}
    if settings is not None:
        request["settings"] = settings
    status, doc = await api.call("POST", "/v1/sites/acme/snapshots", json=request)
    assert status == 400, doc
    assert key in doc["error"]["message"]
    status, doc = await api.call("GET", "/v1/sites/acme/snapshots")
    assert doc["snapshots"] == []  # never created


@pytest.mark.parametrize("limits_server", ["max_snapshot_paths = 5"], indirect=True)
async def test_a_manifest_grown_past_the_limit_through_parent_is_refused(api: Api) -> None:
    files = {f"/{n}.html": page(str(n)) for n in range(4)}
    parent = await api.snapshot("acme", files)
    more = {"/a.html": page("a"), "/b.html": page("b")}
    await api.upload("acme", more)
    add = {p: {"sha256": sha(b)} for p, b in more.items()}
    status, doc = await api.call(
        "POST", "/v1/sites/acme/snapshots", json={"parent": parent, "files": add}
    )
    assert status == 400, doc
    assert doc["error"]["code"] == "too_many_paths"
    assert "6 paths" in doc["error"]["message"]
    # With one path deleted the result holds 5: allowed.
    status, doc = await api.call(
        "POST",
        "/v1/sites/acme/snapshots",
        json={"parent": parent, "files": add, "delete": ["/0.html"]},
    )
    assert status == 201, doc
    assert doc["files"] == 5


async def test_a_stored_response_that_cannot_be_written_is_a_counted_500(
    limits_server: EdgeServer, api: Api, session: aiohttp.ClientSession, visitor: Visitor
) -> None:
    """A snapshot stored by an older edge, past today's validation: never a cut connection,
    and publishing it (or rolling back to it) still works."""
    good = await api.snapshot("acme", {"/index.html": page("good")})
    await api.set_env("acme", "staging", good)
    assert (await api.publish())[0] == 200
    bad = await api.snapshot(
        "acme",
        {"/index.html": page("bad")},
        settings={"headers": {"/": {"X-Note": "placeholder"}}},
    )
    await api.set_env("acme", "staging", bad)
    limits_server.stop()
    db = sqlite3.connect(limits_server.root / "data" / "edge.sqlite3")
    with db:
        db.execute(
            "UPDATE snapshots SET settings = ? WHERE id = ?",
            (json.dumps({"headers": {"/": {"X-Note": "bad\r\nSet-Cookie: x=1"}}}).encode(), bad),
        )
    db.close()
    limits_server.start()
    assert (await visitor.get(PRODUCTION_HOST, "/"))[0] == 200  # cached: warmed at publish
    status, doc = await api.publish()
    assert status == 200 and doc["production"] == bad, doc
    for path in ("/", "/index.html"):
        status, headers, _ = await visitor.get(PRODUCTION_HOST, path)
        assert status == 500
        assert "Set-Cookie" not in headers
    # Counted as a 5xx and as unwritable, and said in the event log.
    async with session.get(
        limits_server.admin_url + "/metrics",
        headers={"Authorization": f"Bearer {limits_server.tokens['admin']}"},
    ) as resp:
        text = await resp.text()
    assert 'edge_visitor_unwritable_responses_total{env="production",site="acme"} 2.0' in text
    assert 'edge_visitor_requests_total{env="production",site="acme",status="5xx"} 2.0' in text
    unwritable = events(limits_server, "response.unwritable")
    assert len(unwritable) == 2 and unwritable[0]["site"] == "acme"
    status, doc = await api.call("POST", "/v1/sites/acme/rollback", json={})
    assert status == 200 and doc["production"] == good, doc
    assert (await visitor.get(PRODUCTION_HOST, "/"))[0] == 200


# -- page views ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "limits_server",
    ["disk_reserve_bytes = 1152921504606846976\nanalytics_flush_seconds = 0.1"],
    indirect=True,
)
async def test_page_views_held_back_by_the_reserve_are_written_at_shutdown(
    limits_server: EdgeServer, api: Api, visitor: Visitor
) -> None:
    await publish_forms(api)
    for _ in range(3):
        assert (await visitor.get(PRODUCTION_HOST, "/"))[0] == 200
    status, doc = await api.call("GET", "/v1/sites/acme/analytics/production")
    assert status == 200 and doc["total"] == 0  # held in memory, below the reserve
    limits_server.stop()  # SIGTERM: the last flush writes what waited (not lost)
    assert "page views lost" not in limits_server.log()
    limits_server.start()
    status, doc = await api.call("GET", "/v1/sites/acme/analytics/production")
    assert status == 200 and doc["total"] == 3, doc
