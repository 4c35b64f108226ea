"""Inboxes, analytics, roles, errors and narrow screens, in a real browser."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.dashboard import Dashboard, Page, Route, expect, html
from tests.integration.conftest import PRODUCTION_HOST, STAGING_HOST, Api, EdgeServer, Visitor

pytestmark = pytest.mark.timeout(240)

FORMS = {"forms": {"contact": {}}}
HOSTILE = '<img src=x onerror="document.title=1">'


async def post_form(
    server: EdgeServer, session: aiohttp.ClientSession, host: str, fields: dict[str, str]
) -> None:
    async with session.post(
        server.url + "/_edge/forms/contact", data=fields, headers={"Host": host}
    ) as resp:
        assert resp.status == 204, await resp.text()


async def test_inboxes_and_analytics_stay_per_environment(
    server: EdgeServer,
    api: Api,
    visitor: Visitor,
    session: aiohttp.ClientSession,
    page: Page,
    tmp_path: Path,
) -> None:
    await api.push("acme", {"/index.html": html("home"), "/about.html": html("about")})
    snap = await api.snapshot(
        "acme", {"/index.html": html("home"), "/about.html": html("about")}, settings=FORMS
    )
    await api.set_env("acme", "staging", snap)
    status, doc = await api.publish()
    assert status == 200, doc
    await post_form(server, session, PRODUCTION_HOST, {"name": HOSTILE, "message": "hello prod"})
    await post_form(server, session, STAGING_HOST, {"name": "tester", "message": "hello staging"})
    for host, path, times in (
        (PRODUCTION_HOST, "/", 3),
        (PRODUCTION_HOST, "/about.html", 2),
        (STAGING_HOST, "/", 1),
    ):
        for _ in range(times):
            status, _, _ = await visitor.get(host, path)
            assert status == 200

    dash = Dashboard(page, server)
    await dash.signed_in("admin")
    production_inbox = page.get_by_test_id("inbox-production")
    staging_inbox = page.get_by_test_id("inbox-staging")
    await expect(production_inbox).to_contain_text("hello prod")
    await expect(production_inbox).not_to_contain_text("hello staging")
    await expect(staging_inbox).to_contain_text("hello staging")
    await expect(staging_inbox).not_to_contain_text("hello prod")
    await expect(production_inbox.locator(".env-badge")).to_have_text("PRODUCTION")
    # A visitor's markup is shown as text, never run.
    await expect(production_inbox).to_contain_text(HOSTILE)
    assert await page.locator("#forms img").count() == 0
    assert await page.title() != "1"

    # Page views: counts are flushed every 0.2 s; reload until they show.
    total = page.get_by_test_id("views-total-production")
    await dash.reload_until(total, "5")
    await expect(page.get_by_test_id("views-total-staging")).to_have_text("1")
    chart = page.get_by_test_id("chart-production")
    await expect(chart).to_be_visible()
    bars = chart.locator("rect.bar")
    assert await bars.count() == 31  # one per day, the last 30 days and today
    views = [int(await bars.nth(i).get_attribute("data-views") or 0) for i in range(31)]
    assert views[-1] == 5 and sum(views) == 5
    assert float(await bars.nth(30).get_attribute("height") or 0) > 0
    await expect(chart.locator("title").first).to_contain_text("5 in all")
    await expect(page.locator("#analytics")).to_contain_text("/about.html")
    folder = Path(os.environ.get("EDGE_E2E_SCREENSHOTS") or tmp_path)
    await page.locator("#forms").screenshot(path=str(folder / "inboxes.png"))
    await page.locator("#analytics").screenshot(path=str(folder / "analytics.png"))


PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}


@pytest.mark.parametrize("context_options", [PHONE], ids=["phone"])
async def test_an_editor_sees_everything_it_may_at_a_narrow_width(
    server: EdgeServer, api: Api, page: Page, tmp_path: Path, context_options: dict[str, Any]
) -> None:
    await api.push("acme", {"/index.html": html("v1")})
    await api.publish()
    await api.push("acme", {"/index.html": html("v2"), "/new.html": html("new")})

    dash = Dashboard(page, server)
    await dash.signed_in("editor")
    await expect(page.locator("#diff tbody tr")).to_have_count(2)
    for name in ("Publish all to production", "Schedule", "Refresh staging from production"):
        await expect(page.get_by_role("button", name=name, exact=True)).to_be_disabled()
    await expect(page.locator(".needs-publisher")).to_be_visible()
    # The production inbox needs the publisher role: the server's reason is shown.
    await expect(page.get_by_test_id("inbox-production")).to_contain_text(
        "this call needs the publisher role"
    )
    await expect(page.get_by_test_id("inbox-staging")).to_contain_text("No submissions yet")

    # Nothing is wider than the screen: tables scroll inside their own box.
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    folder = Path(os.environ.get("EDGE_E2E_SCREENSHOTS") or tmp_path)
    await page.screenshot(path=str(folder / "narrow.png"), full_page=True)


async def test_a_failed_action_shows_the_servers_error(
    server: EdgeServer, api: Api, page: Page
) -> None:
    await api.push("acme", {"/index.html": html("v1")})
    await api.publish()
    await api.push("acme", {"/index.html": html("v2")})
    status, doc = await api.call(
        "POST", "/v1/sites/acme/schedules", json={"at": "2099-01-01T00:00:00Z"}
    )
    assert status == 201, doc

    dash = Dashboard(page, server)
    await dash.signed_in("publisher")
    row = page.locator(f'tr[data-schedule="{doc["id"]}"]')
    await row.get_by_role("button", name="Cancel").click()
    await expect(dash.confirm_dialog).to_be_visible()
    # Someone else cancels it while this operator reads the dialog.
    status, _ = await api.call("DELETE", f"/v1/sites/acme/schedules/{doc['id']}")
    assert status == 204
    await dash.confirm()
    await expect(dash.error).to_contain_text(f"schedule {doc['id']} is cancelled, not pending")
    await expect(dash.error).to_contain_text("409 conflict")
    await expect(row).to_have_attribute("data-status", "cancelled")

    # Staging moves while the publish dialog is open: the publish is refused (412)
    # instead of publishing something the operator did not see.
    await page.get_by_role("button", name="Publish all to production").click()
    await expect(dash.confirm_dialog).to_be_visible()
    moved = await api.push("acme", {"/index.html": html("v3")})
    await dash.confirm()
    await expect(dash.error).to_contain_text("If-Match does not match")
    await expect(dash.error).to_contain_text("412 precondition_failed")
    await expect(dash.snapshot("staging")).to_have_text(moved)
    status, envs = await api.call("GET", "/v1/sites/acme/environments")
    assert envs["production"]["snapshot"] != moved


async def test_actions_wait_until_the_sites_state_is_read(
    server: EdgeServer, api: Api, page: Page
) -> None:
    """Regression: a click before the first read used to throw (no state to act on)."""
    await api.push("acme", {"/index.html": html("v1")})
    held = asyncio.Event()

    async def hold(route: Route) -> None:
        await held.wait()
        await route.continue_()

    await page.route("**/v1/sites/acme/environments", hold)
    dash = Dashboard(page, server)
    await dash.open()
    await dash.sign_in("publisher")
    await expect(page.locator("#caller")).to_contain_text("Signed in as publisher")
    await expect(page.locator("#dashboard")).to_have_attribute("aria-busy", "true")
    for name in ("Publish all to production", "Schedule"):
        await expect(page.get_by_role("button", name=name, exact=True)).to_be_disabled()
    held.set()
    await dash.loaded()
    await expect(page.get_by_role("button", name="Publish all to production")).to_be_enabled()
    await expect(page.get_by_role("button", name="Schedule", exact=True)).to_be_enabled()


async def test_history_shows_the_push_message(server: EdgeServer, api: Api, page: Page) -> None:
    await api.snapshot("acme", {"/index.html": html("x")})
    snap = await api.snapshot("acme", {"/index.html": html("y")}, message="spring sale banner")
    await api.set_env("acme", "staging", snap)
    dash = Dashboard(page, server)
    await dash.signed_in("admin")
    await expect(page.locator("#history tbody tr").first).to_contain_text("spring sale banner")


async def test_analytics_with_days_a_scale_and_an_empty_state(
    server: EdgeServer, api: Api, visitor: Visitor, page: Page
) -> None:
    await api.push("acme", {"/index.html": html("home")}, env="production")
    for _ in range(7):
        assert (await visitor.get(PRODUCTION_HOST, "/"))[0] == 200
    dash = Dashboard(page, server)
    await dash.signed_in("admin")
    total = page.get_by_test_id("views-total-production")
    await dash.reload_until(total, "7")
    chart = page.get_by_test_id("chart-production")
    days = chart.locator("text.x-tick")
    assert await days.count() >= 4  # dated ticks along the x axis, not just the two ends
    labels = await days.all_text_contents()
    months = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
    assert all(label.split()[0] in months and label.split()[1].isdigit() for label in labels)
    scale = await chart.locator("text.y-tick").all_text_contents()
    assert scale[0] == "0" and int(scale[-1] or 0) >= 7 and len(scale) >= 3
    # Staging had no visitor: said in words, no empty chart.
    await expect(page.get_by_test_id("views-empty-staging")).to_contain_text(
        "No page views on staging"
    )
    await expect(page.get_by_test_id("chart-staging")).to_have_count(0)


async def test_signed_in_line_fades_and_no_request_404s(server: EdgeServer, page: Page) -> None:
    missing: list[str] = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    dash = Dashboard(page, server)
    await dash.signed_in("admin")
    await expect(dash.status).to_have_text("")  # the greeting goes away by itself
    await expect(page.locator("#caller")).to_contain_text("Signed in as admin")  # who, kept
    icon = await page.locator('link[rel="icon"]').get_attribute("href")
    assert icon == "favicon.svg"
    response = await page.request.get(server.admin_url + "/ui/favicon.svg")
    assert response.status == 200 and response.headers["content-type"] == "image/svg+xml"
    assert missing == []
