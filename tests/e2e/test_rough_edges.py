"""What a new operator met on the dashboard (issue 15, items 2, 8 and 11), in a browser."""

from __future__ import annotations

import pytest

from tests.e2e.dashboard import Dashboard, Page, emergency_fix, environments, expect, html
from tests.integration.conftest import PRODUCTION_HOST, Api, EdgeServer, Visitor

pytestmark = pytest.mark.timeout(240)


async def test_the_publish_confirmation_is_the_dry_run_with_production_fixes_kept(
    server: EdgeServer, api: Api, visitor: Visitor, page: Page
) -> None:
    await api.push("acme", {"/index.html": html("home"), "/about.html": html("about v1")})
    status, doc = await api.publish()
    assert status == 200, doc
    fix = await emergency_fix(api, {"/promo.html": html("promo")})
    await api.push(
        "acme", {"/index.html": html("home"), "/about.html": html("about v2")}
    )  # staging never had /promo.html: a manifest diff calls it removed

    dash = Dashboard(page, server)
    await dash.signed_in("publisher")
    await page.get_by_role("button", name="Publish all to production").click()
    items = page.locator("#confirm-items li")
    await expect(items).to_have_text(["changed: /about.html", "kept (production fix): /promo.html"])
    await expect(dash.confirm_dialog).not_to_contain_text("removed")
    assert (await environments(api))["production"]["snapshot"] == fix  # the preview moved nothing
    await dash.confirm(contains="those are kept")
    await expect(dash.status).to_contain_text("Published (merge-publish)")
    status, _, body = await visitor.get(PRODUCTION_HOST, "/promo.html")
    assert status == 200 and b"promo" in body


async def test_a_refused_publish_is_reported_once(server: EdgeServer, api: Api, page: Page) -> None:
    await api.push("acme", {"/index.html": html("home v1")})
    await api.publish()
    await api.push("acme", {"/index.html": html("home redesign")})
    fix = await emergency_fix(api, {"/index.html": html("home hotfix")})

    dash = Dashboard(page, server)
    await dash.signed_in("admin")
    await page.get_by_role("button", name="Publish all to production").click()
    # The dry run meets the drift: the dialog says it, and nothing else does (no
    # confirmation of a publish that cannot happen, no red box, no "failed" line).
    drift = page.locator("#drift-dialog")
    await expect(drift).to_be_visible()
    await expect(page.locator("#drift-conflicts")).to_have_text("/index.html")
    assert await dash.confirm_dialog.get_attribute("data-ask") is None  # never asked
    await expect(dash.error).to_be_hidden()
    await expect(dash.status).not_to_contain_text("fail")
    await drift.get_by_role("button", name="Cancel").click()
    await expect(dash.error).to_be_hidden()
    assert (await environments(api))["production"]["snapshot"] == fix


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
    for _ in range(60):
        await dash.reload_state()
        if await total.text_content() == "7":
            break
    await expect(total).to_have_text("7")
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


async def test_the_confirmation_previews_the_state_at_the_click(
    server: EdgeServer, api: Api, page: Page
) -> None:
    """A change made elsewhere just before the click (the page has not re-read yet) is
    what the confirmation shows and what gets published, not a 412."""
    await api.push("acme", {"/index.html": html("home v1")})
    dash = Dashboard(page, server)
    await dash.signed_in("publisher")
    newer = await api.push("acme", {"/index.html": html("home v2"), "/new.html": html("n")})
    await page.get_by_role("button", name="Publish all to production").click()
    await expect(dash.confirm_dialog).to_contain_text(newer)
    await expect(page.locator("#confirm-items li")).to_have_text(
        ["added: /index.html", "added: /new.html"]
    )
    await dash.confirm()
    await expect(dash.status).to_contain_text(f"production now serves {newer}")
    await expect(dash.error).to_be_hidden()
    assert (await environments(api))["production"]["snapshot"] == newer
