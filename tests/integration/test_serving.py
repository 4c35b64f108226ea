"""Visitor behaviour of a real ``edge serve`` process (SPEC §3)."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import sqlite3

from tests.integration.conftest import (
    PRODUCTION_HOST,
    STAGING_HOST,
    STAGING_WILDCARD_HOST,
    Api,
    EdgeServer,
    Visitor,
)

META = b'<meta name="robots" content="noindex, nofollow">'
HOME = (
    b"<!doctype html><html><head><title>Acme</title></head><body>"
    + b"hello " * 100
    + b"</body></html>"
)
ABOUT = b"<html><head><meta name='robots' content='index'></head><body>about</body></html>"
DOCS = b"<html><head></head><body>docs</body></html>"
NOT_FOUND = b"<html><head></head><body>custom 404</body></html>"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
ROBOTS = b"User-agent: *\nDisallow: /\nSitemap: https://acme.example/sitemap.xml\n"
SITE = {
    "/index.html": HOME,
    "/about.html": ABOUT,
    "/docs/index.html": DOCS,
    "/404.html": NOT_FOUND,
    "/media/pic.png": PNG,
    "/robots.txt": ROBOTS,
}


async def test_push_previews_on_staging_then_publish_serves_production(
    api: Api, visitor: Visitor
) -> None:
    snap = await api.push("acme", SITE)

    status, headers, body = await visitor.get(STAGING_HOST, "/")
    assert status == 200
    assert headers["X-Edge-Env"] == "staging"
    assert headers["X-Edge-Snapshot"] == snap
    assert headers["X-Robots-Tag"] == "noindex, nofollow"
    assert headers["Cache-Control"] == "no-store"
    assert META in body and b"<title>Acme</title>" in body

    status, headers, _ = await visitor.get(PRODUCTION_HOST, "/")
    assert status == 503
    assert headers["Retry-After"]
    assert headers["X-Edge-Env"] == "production"

    status, doc = await api.publish()
    assert status == 200, doc
    assert (doc["production"], doc["previous"]) == (snap, None)

    status, headers, body = await visitor.get(PRODUCTION_HOST, "/")
    assert status == 200
    assert headers["X-Edge-Snapshot"] == snap
    assert headers["X-Edge-Env"] == "production"
    assert "X-Robots-Tag" not in headers
    assert body == HOME


async def test_staging_rules_apply_to_every_type_and_status(api: Api, visitor: Visitor) -> None:
    await api.push("acme", SITE)
    for path, expected in [("/media/pic.png", 200), ("/nowhere", 404), ("/robots.txt", 200)]:
        status, headers, _ = await visitor.get(STAGING_WILDCARD_HOST, path)
        assert status == expected, path
        assert headers["X-Robots-Tag"] == "noindex, nofollow", path
        assert headers["Cache-Control"] == "no-store", path
    status, headers, _ = await visitor.get(STAGING_HOST, "/", method="POST")
    assert status == 405
    assert headers["X-Robots-Tag"] == "noindex, nofollow"

    # robots.txt on staging is synthesized: crawlable, no sitemap.
    _, _, body = await visitor.get(STAGING_HOST, "/robots.txt")
    assert b"Disallow: /" not in body and b"Sitemap" not in body and b"Allow: /" in body
    # An existing robots meta is replaced, not duplicated.
    _, _, body = await visitor.get(STAGING_HOST, "/about")
    assert body.count(b'name="robots"') + body.count(b"name='robots'") == 1 and META in body


async def test_no_cache_bleed_between_environments(api: Api, visitor: Visitor) -> None:
    await api.push("acme", SITE)
    await api.publish()
    # Same snapshot on both; warm staging first, then production, for html,
    # media, the 404 page and robots.txt, with and without gzip.
    for encoding in ("identity", "gzip"):
        for path in ("/", "/docs/", "/media/pic.png", "/nowhere", "/robots.txt"):
            hdrs = {"Accept-Encoding": encoding}
            _, s_headers, s_body = await visitor.get(STAGING_HOST, path, headers=hdrs)
            _, p_headers, p_body = await visitor.get(PRODUCTION_HOST, path, headers=hdrs)
            assert "X-Robots-Tag" not in p_headers, path
            assert p_headers.get("Cache-Control") != "no-store", path
            if s_headers.get("Content-Encoding") == "gzip":
                s_body = gzip.decompress(s_body)
            if p_headers.get("Content-Encoding") == "gzip":
                p_body = gzip.decompress(p_body)
            assert META not in p_body, path
            if path in ("/", "/docs/", "/nowhere"):
                assert META in s_body, path
    _, _, body = await visitor.get(PRODUCTION_HOST, "/robots.txt")
    assert body == ROBOTS


async def test_path_resolution_and_not_found(api: Api, visitor: Visitor) -> None:
    await api.push("acme", SITE)
    await api.publish()
    cases = {
        "/": (200, HOME),
        "/index.html": (200, HOME),
        "/about": (200, ABOUT),
        "/docs/": (200, DOCS),
        "/docs": (301, b""),  # to /docs/, so its relative links work (issue 15)
        "/docs/../about": (200, ABOUT),
        "/%61bout": (200, ABOUT),
        "/nowhere": (404, NOT_FOUND),
        "/..%2f..%2fetc/passwd": (404, NOT_FOUND),
        "/%2e%2e/%2e%2e/etc/passwd": (404, NOT_FOUND),
    }
    for path, (status_wanted, body_wanted) in cases.items():
        status, _, body = await visitor.get(PRODUCTION_HOST, path)
        assert (status, body) == (status_wanted, body_wanted), path
    status, _, _ = await visitor.get(PRODUCTION_HOST, "/a%00b")
    assert status == 400
    status, _, _ = await visitor.get(PRODUCTION_HOST, "/a%c0%ae")
    assert status == 400

    # A snapshot without /404.html answers a plain 404.
    await api.push("acme", {"/index.html": HOME})
    status, headers, body = await visitor.get(STAGING_HOST, "/missing")
    assert status == 404 and body == b"Not Found\n"
    assert headers["X-Robots-Tag"] == "noindex, nofollow"


async def test_host_resolution(api: Api, visitor: Visitor) -> None:
    snap = await api.push("acme", SITE)
    await api.publish()
    for host in ("ACME.example", "acme.example:8080", "acme.example.", "www.acme.example"):
        status, headers, _ = await visitor.get(host, "/")
        assert status == 200 and headers["X-Edge-Snapshot"] == snap, host
    for host in ("unknown.example", "acme.example.evil", "127.0.0.1", "other.staging.example.x"):
        status, headers, body = await visitor.get(host, "/")
        assert status == 421, host
        assert "X-Edge-Snapshot" not in headers and HOME not in body
    # The other site exists but has nothing yet.
    status, _, _ = await visitor.get("other.example", "/")
    assert status == 503


async def test_etag_304_head_gzip_and_ranges(api: Api, visitor: Visitor) -> None:
    await api.push("acme", SITE)
    await api.publish()

    status, headers, body = await visitor.get(PRODUCTION_HOST, "/")
    etag = headers["ETag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    status, headers, body = await visitor.get(PRODUCTION_HOST, "/", headers={"If-None-Match": etag})
    assert status == 304 and body == b"" and headers["ETag"] == etag
    status, _, _ = await visitor.get(PRODUCTION_HOST, "/", headers={"If-None-Match": '"other"'})
    assert status == 200

    status, headers, body = await visitor.get(PRODUCTION_HOST, "/", method="HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) == len(HOME)

    status, headers, body = await visitor.get(
        PRODUCTION_HOST, "/", headers={"Accept-Encoding": "gzip, deflate"}
    )
    assert headers["Content-Encoding"] == "gzip"
    assert headers["Vary"] == "Accept-Encoding"
    assert gzip.decompress(body) == HOME
    assert headers["ETag"] != etag

    status, headers, body = await visitor.get(
        PRODUCTION_HOST, "/media/pic.png", headers={"Range": "bytes=10-19"}
    )
    assert status == 206
    assert body == PNG[10:20]
    assert headers["Content-Range"] == f"bytes 10-19/{len(PNG)}"
    status, headers, _ = await visitor.get(
        PRODUCTION_HOST, "/media/pic.png", headers={"Range": f"bytes={len(PNG)}-"}
    )
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(PNG)}"
    status, headers, body = await visitor.get(
        PRODUCTION_HOST, "/media/pic.png", headers={"Accept-Encoding": "gzip"}
    )
    assert status == 200 and "Content-Encoding" not in headers and body == PNG


async def test_production_entry_marked_noindex(api: Api, visitor: Visitor) -> None:
    sha = hashlib.sha256(HOME).hexdigest()
    await api.upload("acme", {"/index.html": HOME})
    files = {"/index.html": {"sha256": sha}, "/private.html": {"sha256": sha, "noindex": True}}
    status, doc = await api.call("POST", "/v1/sites/acme/snapshots", json={"files": files})
    assert status == 201, doc
    await api.set_env("acme", "staging", doc["id"])
    await api.publish()
    _, headers, body = await visitor.get(PRODUCTION_HOST, "/private")
    assert headers["X-Robots-Tag"] == "noindex, nofollow" and META in body
    _, headers, body = await visitor.get(PRODUCTION_HOST, "/")
    assert "X-Robots-Tag" not in headers and META not in body


async def test_restart_keeps_pointers_and_content(
    server: EdgeServer, api: Api, visitor: Visitor
) -> None:
    first = await api.push("acme", SITE)
    await api.publish()
    second = await api.push("acme", {**SITE, "/index.html": b"<html><head></head>v2</html>"})
    server.restart()
    _, headers, body = await visitor.get(PRODUCTION_HOST, "/")
    assert headers["X-Edge-Snapshot"] == first and body == HOME
    _, headers, body = await visitor.get(STAGING_HOST, "/")
    assert headers["X-Edge-Snapshot"] == second and b"v2" in body


async def test_a_stray_preview_cookie_does_not_lock_out_a_public_staging(
    api: Api, visitor: Visitor
) -> None:
    await api.push("acme", SITE)
    status, _, body = await visitor.get(
        STAGING_HOST, "/", headers={"Cookie": "edge_preview=forged.or.old.token"}
    )
    assert status == 200 and b"<title>Acme</title>" in body


async def test_a_damaged_store_gives_a_500_that_still_says_staging(
    server: EdgeServer, api: Api, visitor: Visitor
) -> None:
    body = b"<html><head></head><body>soon gone</body></html>"
    await api.push("acme", {"/index.html": body})
    with sqlite3.connect(server.root / "data" / "edge.sqlite3") as db:
        db.execute("DELETE FROM blobs WHERE sha256 = ?", (hashlib.sha256(body).hexdigest(),))
    status, headers, content = await visitor.get(STAGING_HOST, "/")
    assert status == 500
    assert headers["X-Robots-Tag"] == "noindex, nofollow" and headers["X-Edge-Env"] == "staging"
    assert b"blob" not in content


async def test_absolute_form_targets_route_by_their_authority(server: EdgeServer, api: Api) -> None:
    await api.push("acme", {"/index.html": b"<html><body>acme home</body></html>"})
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
