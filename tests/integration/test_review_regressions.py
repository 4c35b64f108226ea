"""Regression tests for defects found in review (each failed before its fix)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.integration.conftest import (
    PRODUCTION_HOST,
    STAGING_HOST,
    Api,
    EdgeServer,
    Visitor,
)


def page(text: str) -> bytes:
    return f"<html><head></head><body>{text}</body></html>".encode()


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
            body = page(f"v{i}")
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


async def push_on_top(api: Api, files: dict[str, bytes]) -> str:
    """Push as `edge push` does: on top of staging's snapshot (lineage via parent)."""
    _, envs = await api.call("GET", "/v1/sites/acme/environments")
    parent = envs["staging"]["snapshot"]
    body: dict[str, object] = {}
    if parent is not None:
        _, manifest = await api.call("GET", f"/v1/sites/acme/snapshots/{parent}")
        body = {"parent": parent, "delete": sorted(set(manifest["files"]) - set(files))}
    snap = await api.snapshot("acme", files, **body)
    await api.set_env("acme", "staging", snap)
    return snap


def moment(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def history_actions(api: Api) -> list[str]:
    _, doc = await api.call("GET", "/v1/sites/acme/history?env=production")
    return [h["action"] for h in doc["history"]]


async def test_no_false_drift_after_launches_and_partial_publishes(
    api: Api, visitor: Visitor
) -> None:
    await push_on_top(api, {"/index.html": page("v0"), "/about.html": page("a0")})
    await api.publish()
    # Launch A at T1, then edit the same page and launch B at T2.
    await push_on_top(api, {"/index.html": page("A"), "/about.html": page("a0")})
    await api.call("POST", "/v1/sites/acme/schedules", json={"at": moment(1.0)})
    await push_on_top(api, {"/index.html": page("B"), "/about.html": page("a0")})
    await api.call("POST", "/v1/sites/acme/schedules", json={"at": moment(2.0)})
    for _ in range(100):
        _, doc = await api.call("GET", "/v1/sites/acme/schedules")
        if all(s["status"] != "pending" for s in doc["schedules"]):
            break
        await asyncio.sleep(0.1)
    assert [s["status"] for s in doc["schedules"]] == ["done", "done"], doc
    _, _, body = await visitor.get(PRODUCTION_HOST, "/")
    assert b"B" in body

    # A partial publish, then another edit of that path: no conflict either.
    await push_on_top(api, {"/index.html": page("B"), "/about.html": page("a1")})
    status, doc = await api.publish(paths=["/about.html"])
    assert status == 200, doc
    await push_on_top(api, {"/index.html": page("B"), "/about.html": page("a2")})
    status, doc = await api.publish()
    assert status == 200, doc
    _, _, body = await visitor.get(PRODUCTION_HOST, "/about")
    assert b"a2" in body


async def test_rollback_then_publish_keeps_stagings_work(api: Api, visitor: Visitor) -> None:
    await api.push("acme", {"/index.html": page("s0"), "/a.html": page("a0")})
    await api.publish()
    await api.push("acme", {"/index.html": page("s1"), "/a.html": page("a1")})
    await api.publish()
    await api.push("acme", {"/index.html": page("s2"), "/a.html": page("a1")})
    status, _ = await api.call("POST", "/v1/sites/acme/rollback", json={})
    assert status == 200
    status, doc = await api.publish()
    assert status == 200, doc
    _, _, body = await visitor.get(PRODUCTION_HOST, "/a.html")
    assert b"a1" in body  # the rolled-back publish's work is staging's, published again
    _, _, body = await visitor.get(PRODUCTION_HOST, "/")
    assert b"s2" in body


async def test_push_keeps_settings_and_deletes_removed_files(
    server: EdgeServer, api: Api, visitor: Visitor, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_bytes(page("home"))
    (site / "old.html").write_bytes(page("old"))
    settings = {"redirects": [{"from": "/legacy", "to": "/", "status": 301}]}
    (tmp_path / "settings.json").write_text(json.dumps(settings))
    result = server.cli(
        "push", str(site), "--site", "acme", "--settings", str(tmp_path / "settings.json")
    )
    assert result.returncode == 0, result.stderr
    (site / "old.html").unlink()
    result = server.cli("push", str(site), "--site", "acme")
    assert result.returncode == 0, result.stderr
    status, headers, _ = await visitor.get(STAGING_HOST, "/legacy")
    assert status == 301 and headers["Location"] == "/"
    status, _, _ = await visitor.get(STAGING_HOST, "/old.html")
    assert status == 404


async def test_a_damaged_store_gives_a_500_that_still_says_staging(
    server: EdgeServer, api: Api, visitor: Visitor
) -> None:
    body = page("soon gone")
    await api.push("acme", {"/index.html": body})
    with sqlite3.connect(server.root / "data" / "edge.sqlite3") as db:
        db.execute("DELETE FROM blobs WHERE sha256 = ?", (hashlib.sha256(body).hexdigest(),))
    status, headers, content = await visitor.get(STAGING_HOST, "/")
    assert status == 500
    assert headers["X-Robots-Tag"] == "noindex, nofollow" and headers["X-Edge-Env"] == "staging"
    assert b"blob" not in content


async def test_hostile_numbers_are_client_errors(api: Api, visitor: Visitor) -> None:
    await api.push("acme", {"/index.html": page("x"), "/m.png": b"\x89PNG" * 10})
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


async def test_absolute_form_targets_route_by_their_authority(server: EdgeServer, api: Api) -> None:
    await api.push("acme", {"/index.html": page("acme home")})
    await api.publish()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"GET http://acme.example/index.html HTTP/1.1\r\nHost: unknown.example\r\n"
        b"Connection: close\r\n\r\n"
    )
    await writer.drain()
    response = await reader.read()
    writer.close()
    assert response.startswith(b"HTTP/1.1 200") and b"acme home" in response
