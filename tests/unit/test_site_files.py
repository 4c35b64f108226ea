"""``_redirects`` / ``_headers`` parsing and compiled matching (issue 16). Pure."""

from __future__ import annotations

import pytest

from edge.errors import BadRequest
from edge.snapshots.fromfiles import FROM_FILES, with_site_files, without_derived
from edge.snapshots.immutable import hashed_name
from edge.snapshots.model import ManifestEntry
from edge.snapshots.rules import HeaderTable, PathPatterns, RedirectTable, request_forms
from edge.snapshots.settings import REFUSED_HEADERS, compile_settings
from edge.snapshots.sitefiles import parse_headers, parse_redirects
from edge.visitor.conditional import choose_coding


def table(text: str) -> RedirectTable:
    return RedirectTable(parse_redirects(text))


def test_statuses_force_and_defaults() -> None:
    rules = parse_redirects("/a /b\n/c /d 302\n/e /f 200!\n/g /h !\n  # indented comment\n")
    assert [(r.status, r.force) for r in rules] == [
        (301, False),
        (302, False),
        (200, True),
        (301, True),
    ]
    assert [r.line for r in rules] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("rules", "path", "exists", "expected"),
    [
        ("/news/* /blog/:splat", "/news/a/b", False, "/blog/a/b"),
        ("/news/* /blog/:splat", "/news", False, "/blog/"),
        ("/p/:y/:s /:y-:s", "/p/2024/x", False, "/2024-x"),
        ("/p/:y/:s /:y-:s", "/p/2024", False, None),
        ("/a /b\n/* /index.html 200", "/a/", False, "/b"),
        ("/* /index.html 200\n/a /b", "/a", False, "/index.html"),  # order
        ("/a.html /b 301", "/a.html", True, None),  # shadowed
        ("/a.html /b 301!", "/a.html", True, "/b"),
        ("/x/* /y/:splat", "/x/é ü", False, "/y/%C3%A9%20%C3%BC"),  # quoted in a Location
        ("/x/* /y/:splat 200", "/x/é", False, "/y/é"),  # a rewrite path stays decoded
        ("/über /café/:x", "/über", False, "/caf%C3%A9/:x"),  # unbound name kept, ASCII out
    ],
)
def test_matching(rules: str, path: str, exists: bool, expected: str | None) -> None:
    found = table(rules).match(path, exists)
    assert (None if found is None else found.target) == expected


def test_exact_and_pattern_order_is_file_order() -> None:
    patterns = PathPatterns(["/a/*", "/a/b", "/c", "/:x"])
    assert patterns.first("/a/b") == (0, {"splat": "b"})
    assert patterns.first("/c") == (2, {})
    assert patterns.first("/d") == (3, {"x": "d"})
    assert patterns.first("/d/e") is None


def test_ten_thousand_rules_compile_and_match() -> None:
    lines = [f"/old/{i}/:slug /new/{i}/:slug" for i in range(5000)]
    lines += [f"/page-{i} /p/{i}" for i in range(5000)]
    t = table("\n".join(lines))
    assert len(t) == 10_000
    found = t.match("/old/4999/x", False)
    assert found is not None and found.target == "/new/4999/x"
    found = t.match("/page-4321", False)
    assert found is not None and found.target == "/p/4321"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("/a", "_redirects:1: expected"),
        ("/a /b 301 extra", "_redirects:1: expected"),
        ("/a /b abc", "_redirects:1: 'abc' is not a status"),
        ("/a /b 418", "_redirects:1: status 418"),
        ("a /b", "_redirects:1: 'a': a path starts with '/'"),
        ("https://x.example/* /b", "_redirects:1: 'https://x.example/*': rules for a whole"),
        ("/a/../b /c", "_redirects:1: '/a/../b': not a clean path"),
        ("/a /b?x=1 200 Role=admin", "_redirects:1: conditions (Role=admin)"),
        ("/store id=:id /blog/:id 301", "_redirects:1: query-parameter conditions (id=:id)"),
        ("/a /b Role=admin", "_redirects:1: conditions (Role=admin)"),
        ("/:1x /b", "_redirects:1: '/:1x': a placeholder"),
        ("/a javascript:alert(1)", "_redirects:1: 'javascript:alert(1)'"),
    ],
)
def test_bad_redirect_lines(text: str, message: str) -> None:
    with pytest.raises(BadRequest) as exc:
        parse_redirects(text)
    assert exc.value.message.startswith(message), exc.value.message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "# about\n\n/*\n  X-Edge-Cache: hit",
            "_headers:4: X-Edge-Cache: this header cannot be set",
        ),
        ("/*\n  Content-Length: 1", "_headers:2: Content-Length: this header cannot be set"),
        ("/*\n  X-A: a\u0000b", "_headers:2: X-A: value must not contain control characters"),
        ("/*\n  X-A: " + "a" * 5000, "_headers:2: line longer than"),
        ("  X-A: a", "_headers:1: a header line before any path line"),
    ],
)
def test_bad_header_lines(text: str, message: str) -> None:
    with pytest.raises(BadRequest) as exc:
        parse_headers(text, REFUSED_HEADERS)
    assert exc.value.message.startswith(message), exc.value.message


def test_blank_and_comment_lines_are_skipped_but_counted() -> None:
    rules = parse_redirects("# moved pages\n\n   \n/a /b\n")
    assert [(r.line, r.from_, r.to) for r in rules] == [(4, "/a", "/b")]
    with pytest.raises(BadRequest, match=r"^_redirects:3: line longer than"):
        parse_redirects("# x\n\n/a /" + "b" * 5000)


def test_header_blocks_combine_and_substitute() -> None:
    blocks = parse_headers(
        "/*\n  A: 1\n  A: 2\n/:lang/*\n  Content-Language: :lang\n  A: 3\n", REFUSED_HEADERS
    )
    headers = HeaderTable(blocks)
    assert headers.headers_for(["/en/x"]) == {"A": "1, 2, 3", "Content-Language": "en"}
    assert headers.headers_for(["/"]) == {"A": "1, 2"}


def test_request_forms_of_a_manifest_path() -> None:
    assert request_forms("/a/index.html") == ("/a/index.html", "/a/", "/a")
    assert request_forms("/index.html") == ("/index.html", "/")
    assert request_forms("/b.html") == ("/b.html", "/b")
    assert request_forms("/c.css") == ("/c.css",)


def test_file_headers_replace_json_headers_of_the_same_name() -> None:
    settings = {
        "headers": {"/": {"X-Frame-Options": "DENY", "X-A": "json"}},
        FROM_FILES: {"headers": [{"line": 1, "path": "/*", "headers": [["x-a", "file"]]}]},
    }
    compiled = compile_settings(settings)
    assert compiled.headers_for("/index.html") == {"X-Frame-Options": "DENY", "x-a": "file"}


async def test_from_files_is_derived_from_the_manifest() -> None:
    blobs = {"r" * 64: b"/a /b\n", "h" * 64: b"/*\n  X-A: 1\n"}
    files = {
        "/_redirects": ManifestEntry(sha256="r" * 64, content_type="text/plain", size=6),
        "/_headers": ManifestEntry(sha256="h" * 64, content_type="text/plain", size=12),
    }

    async def read(sha: str) -> bytes | None:
        return blobs.get(sha)

    stale = {"media_prefix": "/m/", FROM_FILES: {"redirects": []}}
    settings = await with_site_files(files, stale, read)
    assert settings["media_prefix"] == "/m/"
    assert settings[FROM_FILES]["redirects"][0]["to"] == "/b"
    assert settings[FROM_FILES]["headers"][0]["headers"] == [["X-A", "1"]]
    assert without_derived(settings) == {"media_prefix": "/m/"}
    assert FROM_FILES not in await with_site_files({}, settings, read)  # file gone, rules gone


@pytest.mark.parametrize(
    ("accept", "coding"),
    [
        ("gzip, deflate, br, zstd", 3),
        ("gzip, br", 2),
        ("gzip", 1),
        ("x-gzip", 1),
        ("br;q=0.5, gzip;q=0.9", 1),
        ("zstd;q=0, *", 2),
        ("*;q=0", 0),
        ("identity", 0),
        ("br;q=bogus, gzip", 1),
        ("", 0),
    ],
)
def test_choose_coding(accept: str, coding: int) -> None:
    assert choose_coding(accept) == coding


@pytest.mark.parametrize(
    ("path", "hashed"),
    [
        ("/app.3f9a1c2b.js", True),
        ("/assets/index-BvK3x2aZ.css", True),
        ("/assets/index-DfKwLpQa.js", True),
        ("/main.min.5e1f3c0a9b8d7e6f5e1f3c0a9b8d7e6f5e1f3c0a9b8d7e6f5e1f3c0a9b8d7e6f.css", True),
        ("/jquery-3.6.0.min.js", False),
        ("/photo-20240101.jpg", False),
        ("/bootstrap.bundle.min.js", False),
        ("/about.html", False),
        ("/my-Component.js", False),
    ],
)
def test_hashed_names(path: str, hashed: bool) -> None:
    assert hashed_name(path) is hashed
