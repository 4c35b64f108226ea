"""``_redirects`` and ``_headers`` against a real ``edge serve`` (issue 16).

The cases follow Netlify's and Cloudflare Pages' documentation: statuses, splats,
placeholders, 200 rewrites and the single-page-app fallback, shadowing and ``!``,
the query string passed on, 404 rules, file order; header blocks combining,
placeholders, edge's own headers untouchable; refusals naming file and line; and
the rules travelling with the snapshot (staging first, then production).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from edge.noindex import inject_robots_meta
from tests.integration.conftest import PRODUCTION_HOST, STAGING_HOST, Api, EdgeServer, Visitor

REDIRECTS = b"""\
# Netlify's examples, and Cloudflare Pages' (which shares the syntax)
/home              /                                301
/blog/my-post.php  /blog/my-post
/news              /blog                            302
/old-temp          /new-temp                        307
/old-perm          /new-perm                        308
/see-other         /other                           303
/news/*            /blog/:splat
/articles/:year/:month/:date/:slug  /blog/:year-:month-:date/:slug  301
/external          https://example.com/elsewhere
/app/*             /app/index.html                  200
/pretty            /real.html                       200
/shadowed.html     /other.html                      301
/forced.html       /other.html                      301!
/en/*              /en/404.html                     404
/first             /one
/first             /two
/*                 /index.html                      200
"""

PAGES = {
    "/index.html": b"<html><head></head><body>spa shell</body></html>",
    "/real.html": b"<html><head></head><body>real</body></html>",
    "/shadowed.html": b"<html><head></head><body>shadowed</body></html>",
    "/forced.html": b"<html><head></head><body>forced</body></html>",
    "/other.html": b"<html><head></head><body>other</body></html>",
    "/app/index.html": b"<html><head></head><body>app</body></html>",
    "/en/404.html": b"<html><head></head><body>en not found</body></html>",
    "/style.css": b"body { color: red }",
}

# (path, status, Location or None, body or None)
CASES: list[tuple[str, int, str | None, bytes | None]] = [
    ("/home", 301, "/", None),
    ("/blog/my-post.php", 301, "/blog/my-post", None),
    ("/news", 302, "/blog", None),  # the exact rule comes before /news/*
    ("/news?page=2&q=a%20b", 302, "/blog?page=2&q=a%20b", None),  # query passed on
    ("/old-temp", 307, "/new-temp", None),
    ("/old-perm", 308, "/new-perm", None),
    ("/see-other", 303, "/other", None),
    ("/home/", 301, "/", None),  # a trailing slash matches too
    ("/news/2024/hello", 301, "/blog/2024/hello", None),  # splat
    ("/articles/2024/05/01/hi", 301, "/blog/2024-05-01/hi", None),  # placeholders
    ("/external", 301, "https://example.com/elsewhere", None),
    ("/external?x=1", 301, "https://example.com/elsewhere?x=1", None),
    ("/app/settings/profile", 200, None, PAGES["/app/index.html"]),  # rewrite
    ("/pretty", 200, None, PAGES["/real.html"]),
    ("/shadowed.html", 200, None, PAGES["/shadowed.html"]),  # a file wins over a rule
    ("/forced.html", 301, "/other.html", None),  # ... unless forced with !
    ("/en/missing", 404, None, PAGES["/en/404.html"]),  # a 404 rule's body
    ("/first", 301, "/one", None),  # file order: the first rule wins
    ("/style.css", 200, None, PAGES["/style.css"]),
    ("/some/client/route", 200, None, PAGES["/index.html"]),  # the SPA fallback
    ("/_redirects", 200, None, PAGES["/index.html"]),  # never served as a file
]


def _assert_error(doc: Any, message: str) -> None:
    assert isinstance(doc, dict) and doc["error"]["code"] == "bad_request", doc
    assert doc["error"]["message"].startswith(message), doc


@pytest.mark.parametrize("env", ["production", "staging"])
async def test_redirects_cases_from_the_docs(api: Api, visitor: Visitor, env: str) -> None:
    await api.push("acme", {**PAGES, "/_redirects": REDIRECTS}, env=env)
    host = PRODUCTION_HOST if env == "production" else STAGING_HOST
    for path, status, location, body in CASES:
        for _ in range(2):  # the second answer may come from the hit path
            got, headers, data = await visitor.get(host, path)
            assert got == status, (path, got, data)
            assert headers.get("Location") == location, path
            assert headers["X-Edge-Env"] == env
            if body is not None:
                html = body.startswith(b"<html>")
                expected = inject_robots_meta(body) if env == "staging" and html else body
                assert data == expected, path
    # HEAD of a rewrite: the target's headers, no body.
    got, headers, data = await visitor.get(host, "/app/x", method="HEAD")
    assert got == 200 and data == b""


async def test_site_files_are_not_served_and_json_redirects_come_first(
    api: Api, visitor: Visitor
) -> None:
    files = {
        "/index.html": PAGES["/index.html"],
        "/_redirects": b"/home /from-file\n/gone /x 410\n",
        "/_headers": b"/*\n  X-Frame-Options: DENY\n",
    }
    settings = {"redirects": [{"from": "/home", "to": "/from-json", "status": 302}]}
    snap = await api.snapshot("acme", files, settings=settings)
    await api.set_env("acme", "production", snap)
    for path in ("/_redirects", "/_headers"):
        status, _, _ = await visitor.get(PRODUCTION_HOST, path)
        assert status == 404, path
    status, headers, _ = await visitor.get(PRODUCTION_HOST, "/home")
    assert (status, headers["Location"]) == (302, "/from-json")
    status, _, body = await visitor.get(PRODUCTION_HOST, "/gone")
    assert status == 410 and body == b"Gone\n"
    # The compiled rules are in the snapshot's settings; the files stay in its manifest.
    status, doc = await api.call("GET", f"/v1/sites/acme/snapshots/{snap}")
    assert status == 200
    assert "/_redirects" in doc["files"]
    rules = doc["settings"]["from_files"]["redirects"]
    assert rules[0] == {
        "line": 1,
        "from": "/home",
        "to": "/from-file",
        "status": 301,
        "force": False,
    }


HEADERS = b"""\
# Netlify's _headers syntax
/*
  X-Frame-Options: DENY
  X-Content-Type-Options: nosniff
/assets/*
  Cache-Control: public, max-age=600
  X-Frame-Options: SAMEORIGIN
/:lang/about
  Content-Language: :lang
/blog/
  X-Blog: yes
"""


async def test_headers_combine_with_placeholders_and_edge_keeps_its_own(
    api: Api, visitor: Visitor
) -> None:
    files = {
        "/index.html": b"<html><head></head><body>home</body></html>",
        "/assets/app.css": b"body{}",
        "/en/about/index.html": b"<html><head></head><body>about</body></html>",
        "/blog/index.html": b"<html><head></head><body>blog</body></html>",
        "/_headers": HEADERS,
    }
    await api.push("acme", files, env="production")
    await api.push("acme", files, env="staging")
    status, headers, _ = await visitor.get(PRODUCTION_HOST, "/assets/app.css")
    assert status == 200
    assert headers["X-Frame-Options"] == "DENY, SAMEORIGIN"  # two blocks combine
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "public, max-age=600"
    status, headers, _ = await visitor.get(PRODUCTION_HOST, "/en/about/")
    assert status == 200 and headers["Content-Language"] == "en"
    status, headers, _ = await visitor.get(PRODUCTION_HOST, "/blog/")
    assert headers["X-Blog"] == "yes" and headers["X-Frame-Options"] == "DENY"
    # Staging: the file's Cache-Control never replaces no-store, nor its noindex.
    status, headers, _ = await visitor.get(STAGING_HOST, "/assets/app.css")
    assert status == 200
    assert headers["Cache-Control"] == "no-store"
    assert headers["X-Robots-Tag"] == "noindex, nofollow"
    assert headers["X-Frame-Options"] == "DENY, SAMEORIGIN"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("/_redirects", b"/ok /fine\n/a\n", "_redirects:2: expected 'from to [status][!]'"),
        ("/_redirects", b"# c\n\n/a /b 999\n", "_redirects:3: status 999"),
        ("/_redirects", b"/a /b 301 Country=us\n", "_redirects:1: conditions"),
        ("/_redirects", b"/a //evil.example\n", "_redirects:1: '//evil.example'"),
        ("/_redirects", b"/a/*/b /c\n", "_redirects:1: '/a/*/b': '*' (the splat) may only end"),
        ("/_redirects", b"/a /b/:splat\n", "_redirects:1: '/b/:splat' uses :splat"),
        ("/_redirects", b"/a https://x.example/ 404\n", "_redirects:1: a 404 rule"),
        ("/_headers", b"/*\n  ETag: x\n", "_headers:2: ETag: this header cannot be set"),
        ("/_headers", b"/*\n  X-Edge-Env: production\n", "_headers:2: X-Edge-Env: this header"),
        ("/_headers", b"/*\n  X-Robots-Tag: all\n", "_headers:2: X-Robots-Tag: this header"),
        ("/_headers", b"/*\n  Content-Length: 1\n", "_headers:2: Content-Length: this header"),
        ("/_headers", b"  X-A: b\n", "_headers:1: a header line before any path line"),
        ("/_headers", b"/*\n  Bad Name: x\n", "_headers:2: Bad Name: not a valid header name"),
        ("/_headers", b"/*\n  Link: <//evil.example>\n", "_headers:2: Link: URL"),
    ],
)
async def test_a_bad_line_is_refused_naming_file_and_line(
    api: Api, name: str, text: bytes, message: str
) -> None:
    files = {"/index.html": b"<html></html>", name: text}
    await api.upload("acme", files)
    body = {"files": {p: {"sha256": hashlib.sha256(b).hexdigest()} for p, b in files.items()}}
    status, doc = await api.call("POST", "/v1/sites/acme/snapshots", json=body)
    assert status == 400, doc
    _assert_error(doc, message)
    # Nothing was created: the site still has no snapshot.
    status, doc = await api.call("GET", "/v1/sites/acme/environments")
    assert status == 200 and doc["staging"]["snapshot"] is None


async def test_rules_are_previewed_on_staging_then_published(api: Api, visitor: Visitor) -> None:
    site = {"/index.html": b"<html><head></head><body>v1</body></html>"}
    await api.push("acme", site, env="production")
    await api.push("acme", site, env="staging")
    with_rules = {**site, "/_redirects": b"/old /new 301\n"}
    await api.push("acme", with_rules, env="staging")
    status, headers, _ = await visitor.get(STAGING_HOST, "/old")
    assert (status, headers["Location"]) == (301, "/new")
    status, _, _ = await visitor.get(PRODUCTION_HOST, "/old")
    assert status == 404  # production has not got them yet
    status, doc = await api.publish()
    assert status == 200, doc
    status, headers, _ = await visitor.get(PRODUCTION_HOST, "/old")
    assert (status, headers["Location"]) == (301, "/new")
    # A later snapshot without the file drops its rules.
    await api.push("acme", site, env="staging")
    status, _, _ = await visitor.get(STAGING_HOST, "/old")
    assert status == 404


async def test_a_rewrite_to_another_origin_needs_an_upstream(api: Api, visitor: Visitor) -> None:
    files = {
        "/index.html": b"<html></html>",
        "/_redirects": b"/api/* https://api.example.com/v1/:splat 200\n",
    }
    await api.push("acme", files, env="production")
    status, _, body = await visitor.get(PRODUCTION_HOST, "/api/users")
    assert status == 502 and b"not an upstream" in body


async def test_edge_push_of_a_built_site_carries_its_files(
    server: EdgeServer, visitor: Visitor, tmp_path: Path
) -> None:
    """The CLI uploads ``_redirects`` / ``_headers`` as files; the server compiles them."""
    site = tmp_path / "dist"
    (site / "assets").mkdir(parents=True)
    (site / "index.html").write_bytes(PAGES["/index.html"])
    (site / "assets" / "index-BvK3x2aZ.js").write_bytes(b"f()")
    (site / "_redirects").write_bytes(b"/*  /index.html  200\n")
    (site / "_headers").write_bytes(b"/*\n  X-Frame-Options: DENY\n")
    assert server.cli("push", str(site), "--site", "acme", "--env", "production").returncode == 0
    status, headers, body = await visitor.get(PRODUCTION_HOST, "/dashboard/settings")
    assert (status, body, headers["X-Frame-Options"]) == (200, PAGES["/index.html"], "DENY")
    _, headers, _ = await visitor.get(PRODUCTION_HOST, "/assets/index-BvK3x2aZ.js")
    assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
    # A bad line: the push is refused naming file and line, production unchanged.
    (site / "_redirects").write_bytes(b"/*  /index.html  200\n/old\n")
    refused = server.cli("push", str(site), "--site", "acme", "--env", "production")
    assert refused.returncode != 0
    assert "_redirects:2: expected 'from to [status][!]'" in refused.stderr
    status, _, body = await visitor.get(PRODUCTION_HOST, "/dashboard/settings")
    assert (status, body) == (200, PAGES["/index.html"])
