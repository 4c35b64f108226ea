"""``/blog`` held only as ``blog/index.html`` answers 301 to ``/blog/`` (issue 15, item 4).

Served at ``/blog``, the page's relative links resolved against ``/`` and broke.
"""

from __future__ import annotations

from tests.integration.conftest import PRODUCTION_HOST, STAGING_HOST, Api, Visitor

INDEX = b'<html><head></head><body><a href="post.html">post</a></body></html>'
SITE = {
    "/blog/index.html": INDEX,
    "/blog/post.html": b"<html><head></head><body>post</body></html>",
    "/about.html": b"<html><head></head><body>about</body></html>",
}


async def test_a_directory_without_its_slash_is_redirected(api: Api, visitor: Visitor) -> None:
    await api.push("acme", SITE, env="production")
    status, headers, _ = await visitor.get(PRODUCTION_HOST, "/blog?page=2&q=a%20b")
    assert status == 301
    assert headers["Location"] == "/blog/?page=2&q=a%20b"
    assert headers["X-Edge-Env"] == "production" and "X-Robots-Tag" not in headers
    status, _, body = await visitor.get(PRODUCTION_HOST, "/blog/")
    assert (status, body) == (200, INDEX)
    status, _, _ = await visitor.get(PRODUCTION_HOST, "/blog", method="HEAD")
    assert status == 301
    # A page resolving without the slash is served as before.
    status, _, _ = await visitor.get(PRODUCTION_HOST, "/about")
    assert status == 200
    status, _, _ = await visitor.get(PRODUCTION_HOST, "/nowhere")
    assert status == 404


async def test_staging_redirects_too_with_its_noindex_headers(api: Api, visitor: Visitor) -> None:
    await api.push("acme", SITE)
    status, headers, _ = await visitor.get(STAGING_HOST, "/blog")
    assert status == 301
    assert headers["Location"] == "/blog/"
    assert headers["X-Edge-Env"] == "staging"
    assert headers["X-Robots-Tag"] == "noindex, nofollow"
    assert headers["Cache-Control"] == "no-store"
