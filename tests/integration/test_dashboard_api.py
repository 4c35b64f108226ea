"""What the dashboard needs from the admin listener: ``GET /v1/sites`` and ``/ui/``."""

from __future__ import annotations

import aiohttp

from tests.integration.conftest import PRODUCTION_HOST, STAGING_HOST, Api, EdgeServer
from tests.waiting import eventually


async def test_sites_lists_what_the_token_may_see(api: Api, server: EdgeServer) -> None:
    status, doc = await api.call("GET", "/v1/sites", as_="")
    assert status == 401
    assert doc["error"]["code"] == "unauthorized"
    status, doc = await api.call(
        "GET", "/v1/sites", as_="", headers={"Authorization": "Bearer nope"}
    )
    assert status == 401

    status, doc = await api.call("GET", "/v1/sites", as_="admin")
    assert status == 200, doc
    assert doc["caller"] == {"name": "admin", "role": "admin", "sites": []}
    assert doc["visitor"] == {"http": f"127.0.0.1:{server.port}", "https": None}
    assert [s["id"] for s in doc["sites"]] == ["acme", "other"]
    acme = doc["sites"][0]
    assert acme["production"] == {
        "hosts": [PRODUCTION_HOST, "www.acme.example"],
        "url": f"http://{PRODUCTION_HOST}:{server.port}",
    }
    # Configured hosts first, then the one staging_domain adds.
    assert acme["staging"] == {
        "hosts": [STAGING_HOST, "acme.staging.example"],
        "url": f"http://{STAGING_HOST}:{server.port}",
    }
    other = doc["sites"][1]
    assert other["staging"] == {
        "hosts": ["other.staging.example"],
        "url": f"http://other.staging.example:{server.port}",
    }

    # A token scoped to one site sees that site only, whatever its role.
    for name, site in (("editor", "acme"), ("publisher", "acme"), ("other", "other")):
        status, doc = await api.call("GET", "/v1/sites", as_=name)
        assert status == 200, doc
        assert [s["id"] for s in doc["sites"]] == [site]
        assert doc["caller"]["name"] == name
        assert doc["caller"]["sites"] == [site]
    status, doc = await api.call("GET", "/v1/sites", as_="editor")
    assert doc["caller"]["role"] == "editor"

    # The list is read-only.
    status, doc = await api.call("POST", "/v1/sites", as_="admin", json={})
    assert status == 405


async def test_sites_follow_a_reload(api: Api, server: EdgeServer) -> None:
    """The hosts shown are the configuration in force, not the one edge started with."""
    text = server.config_path.read_text()
    server.config_path.write_text(
        text.replace('hosts = ["other.example"]', 'hosts = ["other.example", "new.other.example"]')
    )
    result = server.cli("reload", "--config", str(server.config_path))
    assert result.returncode == 0, result.stderr

    async def hosts() -> list[str]:
        _, doc = await api.call("GET", "/v1/sites", as_="admin")
        return list(doc["sites"][1]["production"]["hosts"])

    wanted = ["other.example", "new.other.example"]
    # Each worker reloads on its own signal: wait until several answers in a row agree.
    async def answers() -> list[list[str]]:
        return [await hosts() for _ in range(6)]

    await eventually(answers, lambda found: found == [wanted] * 6, what="the reload")


async def test_ui_is_served_without_a_token_with_strict_headers(
    server: EdgeServer, session: aiohttp.ClientSession
) -> None:
    async with session.get(server.admin_url + "/ui", allow_redirects=False) as resp:
        assert resp.status == 308
        assert resp.headers["Location"] == "/ui/"

    async with session.get(server.admin_url + "/ui/") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
        page = await resp.text()
        csp = resp.headers["Content-Security-Policy"]
        etag = resp.headers["ETag"]
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Referrer-Policy"] == "no-referrer"
    directives = dict(d.strip().partition(" ")[::2] for d in csp.split(";") if d.strip())
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"  # no 'unsafe-inline', no 'unsafe-eval'
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in csp
    # No inline script or style, no external resource: everything is a file next to it.
    assert '<script type="module" src="app.js"></script>' in page
    assert "<script>" not in page and "<style" not in page and " style=" not in page
    assert "http://" not in page and "https://" not in page

    async with session.get(server.admin_url + "/ui/", headers={"If-None-Match": etag}) as resp:
        assert resp.status == 304

    for name, ctype in (
        ("app.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
        ("panels.js", "text/javascript; charset=utf-8"),
    ):
        async with session.get(f"{server.admin_url}/ui/{name}") as resp:
            assert resp.status == 200, name
            assert resp.headers["Content-Type"] == ctype
            assert resp.headers["Content-Security-Policy"] == csp
            body = await resp.text()
            assert "innerHTML" not in body and "eval(" not in body
            assert "localStorage" not in body and "document.cookie" not in body

    async with session.head(server.admin_url + "/ui/app.js") as resp:
        assert resp.status == 200

    # Only the dashboard's own files: no directory listing, no way out of the folder.
    for path in ("/ui/nope.js", "/ui/..%2Fapp.py", "/ui/%2e%2e/app.py", "/ui/ui.py"):
        async with session.get(server.admin_url + path) as resp:
            assert resp.status == 404, path
            assert (await resp.json())["error"]["code"] == "not_found"
