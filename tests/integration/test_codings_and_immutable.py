"""br, zstd and gzip bodies, and immutable hashed assets, from a real ``edge serve`` (issue 16)."""

from __future__ import annotations

import gzip

import brotli
import pytest
import zstandard

from edge.noindex import inject_robots_meta
from tests.integration.conftest import PRODUCTION_HOST, STAGING_HOST, Api, Visitor
from tests.waiting import eventually

PAGE = b"<html><head><title>t</title></head><body>" + b"<p>hi</p>\n" * 400 + b"</body></html>"
SCRIPT = b"export function f(x) { return x * 2 }\n" * 300
SVG = b"<svg xmlns='http://www.w3.org/2000/svg'>" + b"<rect width='1'/>" * 200 + b"</svg>"
WASM = b"\x00asm\x01\x00\x00\x00" + b"\x01\x07\x01\x60\x02\x7f\x7f\x01\x7f" * 100
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8

DECODE = {
    "gzip": gzip.decompress,
    "br": brotli.decompress,
    "zstd": lambda data: zstandard.ZstdDecompressor().decompress(data),
}

# (Accept-Encoding, the coding chosen)
CHOICES = [
    ("gzip, deflate, br, zstd", "zstd"),
    ("gzip, br", "br"),
    ("gzip", "gzip"),
    ("br;q=0.5, gzip;q=0.9", "gzip"),
    ("zstd;q=0, br, gzip", "br"),
    ("zstd;q=0.8, br;q=0.8, gzip;q=0.8", "zstd"),
    ("br;q=1.0, zstd;q=0.9", "br"),
    ("*", "zstd"),
    ("*;q=0.1, gzip;q=0.5", "gzip"),
    ("identity", None),
    ("gzip;q=0, br;q=0, zstd;q=0", None),
    ("", None),
]


@pytest.mark.parametrize("env", ["production", "staging"])
async def test_each_coding_decodes_to_the_original_and_q_values_choose(
    api: Api, visitor: Visitor, env: str
) -> None:
    files = {
        "/index.html": PAGE,
        "/app.js": SCRIPT,
        "/logo.svg": SVG,
        "/app.wasm": WASM,
        "/img.png": PNG,
    }
    await api.push("acme", files, env=env)
    host = PRODUCTION_HOST if env == "production" else STAGING_HOST
    for path, original in files.items():
        if env == "staging" and path.endswith(".html"):
            original = inject_robots_meta(original)
        etags: dict[str | None, str] = {}
        for accept, coding in CHOICES:
            for _ in range(2):  # a miss, then the hit path
                status, headers, body = await visitor.get(
                    host, path, headers={"Accept-Encoding": accept}
                )
                assert status == 200, (path, accept)
                if path == "/img.png":
                    assert "Content-Encoding" not in headers and body == original
                    continue
                assert headers["Vary"] == "Accept-Encoding"
                assert headers.get("Content-Encoding") == coding, (path, accept)
                decoded = body if coding is None else DECODE[coding](body)
                assert decoded == original, (path, accept)
                if coding is not None:
                    assert len(body) < len(original)
                assert etags.setdefault(coding, headers["ETag"]) == headers["ETag"]
        if path != "/img.png":
            assert len(set(etags.values())) == 4  # one ETag per coding
            # A conditional request for the br body is answered 304.
            status, headers, body = await visitor.get(
                host, path, headers={"Accept-Encoding": "br", "If-None-Match": etags["br"]}
            )
            assert status == 304 and body == b""


HASHED = [
    "/assets/index-BvK3x2aZ.css",
    "/app.3f9a1c2b.js",
    "/_next/static/chunks/main.js",
    "/_astro/page.css",
]
PLAIN = ["/style.css", "/index.html", "/jquery-3.6.0.min.js", "/photo-20240101.png"]


async def test_hashed_names_are_immutable_in_production_only(api: Api, visitor: Visitor) -> None:
    files = {path: b"/* " + path.encode() + b" */" for path in [*HASHED, *PLAIN]}
    await api.push("acme", files, env="production")
    await api.push("acme", files, env="staging")
    for path in HASHED:
        _, headers, _ = await visitor.get(PRODUCTION_HOST, path)
        assert headers["Cache-Control"] == "public, max-age=31536000, immutable", path
        _, headers, _ = await visitor.get(STAGING_HOST, path)
        assert headers["Cache-Control"] == "no-store", path
    for path in PLAIN:
        _, headers, _ = await visitor.get(PRODUCTION_HOST, path)
        assert headers["Cache-Control"] == "public, max-age=0, must-revalidate", path


async def test_immutable_is_configurable_and_headers_win(api: Api, visitor: Visitor) -> None:
    files = {
        "/assets/index-BvK3x2aZ.css": b"body{}",
        "/app.3f9a1c2b.js": b"f()",
        "/build/x.js": b"g()",
        "/_headers": b"/assets/*\n  Cache-Control: public, max-age=60\n",
    }
    settings = {"immutable": {"hashed_names": False, "prefixes": ["/build/"]}}
    snap = await api.snapshot("acme", files, settings=settings)
    await api.set_env("acme", "production", snap)
    _, headers, _ = await visitor.get(PRODUCTION_HOST, "/assets/index-BvK3x2aZ.css")
    assert headers["Cache-Control"] == "public, max-age=60"  # _headers wins
    _, headers, _ = await visitor.get(PRODUCTION_HOST, "/app.3f9a1c2b.js")
    assert headers["Cache-Control"] == "public, max-age=0, must-revalidate"  # turned off
    _, headers, _ = await visitor.get(PRODUCTION_HOST, "/build/x.js")
    assert headers["Cache-Control"] == "public, max-age=31536000, immutable"  # own prefix
    status, doc = await api.call(
        "POST",
        "/v1/sites/acme/snapshots",
        json={"files": {}, "settings": {"immutable": {"prefixes": ["build/"]}}},
    )
    assert status == 400 and doc["error"]["message"].startswith("settings.immutable.prefixes[0]")


async def test_a_large_body_is_answered_at_once_and_coded_for_the_next_requests(
    api: Api, visitor: Visitor
) -> None:
    big = b"".join(
        b"line %d of a large stylesheet { color: #%06x }\n" % (i, i) for i in range(6000)
    )
    assert len(big) > 256 * 1024
    await api.push("acme", {"/big.css": big}, env="production")
    seen: list[str | None] = []

    async def coding() -> str | None:
        status, headers, body = await visitor.get(
            PRODUCTION_HOST, "/big.css", headers={"Accept-Encoding": "br"}
        )
        found = headers.get("Content-Encoding")
        seen.append(found)
        assert status == 200
        assert (body if found is None else DECODE[found](body)) == big
        return found

    await eventually(coding, lambda found: found == "br", what="the brotli copy", ignoring=())
    assert set(seen) <= {None, "br"}, seen
