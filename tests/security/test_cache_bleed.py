"""No cache bleed between environments, whatever order the cache was warmed in.

Every variant is warmed on one environment first (identity and gzip, HEAD, 304,
byte ranges, the 404 page, a settings redirect, robots.txt), then requested on
the other, then on the first again. Staging always carries noindex (header and
meta) and ``no-store``; production never does; every answer names the snapshot
its environment points at. Run with the same snapshot in both environments
(right after a publish: the cache keys differ only by variant) and with
different ones.
"""

from __future__ import annotations

import gzip
from typing import Any

import pytest

from tests.integration.conftest import PRODUCTION_HOST, STAGING_HOST, Api, Visitor

HTML = (
    b"<!doctype html><html><head><title>acme</title>"
    b'<meta name="robots" content="index, follow"></head><body>home</body></html>'
)
NOT_FOUND = b"<html><head><title>missing</title></head><body>not here</body></html>"
CSS = b"body { color: #123456; }\n" * 40
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
ROBOTS = b"User-agent: *\nDisallow: /private/\nSitemap: https://acme.example/sitemap.xml\n"
FILES = {
    "/index.html": HTML,
    "/404.html": NOT_FOUND,
    "/style.css": CSS,
    "/media/photo.png": PNG,
    "/robots.txt": ROBOTS,
}
SETTINGS = {"redirects": [{"from": "/old", "to": "/index.html", "status": 301}]}
HOSTS = {"staging": STAGING_HOST, "production": PRODUCTION_HOST}


async def _pointers(api: Api) -> dict[str, str]:
    status, doc = await api.call("GET", "/v1/sites/acme/environments")
    assert status == 200
    return {env: doc[env]["snapshot"] for env in HOSTS}


async def _variants(visitor: Visitor, env: str) -> dict[str, tuple[int, Any, bytes]]:
    """Every kind of answer the cache can hold for one environment."""
    host = HOSTS[env]
    gz = {"Accept-Encoding": "gzip"}
    out = {
        "html": await visitor.get(host, "/"),
        "html-gzip": await visitor.get(host, "/", headers=gz),
        "html-head": await visitor.get(host, "/", method="HEAD"),
        "css": await visitor.get(host, "/style.css"),
        "css-gzip": await visitor.get(host, "/style.css", headers=gz),
        "range": await visitor.get(host, "/media/photo.png", headers={"Range": "bytes=0-9"}),
        "missing": await visitor.get(host, "/missing"),
        "missing-gzip": await visitor.get(host, "/missing", headers=gz),
        "redirect": await visitor.get(host, "/old"),
        "robots": await visitor.get(host, "/robots.txt"),
    }
    for name in ("html", "html-gzip", "css", "css-gzip"):
        etag = out[name][1]["ETag"]
        headers = {"If-None-Match": etag, **(gz if name.endswith("gzip") else {})}
        out[f"{name}-304"] = await visitor.get(host, "/" if "html" in name else "/style.css",
                                               headers=headers)  # fmt: skip
    return out


def _body(headers: Any, body: bytes) -> bytes:
    return gzip.decompress(body) if headers.get("Content-Encoding") == "gzip" else body


def _check(env: str, snapshot: str, answers: dict[str, tuple[int, Any, bytes]]) -> None:
    expected = {
        "html": 200, "html-gzip": 200, "html-head": 200, "css": 200, "css-gzip": 200,
        "range": 206, "missing": 404, "missing-gzip": 404, "redirect": 301, "robots": 200,
        "html-304": 304, "html-gzip-304": 304, "css-304": 304, "css-gzip-304": 304,
    }  # fmt: skip
    for name, (status, headers, raw) in answers.items():
        where = f"{env} {name}"
        assert status == expected[name], where
        assert headers["X-Edge-Env"] == env, where
        assert headers["X-Edge-Snapshot"] == snapshot, where
        body = _body(headers, raw)
        if env == "staging":
            assert headers["X-Robots-Tag"] == "noindex, nofollow", where
            assert headers.get("Cache-Control") == "no-store", where
        else:
            assert "X-Robots-Tag" not in headers, where
            assert "no-store" not in headers.get("Cache-Control", ""), where
            assert b"noindex" not in body, where
    for name in ("html", "html-gzip", "missing", "missing-gzip"):
        body = _body(answers[name][1], answers[name][2])
        meta = b'<meta name="robots" content="noindex, nofollow">' in body
        assert meta is (env == "staging"), f"{env} {name}: {body[:200]!r}"
    assert answers["html-head"][2] == b""
    assert answers["range"][2] == PNG[:10]
    assert answers["redirect"][1]["Location"] == "/index.html"
    robots = answers["robots"][2]
    if env == "staging":
        assert b"Sitemap:" not in robots and b"Disallow: /private/" not in robots
    else:
        assert robots == ROBOTS


@pytest.mark.parametrize("same_snapshot", [True, False], ids=["same-snapshot", "two-snapshots"])
@pytest.mark.parametrize("first", ["staging", "production"])
async def test_no_cache_bleed(api: Api, visitor: Visitor, first: str, same_snapshot: bool) -> None:
    await api.set_env("acme", "staging", await api.snapshot("acme", FILES, settings=SETTINGS))
    status, doc = await api.publish()
    assert status == 200, doc
    if not same_snapshot:
        # staging moves on to a new snapshot with the same content
        await api.set_env("acme", "staging", await api.snapshot("acme", FILES, settings=SETTINGS))
    pointers = await _pointers(api)
    assert (pointers["staging"] == pointers["production"]) is same_snapshot

    second = "production" if first == "staging" else "staging"
    for _ in range(2):  # the second round is served from the cache
        _check(first, pointers[first], await _variants(visitor, first))
    _check(second, pointers[second], await _variants(visitor, second))
    _check(first, pointers[first], await _variants(visitor, first))

    # A validator from one environment never revalidates the other's copy.
    _, staging_headers, _ = await visitor.get(STAGING_HOST, "/")
    status, _, body = await visitor.get(
        PRODUCTION_HOST, "/", headers={"If-None-Match": staging_headers["ETag"]}
    )
    assert status == 200 and b"noindex" not in body
    _, production_headers, _ = await visitor.get(PRODUCTION_HOST, "/")
    status, _, body = await visitor.get(
        STAGING_HOST, "/", headers={"If-None-Match": production_headers["ETag"]}
    )
    assert status == 200 and b"noindex" in body
