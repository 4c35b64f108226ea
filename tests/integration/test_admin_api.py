"""Admin API v1 over HTTP against a real ``edge serve`` process (SPEC §4)."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta

from tests.integration.conftest import PRODUCTION_HOST, STAGING_HOST, Api, EdgeServer, Visitor

PAGE = b"<html><head></head><body>page</body></html>"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assert_error(doc: object, code: str) -> None:
    assert isinstance(doc, dict)
    assert doc["error"]["code"] == code, doc
    assert isinstance(doc["error"]["message"], str) and doc["error"]["message"]


async def test_authentication_and_roles(api: Api) -> None:
    status, doc = await api.call("GET", "/v1/sites/acme/environments", as_="")
    assert status == 401
    assert_error(doc, "unauthorized")
    status, doc = await api.call(
        "GET",
        "/v1/sites/acme/environments",
        as_="",
        headers={"Authorization": "Bearer not-a-token"},
    )
    assert status == 401
    status, doc = await api.call(
        "GET", "/v1/sites/acme/environments", as_="", headers={"Authorization": "Basic abc"}
    )
    assert status == 401

    # A token scoped to another site.
    status, doc = await api.call("GET", "/v1/sites/acme/environments", as_="other")
    assert status == 403
    assert_error(doc, "forbidden")

    # Editors upload and move staging, but do not publish or move production.
    snap = await api.snapshot("acme", {"/index.html": PAGE}, as_="editor")
    await api.set_env("acme", "staging", snap, as_="editor")
    status, doc = await api.call("POST", "/v1/sites/acme/publish", as_="editor", json={})
    assert status == 403
    status, doc = await api.call(
        "PUT", "/v1/sites/acme/environments/production", as_="editor", json={"snapshot": snap}
    )
    assert status == 403
    status, doc = await api.call("POST", "/v1/sites/acme/publish", as_="publisher", json={})
    assert status == 200, doc

    # An admin reaches every site; an unknown site is 404.
    status, _ = await api.call("GET", "/v1/sites/other/environments", as_="admin")
    assert status == 200
    status, doc = await api.call("GET", "/v1/sites/nope/environments", as_="admin")
    assert status == 404
    assert_error(doc, "unknown_site")


async def test_blob_upload_protocol(api: Api) -> None:
    status, doc = await api.call(
        "POST", "/v1/sites/acme/blobs/missing", json={"sha256": [sha(PAGE), sha(b"x")]}
    )
    assert status == 200 and doc == {"missing": [sha(PAGE), sha(b"x")]}

    status, doc = await api.call("PUT", f"/v1/sites/acme/blobs/{sha(PAGE)}", data=PAGE)
    assert status == 201
    status, doc = await api.call("PUT", f"/v1/sites/acme/blobs/{sha(PAGE)}", data=PAGE)
    assert status == 200

    status, doc = await api.call("PUT", f"/v1/sites/acme/blobs/{sha(b'x')}", data=b"y")
    assert status == 400
    assert_error(doc, "hash_mismatch")

    status, doc = await api.call(
        "POST", "/v1/sites/acme/blobs/missing", json={"sha256": [sha(PAGE), sha(b"x")]}
    )
    assert doc == {"missing": [sha(b"x")]}
    # Blobs are per site.
    status, doc = await api.call(
        "POST", "/v1/sites/other/blobs/missing", json={"sha256": [sha(PAGE)]}
    )
    assert doc == {"missing": [sha(PAGE)]}


async def test_blob_size_limit(server: EdgeServer, api: Api) -> None:
    server.stop()
    server.extra_config = "max_blob_bytes = 1000"
    server.start()
    big = b"z" * 1001
    status, doc = await api.call("PUT", f"/v1/sites/acme/blobs/{sha(big)}", data=big)
    assert status == 413
    assert_error(doc, "too_large")
    status, doc = await api.call(
        "POST", "/v1/sites/acme/blobs/missing", json={"sha256": [sha(big)]}
    )
    assert doc == {"missing": [sha(big)]}


async def test_snapshot_creation_errors(api: Api) -> None:
    status, doc = await api.call(
        "POST", "/v1/sites/acme/snapshots", json={"files": {"/a.html": {"sha256": sha(b"nope")}}}
    )
    assert status == 422
    assert_error(doc, "missing_blobs")
    assert doc["missing"] == [sha(b"nope")]

    await api.upload("acme", {"/a.html": PAGE})
    for bad in ("a.html", "/a/../b.html", "//a.html", "/a\\b.html", "/dir/", "/a\x00.html"):
        status, doc = await api.call(
            "POST", "/v1/sites/acme/snapshots", json={"files": {bad: {"sha256": sha(PAGE)}}}
        )
        assert status == 400, bad
        assert_error(doc, "bad_request")

    for body in (b"{not json", b"[]", b'{"files": 3}', b'{"files": {}, "surprise": 1}'):
        status, doc = await api.call(
            "POST",
            "/v1/sites/acme/snapshots",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        assert status == 400, body
        assert_error(doc, "bad_request")

    status, doc = await api.call(
        "POST",
        "/v1/sites/acme/snapshots",
        json={"files": {"/a.html": {"sha256": sha(PAGE), "content_type": "text/html\r\nX: y"}}},
    )
    assert status == 400

    # Nothing partial was created.
    status, doc = await api.call("GET", "/v1/sites/acme/snapshots")
    assert status == 200 and doc["snapshots"] == []


async def test_snapshot_on_top_of_parent(api: Api, visitor: Visitor) -> None:
    base = await api.snapshot(
        "acme", {"/index.html": PAGE, "/old.html": PAGE, "/style.css": b"body{}"}
    )
    new_page = b"<html><head></head><body>edited</body></html>"
    await api.upload("acme", {"/index.html": new_page})
    status, doc = await api.call(
        "POST",
        "/v1/sites/acme/snapshots",
        json={
            "parent": base,
            "files": {"/index.html": {"sha256": sha(new_page)}},
            "delete": ["/old.html"],
            "message": "edit home",
        },
    )
    assert status == 201, doc
    assert doc["files"] == 2 and doc["parent"] == base
    status, manifest = await api.call("GET", f"/v1/sites/acme/snapshots/{doc['id']}")
    assert set(manifest["files"]) == {"/index.html", "/style.css"}
    assert manifest["files"]["/index.html"]["sha256"] == sha(new_page)
    assert manifest["files"]["/style.css"]["content_type"] == "text/css; charset=utf-8"
    assert manifest["message"] == "edit home"

    status, listing = await api.call("GET", "/v1/sites/acme/snapshots")
    assert [s["id"] for s in listing["snapshots"]] == [doc["id"], base]
    status, _ = await api.call("GET", "/v1/sites/acme/snapshots/doesnotexist")
    assert status == 404
    status, _err = await api.call(
        "POST", "/v1/sites/acme/snapshots", json={"parent": "doesnotexist", "files": {}}
    )
    assert status == 400

    await api.set_env("acme", "staging", doc["id"])
    status, _, body = await visitor.get(STAGING_HOST, "/")
    assert b"edited" in body
    status, _, _ = await visitor.get(STAGING_HOST, "/old.html")
    assert status == 404


async def test_environments_expect_and_base(api: Api) -> None:
    one = await api.snapshot("acme", {"/index.html": b"1"})
    two = await api.snapshot("acme", {"/index.html": b"2"})
    status, doc = await api.call(
        "PUT", "/v1/sites/acme/environments/staging", json={"snapshot": one, "expect": None}
    )
    assert status == 200, doc
    status, doc = await api.call(
        "PUT", "/v1/sites/acme/environments/staging", json={"snapshot": two, "expect": two}
    )
    assert status == 409
    status, envs = await api.call("GET", "/v1/sites/acme/environments")
    assert envs["staging"]["snapshot"] == one
    status, doc = await api.call(
        "PUT", "/v1/sites/acme/environments/staging", json={"snapshot": two, "expect": one}
    )
    assert status == 200
    status, doc = await api.call(
        "PUT", "/v1/sites/acme/environments/staging", json={"snapshot": "missing"}
    )
    assert status == 404
    status, doc = await api.call("PUT", "/v1/sites/acme/environments/qa", json={"snapshot": one})
    assert status == 404

    status, doc = await api.publish()
    assert (doc["production"], doc["previous"]) == (two, None)
    status, envs = await api.call("GET", "/v1/sites/acme/environments")
    assert envs["production"]["snapshot"] == two
    assert envs["staging"]["base"] == two
    assert envs["production"]["actor"] == "admin"


async def test_publish_refuses_when_production_drifted(api: Api, visitor: Visitor) -> None:
    first = await api.push("acme", {"/index.html": b"v1"})
    await api.publish()
    fix = await api.snapshot("acme", {"/index.html": b"v1-fixed"})
    await api.set_env("acme", "production", fix)
    await api.push("acme", {"/index.html": b"v2"})
    status, doc = await api.publish()
    assert status == 409
    assert_error(doc, "drift")
    _, headers, body = await visitor.get(PRODUCTION_HOST, "/")
    assert body == b"v1-fixed" and headers["X-Edge-Snapshot"] == fix
    assert first != fix


async def test_nodes_on_the_sqlite_store_is_an_empty_registry(api: Api) -> None:
    """One machine, no node registry: the answer says which backend, and lists none."""
    status, doc = await api.call("GET", "/v1/nodes", as_="editor")
    assert status == 200, doc
    assert doc == {"backend": "sqlite", "generation": None, "nodes": []}


def test_nodes_cli_on_the_sqlite_store(server: EdgeServer) -> None:
    result = server.cli("nodes", token="editor")
    assert result.returncode == 0, result.stderr
    assert "sqlite store: one machine" in result.stdout


async def test_acknowledged_writes_are_visible_while_others_read(api: Api) -> None:
    """Overlapping reads on the shared reader connection used to serve stale data."""
    stop = asyncio.Event()

    async def dashboard() -> None:
        while not stop.is_set():
            await api.call("GET", "/v1/sites/acme/history")
            await api.call("GET", "/v1/sites/acme/snapshots")

    readers = [asyncio.create_task(dashboard()) for _ in range(8)]
    try:
        for i in range(20):
            body = PAGE.replace(b"page", f"v{i}".encode())
            await api.upload("acme", {"/index.html": body})
            status, doc = await api.call(
                "POST",
                "/v1/sites/acme/snapshots",
                json={"files": {"/index.html": {"sha256": hashlib.sha256(body).hexdigest()}}},
            )
            assert status == 201, doc  # not 422: the blob was acknowledged
            await api.set_env("acme", "staging", doc["id"])
            at = (datetime.now(UTC) + timedelta(days=1)).isoformat()
            status, schedule = await api.call("POST", "/v1/sites/acme/schedules", json={"at": at})
            assert schedule["snapshot"] == doc["id"]  # what was reviewed is what goes live
    finally:
        stop.set()
        await asyncio.gather(*readers)


async def test_hostile_numbers_are_client_errors(api: Api, visitor: Visitor) -> None:
    await api.push("acme", {"/index.html": PAGE, "/m.png": b"\x89PNG" * 10})
    await api.publish()
    status, _, body = await visitor.get(
        PRODUCTION_HOST, "/m.png", headers={"Range": "bytes=0-" + "9" * 5000}
    )
    assert status == 200 and body == b"\x89PNG" * 10
    for query in ("limit=" + "9" * 5000, "before=99999999999999999999"):
        status, _ = await api.call("GET", f"/v1/sites/acme/history?{query}")
        assert status == 400, query
    status, _ = await api.call(
        "PUT", "/v1/sites/acme/environments/bogus", as_="", json={"snapshot": "x"}
    )
    assert status == 401
