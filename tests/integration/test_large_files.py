"""Files of any size through a real ``edge serve``: streamed in, served whole and by
ranges, kept across a restart; cut and wrong uploads leave nothing; collection never
breaks what is served, scheduled or a rollback target; an old store still serves."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import aiohttp

from edge.admin_api.auth import new_token
from tests.integration.conftest import (
    PRODUCTION_HOST,
    ROLES,
    STAGING_HOST,
    Api,
    EdgeServer,
    Visitor,
)
from tests.legacy_store import write_release_store
from tests.waiting import eventually

MiB = 1024 * 1024
BIG = 110 * MiB  # over 100 MB and far over the test server's 4 MiB cache budget


def write_big_file(path: Path, size: int) -> str:
    """A file of ``size`` varied bytes, written a block at a time; its sha256."""
    digest = hashlib.sha256()
    block = hashlib.sha256(b"seed").digest() * (MiB // 32)
    with path.open("wb") as fh:
        written = 0
        n = 0
        while written < size:
            chunk = block[: size - written]
            chunk = n.to_bytes(8, "big") + chunk[8:] if len(chunk) > 8 else chunk
            fh.write(chunk)
            digest.update(chunk)
            written += len(chunk)
            n += 1
    return digest.hexdigest()


def file_range(path: Path, first: int, last: int) -> bytes:
    with path.open("rb") as fh:
        fh.seek(first)
        return fh.read(last - first + 1)


async def download_sha(
    session: aiohttp.ClientSession, server: EdgeServer, host: str, path: str, **headers: str
) -> tuple[int, str, int]:
    """Status, sha256 and length of a body read in chunks (never whole)."""
    digest = hashlib.sha256()
    size = 0
    async with session.get(
        server.url + path, headers={"Host": host, "Accept-Encoding": "identity", **headers}
    ) as resp:
        async for chunk in resp.content.iter_chunked(MiB):
            digest.update(chunk)
            size += len(chunk)
        return resp.status, digest.hexdigest(), size


async def test_a_blob_over_100_mb_is_pushed_published_and_served_byte_exact(
    server: EdgeServer, visitor: Visitor, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_bytes(b"<h1>downloads</h1>")
    video = site / "video.bin"
    expected = write_big_file(video, BIG)

    pushed = server.cli("push", str(site), "--site", "acme", "-m", "big")
    assert pushed.returncode == 0, pushed.stderr
    assert "2 files, 2 uploaded" in pushed.stdout
    published = server.cli("publish", "--site", "acme")
    assert published.returncode == 0, published.stderr
    blob = server.root / "data" / "blobs" / expected[:2] / expected[2:]
    assert blob.stat().st_size == BIG  # a content-addressed file, not a database row

    async def check_served() -> None:
        assert await download_sha(session, server, PRODUCTION_HOST, "/video.bin") == (
            200,
            expected,
            BIG,
        )
        for spec, (first, last) in {
            "bytes=0-0": (0, 0),
            f"bytes={BIG - 1}-": (BIG - 1, BIG - 1),
            "bytes=52428000-52493535": (52428000, 52493535),
            "bytes=-1000": (BIG - 1000, BIG - 1),
        }.items():
            status, headers, body = await visitor.get(
                PRODUCTION_HOST, "/video.bin", headers={"Range": spec}
            )
            assert status == 206, spec
            assert headers["Content-Range"] == f"bytes {first}-{last}/{BIG}", spec
            assert body == file_range(video, first, last), spec
        # Several ranges at once: refused the way RFC 9110 allows, the whole file.
        assert await download_sha(
            session, server, PRODUCTION_HOST, "/video.bin", Range="bytes=0-1,5-6"
        ) == (200, expected, BIG)
        status, headers, body = await visitor.get(PRODUCTION_HOST, "/video.bin", method="HEAD")
        assert (status, headers["Content-Length"], body) == (200, str(BIG), b"")
        status, _, body = await visitor.get(
            PRODUCTION_HOST, "/video.bin", headers={"If-None-Match": headers["ETag"]}
        )
        assert (status, body) == (304, b"")

    await check_served()
    server.stop()
    server.start()
    await check_served()


async def test_an_upload_cut_mid_stream_leaves_no_blob(server: EdgeServer, api: Api) -> None:
    data = bytes(range(256)) * (8 * 4096)  # 8 MiB
    digest = hashlib.sha256(data).hexdigest()
    _, writer = await asyncio.open_connection("127.0.0.1", server.admin_port)
    writer.write(
        f"PUT /v1/sites/acme/blobs/{digest} HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {server.tokens['admin']}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {len(data)}\r\n\r\n".encode()
        + data[: 3 * MiB]
    )
    await writer.drain()
    writer.close()  # the client goes away mid-body
    await writer.wait_closed()

    tmp = server.root / "data" / "blobs" / "tmp"
    await eventually(lambda: not any(tmp.iterdir()), what="the partial upload removed")
    status, doc = await api.call("POST", "/v1/sites/acme/blobs/missing", json={"sha256": [digest]})
    assert (status, doc) == (200, {"missing": [digest]})
    assert not (server.root / "data" / "blobs" / digest[:2] / digest[2:]).exists()


async def test_a_hash_mismatch_is_400_and_stores_nothing(server: EdgeServer, api: Api) -> None:
    data = b"x" * (MiB // 2)
    claimed = hashlib.sha256(b"other").hexdigest()
    status, doc = await api.call("PUT", f"/v1/sites/acme/blobs/{claimed}", data=data)
    assert status == 400 and doc["error"]["code"] == "hash_mismatch"
    status, doc = await api.call("POST", "/v1/sites/acme/blobs/missing", json={"sha256": [claimed]})
    assert doc == {"missing": [claimed]}
    assert not any((server.root / "data" / "blobs" / "tmp").iterdir())


async def test_a_store_of_the_release_migrates_and_serves(tmp_path: Path) -> None:
    files = {"/index.html": b"<h1>made by the release</h1>", "/a.bin": bytes(range(256)) * 4000}
    write_release_store(tmp_path / "data", "acme", files)
    server = EdgeServer(root=tmp_path, tokens={name: new_token()[0] for name in ROLES})
    server.start()
    try:
        async with aiohttp.ClientSession(skip_auto_headers=["Accept-Encoding"]) as session:
            visitor = Visitor(server, session)
            for path, data in files.items():
                status, _, body = await visitor.get(PRODUCTION_HOST, path)
                assert (status, body) == (200, data), path
    finally:
        server.stop()


async def test_collection_never_breaks_a_served_scheduled_or_rollback_target(
    server: EdgeServer, api: Api, visitor: Visitor
) -> None:
    server.stop()
    server.extra_config = "[retention]\nkeep_production_moves = 1\ngrace_seconds = 0\n"
    server.start()
    versions: dict[str, str] = {}
    for n in range(1, 4):  # production v1 -> v2 -> v3: only v2 stays a rollback target
        versions[f"v{n}"] = await api.push("acme", {"/index.html": b"v%d" % n})
        status, doc = await api.publish()
        assert status == 200, doc
    versions["scheduled"] = await api.push("acme", {"/index.html": b"scheduled"})
    status, doc = await api.call(
        "POST", "/v1/sites/acme/schedules", json={"at": "2999-01-01T00:00:00Z"}
    )
    assert status == 201, doc
    versions["staging"] = await api.push("acme", {"/index.html": b"staging now"})

    dry = server.cli("gc", "--site", "acme", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would remove 1 snapshot(s)" in dry.stdout and versions["v1"] in dry.stdout
    status, doc = await api.call("POST", "/v1/sites/acme/gc", json={"dry_run": True})
    assert (status, doc["snapshots"], doc["dry_run"]) == (200, [versions["v1"]], True)
    status, doc = await api.call("POST", "/v1/sites/acme/gc", json={}, as_="publisher")
    assert status == 403

    real = server.cli("gc", "--site", "acme")
    assert real.returncode == 0, real.stderr
    assert "removed 1 snapshot(s), 1 blob(s), 2 bytes" in real.stdout
    assert (await visitor.get(PRODUCTION_HOST, "/"))[2] == b"v3"
    assert (await visitor.get(STAGING_HOST, "/"))[2].endswith(b"staging now")
    status, doc = await api.call("GET", f"/v1/sites/acme/snapshots/{versions['scheduled']}")
    assert status == 200, doc
    # History stays; rolling back to the collected snapshot is refused and says why.
    status, doc = await api.call("GET", "/v1/sites/acme/history?env=production")
    assert len(doc["history"]) == 3
    status, doc = await api.call("POST", "/v1/sites/acme/rollback", json={"to": versions["v1"]})
    assert status == 409 and "garbage collection" in doc["error"]["message"], doc
    status, doc = await api.call("POST", "/v1/sites/acme/rollback", json={})
    assert (status, doc["production"]) == (200, versions["v2"])
    assert (await visitor.get(PRODUCTION_HOST, "/"))[2] == b"v2"
    _, again = await api.call("POST", "/v1/sites/acme/gc", json={})
    assert again["blobs"] == 0 and versions["v2"] not in again["snapshots"]
