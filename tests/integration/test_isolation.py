"""What is not content stays in its environment (issue: isolation), over real HTTP."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from edge.admin_api.auth import new_token
from edge.visitor.preview import PreviewSigner
from tests.integration.conftest import (
    PRODUCTION_HOST,
    ROLES,
    STAGING_HOST,
    Api,
    EdgeServer,
    Visitor,
    free_port,
)
from tests.waiting import eventually

META = b'<meta name="robots" content="noindex, nofollow">'
SECRET_STAGING = "s3cret-staging"
SECRET_PRODUCTION = "s3cret-production"
FORMS = {"contact": {"redirect": "/thanks", "fields": ["name", "email", "message"],
                     "max_bytes": 2048, "max_fields": 5},
         "signup": {}}  # fmt: skip


def page(text: str) -> bytes:
    return f"<html><head></head><body>{text}</body></html>".encode()


@dataclass
class Receiver:
    """A loopback webhook target that records what it gets and can fail on purpose."""

    port: int = field(default_factory=free_port)
    fail_first: int = 0
    delay: float = 0.0  # seconds before each answer
    arrived: int = 0  # requests received, answered or not
    calls: list[tuple[dict[str, str], bytes, int]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.arrived += 1
        await asyncio.sleep(self.delay)
        status = 500 if self.fail_first > 0 else 200
        self.fail_first -= 1
        self.calls.append((dict(request.headers), body, status))
        return web.Response(status=status)

    def delivered(self, event: str | None = None) -> list[dict[str, Any]]:
        return [
            json.loads(body)
            for headers, body, status in self.calls
            if status == 200 and (event is None or headers.get("X-Edge-Event") == event)
        ]


@pytest.fixture
async def receivers() -> AsyncIterator[tuple[Receiver, Receiver]]:
    pair = (Receiver(), Receiver())
    runners = []
    for r in pair:
        app = web.Application()
        app.router.add_post("/{tail:.*}", r.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", r.port).start()
        runners.append(runner)
    yield pair
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
def server(tmp_path: Path, receivers: tuple[Receiver, Receiver]) -> Iterator[EdgeServer]:
    """Overrides the plain server: webhooks on two loopback receivers, a password."""
    staging, production = receivers
    srv = EdgeServer(root=tmp_path, tokens={name: new_token()[0] for name in ROLES})
    srv.extra_config = 'allow_private_targets = ["127.0.0.0/8"]\nanalytics_flush_seconds = 0.2'
    events = '["form.submitted", "environment.updated", "publish.failed"]'
    srv.env_extra = {
        "acme.production": f'webhooks = [{{ url = "http://127.0.0.1:{production.port}/hook",'
        f' events = {events}, secret_env = "HOOK_PRODUCTION" }}]',
        "acme.staging": f'webhooks = [{{ url = "http://127.0.0.1:{staging.port}/hook",'
        f' events = {events}, secret_env = "HOOK_STAGING" }}]\npassword_env = "PREVIEW_PW"',
    }
    srv.environ = {
        "HOOK_PRODUCTION": SECRET_PRODUCTION,
        "HOOK_STAGING": SECRET_STAGING,
        "PREVIEW_PW": "letmein",
    }
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


AUTH = {"Authorization": "Basic " + base64.b64encode(b"anyone:letmein").decode()}


def valid_signature(headers: dict[str, str], body: bytes, secret: str) -> bool:
    parts = dict(p.split("=", 1) for p in headers["X-Edge-Signature"].split(","))
    mac = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest(mac.hexdigest(), parts["v1"])


async def post_form(
    session: aiohttp.ClientSession, server: EdgeServer, host: str, name: str, **kw: Any
) -> tuple[int, dict[str, str], bytes]:
    headers = {"Host": host, **(AUTH if host == STAGING_HOST else {}), **kw.pop("headers", {})}
    async with session.post(
        f"{server.url}/_edge/forms/{name}", headers=headers, allow_redirects=False, **kw
    ) as resp:
        return resp.status, dict(resp.headers), await resp.read()


async def site_with_forms(api: Api) -> None:
    snap = await api.snapshot("acme", {"/index.html": page("home")}, settings={"forms": FORMS})
    await api.set_env("acme", "staging", snap)
    await api.publish()


async def test_form_posted_on_staging_stays_in_staging(
    server: EdgeServer,
    api: Api,
    session: aiohttp.ClientSession,
    receivers: tuple[Receiver, Receiver],
) -> None:
    staging_hook, production_hook = receivers
    await site_with_forms(api)
    status, headers, _ = await post_form(
        session, server, STAGING_HOST, "contact", data={"name": "Test", "email": "t@x.example"}
    )
    assert status == 303 and headers["Location"] == "/thanks"
    assert headers["X-Robots-Tag"] == "noindex, nofollow"

    status, doc = await api.call("GET", "/v1/sites/acme/forms/staging")
    assert [s["fields"] for s in doc["submissions"]] == [{"name": "Test", "email": "t@x.example"}]
    status, doc = await api.call("GET", "/v1/sites/acme/forms/production")
    assert doc["submissions"] == []

    await eventually(lambda: bool(staging_hook.delivered("form.submitted")))
    headers, body, _ = next(
        c for c in staging_hook.calls if c[0]["X-Edge-Event"] == "form.submitted"
    )
    assert valid_signature(headers, body, SECRET_STAGING)
    assert json.loads(body)["env"] == "staging"
    # A delivery is queued with the submission: production's queue has none.
    assert await deliveries(api, "production", "form.submitted") == []

    # Production's form goes to production's inbox and hook; JSON works, 204 without redirect.
    # Deliveries go out in the order they were queued: once production's hook has this
    # later one, a staging submission sent there by mistake would have arrived first.
    status, _, _ = await post_form(session, server, PRODUCTION_HOST, "signup", json={"a": "1"})
    assert status == 204
    forms = await eventually(
        lambda: production_hook.delivered("form.submitted"),
        lambda found: {"a": "1"} in [d["data"]["fields"] for d in found],
        what="production's form",
    )
    assert [(d["env"], d["data"]["fields"]) for d in forms] == [("production", {"a": "1"})]
    assert len(staging_hook.delivered("form.submitted")) == 1
    result = server.cli("inbox", "--site", "acme", "--env", "production")
    assert "signup" in result.stdout and "a=1" in result.stdout


async def test_bad_form_posts_are_refused_whole(
    server: EdgeServer, api: Api, session: aiohttp.ClientSession
) -> None:
    await site_with_forms(api)
    cases = [
        ("nope", {"data": {"a": "1"}}, 404),
        ("contact", {"data": {"name": "x" * 3000}}, 413),
        ("contact", {"data": {"surprise": "1"}}, 400),
        ("contact", {"data": b"name=%ff", "headers": {"Content-Type":
                                                       "application/x-www-form-urlencoded"}}, 400),
        ("contact", {"data": "&".join(["name=a"] * 6), "headers": {"Content-Type":
                                                        "application/x-www-form-urlencoded"}}, 400),
        ("contact", {"data": b"{not json", "headers": {"Content-Type": "application/json"}}, 400),
        ("contact", {"data": b"hello", "headers": {"Content-Type": "text/plain"}}, 415),
    ]  # fmt: skip
    for name, kw, expected in cases:
        status, _, _ = await post_form(session, server, PRODUCTION_HOST, name, **kw)
        assert status == expected, (name, kw)
    form = aiohttp.FormData()
    form.add_field("name", b"file-bytes", filename="x.txt", content_type="text/plain")
    status, _, _ = await post_form(session, server, PRODUCTION_HOST, "contact", data=form)
    assert status == 400
    multipart = aiohttp.FormData(default_to_multipart=True)
    multipart.add_field("name", "multi")
    multipart.add_field("message", "héllo")
    status, _, _ = await post_form(session, server, PRODUCTION_HOST, "contact", data=multipart)
    assert status == 303
    _, doc = await api.call("GET", "/v1/sites/acme/forms/production")
    assert [s["fields"] for s in doc["submissions"]] == [{"name": "multi", "message": "héllo"}]
    # A crafted part header is a 400 at once, not a 500 or a stalled worker.
    crafted = (
        b'--b\r\nContent-Disposition: form-data; name="a"'
        + b'; p="x"' * 8000
        + b"\r\n\r\nv\r\n--b--\r\n"
    )
    status, _, _ = await post_form(
        session,
        server,
        PRODUCTION_HOST,
        "signup",
        data=crafted,
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert status in (400, 413)


async def deliveries(api: Api, env: str, event: str) -> list[dict[str, Any]]:
    """The delivery log of one environment's webhooks for ``event``, newest first."""
    _, doc = await api.call("GET", f"/v1/sites/acme/webhooks/{env}")
    return [d for d in doc["deliveries"] if d["event"] == event]


async def later_delivery(
    session: aiohttp.ClientSession, server: EdgeServer, hook: Receiver
) -> None:
    """Post two production forms, one after the other's delivery, and wait for both.

    The outbox claims in queue order, and a pass finishes every attempt it claimed
    before the next pass claims more. The second form is queued once the first was
    delivered, so it goes out in a later pass: once it arrived, anything queued
    before (a duplicate, a retry) has been sent and answered.
    """
    for _ in range(2):
        before = len(hook.delivered("form.submitted"))
        status, _, _ = await post_form(
            session, server, PRODUCTION_HOST, "signup", json={"later": "1"}
        )
        assert status == 204
        await eventually(
            lambda n=before: len(hook.delivered("form.submitted")) > n,
            what="the later delivery",
        )


async def test_webhook_retries_until_delivered_once_across_a_restart(
    server: EdgeServer,
    api: Api,
    session: aiohttp.ClientSession,
    receivers: tuple[Receiver, Receiver],
) -> None:
    _, production_hook = receivers
    production_hook.fail_first = 2
    await site_with_forms(api)  # the publish emits environment.updated on production
    await eventually(lambda: production_hook.calls, what="a first delivery attempt")
    await asyncio.to_thread(server.restart)  # the receiver keeps answering meanwhile
    await eventually(lambda: production_hook.delivered("environment.updated"), what="the delivery")
    delivered = await deliveries(api, "production", "environment.updated")
    assert delivered[0]["status"] == "delivered" and delivered[0]["attempts"] == 3
    # A later event, delivered: a second copy of the first would have gone out before it.
    await later_delivery(session, server, production_hook)
    assert [c[2] for c in production_hook.calls if c[0]["X-Edge-Event"] ==
            "environment.updated"] == [500, 500, 200]  # fmt: skip


async def test_a_stop_lets_a_delivery_in_flight_finish_and_records_it(
    server: EdgeServer,
    api: Api,
    session: aiohttp.ClientSession,
    receivers: tuple[Receiver, Receiver],
) -> None:
    """SIGTERM during a webhook POST: the answer is recorded, nothing is sent twice."""
    _, production_hook = receivers
    production_hook.delay = 1.0
    await site_with_forms(api)  # the publish emits environment.updated on production
    await eventually(lambda: production_hook.arrived >= 1, what="the delivery in flight")
    # In a thread: the receiver answers on this test's event loop meanwhile.
    assert await asyncio.to_thread(server.stop) == 0
    assert len(production_hook.delivered("environment.updated")) == 1
    server.start()
    delivered = await deliveries(api, "production", "environment.updated")
    # Cut off mid-POST, it would still be leased (and later sent a second time).
    assert delivered[0]["status"] == "delivered" and delivered[0]["attempts"] == 1
    production_hook.delay = 0.0
    await later_delivery(session, server, production_hook)
    assert production_hook.arrived == 3  # the first event once, then the later two


async def test_analytics_never_mix(server: EdgeServer, api: Api, visitor: Visitor) -> None:
    await site_with_forms(api)
    for _ in range(3):
        await visitor.get(PRODUCTION_HOST, "/")
    await visitor.get(STAGING_HOST, "/", headers=AUTH)

    async def totals() -> tuple[int, int]:
        # Each of the two workers flushes its own counts: wait for both environments'.
        _, production = await api.call("GET", "/v1/sites/acme/analytics/production")
        _, staging = await api.call("GET", "/v1/sites/acme/analytics/staging")
        return production["total"], staging["total"]

    await eventually(totals, lambda seen: seen == (3, 1), what="3 production and 1 staging view")
    _, doc = await api.call("GET", "/v1/sites/acme/analytics/staging")
    assert doc["total"] == 1 and doc["paths"][0]["path"] == "/index.html"


async def test_settings_apply_only_once_published(api: Api, visitor: Visitor) -> None:
    await api.push("acme", {"/index.html": page("v1"), "/new.html": page("new")})
    await api.publish()
    settings = {
        "redirects": [{"from": "/old", "to": "/new", "status": 301}],
        "headers": {"/": {"X-Frame-Options": "DENY"}},
    }
    snap = await api.snapshot(
        "acme", {"/index.html": page("v1"), "/new.html": page("new")}, settings=settings
    )
    await api.set_env("acme", "staging", snap)
    status, headers, _ = await visitor.get(STAGING_HOST, "/old", headers=AUTH)
    assert status == 301 and headers["Location"] == "/new"
    _, headers, _ = await visitor.get(STAGING_HOST, "/", headers=AUTH)
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Cache-Control"] == "no-store"
    status, headers, _ = await visitor.get(PRODUCTION_HOST, "/old")
    assert status == 404 and "X-Frame-Options" not in headers
    await api.publish()
    status, headers, _ = await visitor.get(PRODUCTION_HOST, "/old")
    assert status == 301 and headers["Location"] == "/new"

    for bad, key in [
        ({"redirects": [{"from": "/x", "to": "//evil.example"}]}, "redirects[0].to"),
        ({"redirects": [{"from": "/x", "to": "/\\evil.example"}]}, "redirects[0].to"),
        ({"redirects": [{"from": "/x", "to": "/y", "status": 200}]}, "redirects[0].status"),
        ({"headers": {"/": {"Set-Cookie": "a=b"}}}, "Set-Cookie"),
        ({"headers": {"/": {"X-Robots-Tag": "all"}}}, "X-Robots-Tag"),
        ({"forms": {"f": {"redirect": "javascript:alert(1)"}}}, "forms.f.redirect"),
        ({"media_prefix": "media"}, "media_prefix"),
        ({"surprise": 1}, "surprise"),
    ]:
        status, doc = await api.call(
            "POST", "/v1/sites/acme/snapshots", json={"files": {}, "settings": bad}
        )
        assert status == 400 and key in doc["error"]["message"], (bad, doc)


async def test_staging_reads_production_media_never_the_reverse(api: Api, visitor: Visitor) -> None:
    logo = b"\x89PNG-production-logo"
    await api.push("acme", {"/index.html": page("p"), "/media/logo.png": logo})
    await api.publish()
    await api.push("acme", {"/index.html": page("s"), "/media/new.png": b"\x89PNG-new"})
    status, headers, body = await visitor.get(STAGING_HOST, "/media/logo.png", headers=AUTH)
    assert status == 200 and body == logo
    assert headers["X-Robots-Tag"] == "noindex, nofollow" and headers["X-Edge-Env"] == "staging"
    status, _, _ = await visitor.get(PRODUCTION_HOST, "/media/new.png")
    assert status == 404
    status, _, _ = await visitor.get(STAGING_HOST, "/other/logo.png", headers=AUTH)
    assert status == 404


async def test_preview_password_and_signed_links(
    server: EdgeServer, api: Api, visitor: Visitor, session: aiohttp.ClientSession
) -> None:
    first = await api.push("acme", {"/index.html": page("first")})
    await api.publish()
    status, headers, _ = await visitor.get(STAGING_HOST, "/")
    assert status == 401 and headers["WWW-Authenticate"].startswith("Basic")
    assert headers["X-Robots-Tag"] == "noindex, nofollow"
    wrong = {"Authorization": "Basic " + base64.b64encode(b"x:wrong").decode()}
    assert (await visitor.get(STAGING_HOST, "/", headers=wrong))[0] == 401
    assert (await visitor.get(STAGING_HOST, "/", headers=AUTH))[0] == 200
    assert (await visitor.get(PRODUCTION_HOST, "/"))[0] == 200  # never password-protected

    status, link = await api.call("POST", "/v1/sites/acme/preview-links", json={"ttl": 600})
    assert status == 201 and link["snapshot"] == first
    await api.push("acme", {"/index.html": page("second")})  # staging moves on
    url = link["url"].replace(f"http://{STAGING_HOST}:{server.port}", server.url)
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as browser:
        async with browser.get(url, headers={"Host": STAGING_HOST}, allow_redirects=False) as r:
            assert r.status == 303
        async with browser.get(server.url + "/", headers={"Host": STAGING_HOST}) as r:
            assert r.status == 200 and b"first" in await r.read()  # pinned
            assert r.headers["X-Edge-Snapshot"] == first

    token = url.split("token=")[1]
    tampered = token.replace(first, "0" * len(first))
    for bad in (tampered, token[:-2] + "xx"):
        status, _, _ = await visitor.get(STAGING_HOST, f"/_edge/preview?token={bad}")
        assert status == 403
    key = (server.root / "data" / "preview.key").read_bytes()
    expired = PreviewSigner(key).sign("acme", first, ttl=-10)
    status, _, _ = await visitor.get(STAGING_HOST, f"/_edge/preview?token={expired}")
    assert status == 403
