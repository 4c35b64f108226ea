"""Hostile request paths over raw sockets: nothing outside the snapshot's manifest.

Production's snapshot holds a few pages; staging holds a draft production lacks;
the other site holds a page of its own; the server's data directory and
configuration sit on the same disk. No spelling of a path reaches any of those
from acme's production host.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.conftest import PRODUCTION_HOST, EdgeServer
from tests.security.wire_support import exchange, new_server, publish_site

HOME = b"<html><head></head><body>home</body></html>"
DOCS = b"<html><head></head><body>docs index</body></html>"
PAGE = b"<html><head></head><body>docs page</body></html>"
LITERAL = b"<html><head></head><body>a file literally named %2e%2e</body></html>"
DRAFT = b"draft only on staging"
FOREIGN = b"other site's page"
SECRETS = (DRAFT, FOREIGN, b"root:", b"[server]", b"SQLite format")


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeServer]:
    srv = new_server(tmp_path_factory.mktemp("paths"))
    srv.start()
    try:
        site = {
            "/index.html": HOME,
            "/docs/index.html": DOCS,
            "/docs/page.html": PAGE,
            "/%2e%2e/literal.html": LITERAL,
        }
        publish_site(srv, site)
        publish_site(srv, {**site, "/draft.html": DRAFT}, env="staging")
        publish_site(srv, {"/other-secret.html": FOREIGN}, site="other")
        yield srv
    finally:
        srv.stop()


CASES = [
    # inside the root: resolved like any URL
    ("//docs//page.html", 200, PAGE),
    ("/docs/./page.html", 200, PAGE),
    ("/docs/../index.html", 200, HOME),
    ("/../../../index.html", 200, HOME),
    ("/docs/%2e%2e/index.html", 200, HOME),
    ("/docs/page.html?../../../etc/passwd", 200, PAGE),
    ("/docs/", 200, DOCS),
    ("/%252e%252e/literal.html", 200, LITERAL),  # decoded once: the literal name
    # leaving the root, other environments, other sites, the disk: not found
    ("/%2e%2e/%2e%2e/etc/passwd", 404, None),
    ("/..%2f..%2f..%2fetc%2fpasswd", 404, None),
    ("/%2e%2e%2f%2e%2e%2fedge.toml", 404, None),
    ("/docs/..%2f..%2f..%2fdata/edge.sqlite", 404, None),
    ("/%252e%252e/%252e%252e/etc/passwd", 404, None),
    ("/draft.html", 404, None),
    ("/docs/../draft.html", 404, None),
    ("/docs/%2e%2e/draft.html", 404, None),
    ("/other-secret.html", 404, None),
    ("/%2e%2e%2fother%2fother-secret.html", 404, None),
    # never a path: refused
    ("/%c0%ae%c0%ae/index.html", 400, None),
    ("/%c0%af", 400, None),
    ("/%e0%80%ae%e0%80%ae/", 400, None),
    ("/docs%5c..%5cindex.html", 400, None),
    ("/docs\\..\\index.html", 400, None),
    ("/index.html%00", 400, None),
    ("/index.html%00.png", 400, None),
    ("/%00", 400, None),
    ("/%ff", 400, None),
    ("/" + "a/" * 1100, 400, None),
    ("*", 400, None),
]


@pytest.mark.parametrize(("target", "status", "body"), CASES, ids=[c[0][:60] for c in CASES])
def test_hostile_paths(edge: EdgeServer, target: str, status: int, body: bytes | None) -> None:
    request = f"GET {target} HTTP/1.1\r\nHost: {PRODUCTION_HOST}\r\nConnection: close\r\n\r\n"
    got = exchange(edge.port, request.encode("latin-1"))
    assert got.first.status == status, (target, got.raw[:300])
    if body is not None:
        assert got.first.body == body
    for secret in SECRETS:
        assert secret not in got.raw, (target, secret)
    if target != "*":  # the parser refuses that one before any site is involved
        assert got.first.headers.get("x-edge-env") == "production"


def test_the_staging_draft_is_served_on_staging(edge: EdgeServer) -> None:
    """Control: the draft exists; only production's paths cannot reach it."""
    request = b"GET /draft.html HTTP/1.1\r\nHost: acme-preview.example\r\nConnection: close\r\n\r\n"
    got = exchange(edge.port, request)
    assert got.first.status == 200 and DRAFT in got.first.body
