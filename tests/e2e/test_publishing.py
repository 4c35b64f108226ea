"""Sign in, see drift, publish selected paths, resolve a 409 drift: in a real browser."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.e2e.dashboard import Dashboard, Page, emergency_fix, environments, expect, html
from tests.integration.conftest import PRODUCTION_HOST, STAGING_HOST, Api, EdgeServer, Visitor

pytestmark = pytest.mark.timeout(240)


def shots_dir(tmp_path: Path) -> Path:
    """Where screenshots go: a temporary folder (EDGE_E2E_SCREENSHOTS to keep them)."""
    folder = Path(os.environ.get("EDGE_E2E_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def test_sign_in_see_drift_and_publish_selected_paths(
    server: EdgeServer, api: Api, visitor: Visitor, page: Page, tmp_path: Path
) -> None:
    await api.push(
        "acme",
        {
            "/index.html": html("home v1"),
            "/about.html": html("about v1"),
            "/contact.html": html("contact v1"),
        },
    )
    status, doc = await api.publish()
    assert status == 200, doc
    # Staging's work: a changed page and a new one.
    staged = await api.push(
        "acme",
        {
            "/index.html": html("home v1"),
            "/about.html": html("about v2"),
            "/contact.html": html("contact v1"),
            "/new.html": html("brand new page"),
        },
    )
    # Meanwhile, an emergency fix straight on production.
    fix = await emergency_fix(api, {"/contact.html": html("contact fixed on production")})

    dash = Dashboard(page, server)
    await dash.open()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await dash.sign_in("not-a-token")
    await expect(dash.error).to_contain_text("unknown token")
    await dash.sign_in("publisher")
    await expect(page.locator("#caller")).to_contain_text("Signed in as publisher (publisher)")
    await expect(dash.error).to_be_hidden()
    await dash.loaded()

    # Both environments side by side, each unmistakable.
    await expect(dash.snapshot("staging")).to_have_text(staged)
    await expect(dash.snapshot("production")).to_have_text(fix)
    staging_card = page.get_by_test_id("env-staging")
    production_card = page.get_by_test_id("env-production")
    await expect(staging_card.locator(".env-badge")).to_have_text("STAGING")
    await expect(production_card.locator(".env-badge")).to_have_text("PRODUCTION")
    await expect(production_card).to_contain_text("by admin")
    await expect(production_card).to_contain_text("(set)")  # the move, from history
    await expect(staging_card).to_contain_text("production moved since")

    # The drift warning names production's own change.
    drift = page.locator("#drift")
    await expect(drift).to_be_visible()
    await expect(drift).to_contain_text("production moved since staging's base")
    await expect(page.get_by_test_id("drift-paths")).to_contain_text("/contact.html (changed)")

    # The diff: staging's two changes and production's fix, marked as such.
    await expect(page.locator("#diff tbody tr")).to_have_count(3)
    await expect(dash.diff_row("/new.html")).to_contain_text("added")
    await expect(dash.diff_row("/about.html")).to_contain_text("changed")
    await expect(dash.diff_row("/contact.html")).to_contain_text("production fix")

    # A path opens on the staging host (and on production's) from the diff.
    async with page.context.expect_page() as opened:
        await page.get_by_label("Open /new.html on staging").click()
    tab = await opened.value
    await expect(tab.locator("body")).to_contain_text("brand new page")
    assert tab.url == f"http://{STAGING_HOST}:{server.port}/new.html"
    await tab.close()
    link = page.get_by_label("Open /about.html on production")
    assert await link.get_attribute("href") == f"http://{PRODUCTION_HOST}:{server.port}/about.html"
    assert await link.get_attribute("rel") == "noopener noreferrer"

    shots = shots_dir(tmp_path)
    await page.screenshot(path=str(shots / "drift.png"), full_page=True)

    # Choose two paths; cancelling the confirmation changes nothing.
    await page.get_by_label("Select /new.html").check()
    await page.get_by_label("Select /about.html").check()
    publish_selected = page.get_by_role("button", name="Publish selected paths (2)")
    await publish_selected.click()
    await expect(dash.confirm_dialog).to_contain_text("/about.html")
    await expect(dash.confirm_dialog.locator(".env-badge")).to_have_text("PRODUCTION")
    await page.screenshot(path=str(shots / "confirm.png"))
    await dash.dismiss()
    assert (await environments(api))["production"]["snapshot"] == fix

    await publish_selected.click()
    await dash.confirm(contains="Publish 2 selected paths to production?")
    await expect(dash.status).to_contain_text("Published")
    await expect(dash.snapshot("production")).not_to_have_text(fix)
    production = (await environments(api))["production"]["snapshot"]
    await expect(dash.snapshot("production")).to_have_text(production)

    # Visitors see exactly that: the two pages from staging, production's fix kept.
    for path, text in (
        ("/new.html", b"brand new page"),
        ("/about.html", b"about v2"),
        ("/contact.html", b"contact fixed on production"),
    ):
        status, headers, body = await visitor.get(PRODUCTION_HOST, path)
        assert status == 200 and text in body, (path, body)
        assert headers["X-Edge-Snapshot"] == production
    # Only the fix remains as a difference; the selection is gone with the paths.
    await expect(page.locator("#diff tbody tr")).to_have_count(1)
    await expect(dash.diff_row("/contact.html")).to_be_visible()
    await page.screenshot(path=str(shots / "published.png"), full_page=True)

    # The token lives in this tab's sessionStorage only.
    token = server.tokens["publisher"]
    assert await page.evaluate("sessionStorage.getItem('edge.admin-token')") == token
    assert await page.evaluate("localStorage.length") == 0
    assert await page.context.cookies() == []
    await page.reload()
    await expect(page.locator("#caller")).to_contain_text("Signed in as publisher")
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_label("Admin token")).to_be_visible()
    assert await page.evaluate("sessionStorage.length") == 0


async def make_drift(api: Api, *, staging_home: str, production_home: str) -> tuple[str, str]:
    """Staging and production both change /index.html since staging's base (a conflict);
    staging also changes /about.html (no conflict)."""
    current = (await environments(api))["staging"]["snapshot"]
    staged = await api.snapshot(
        "acme",
        {"/index.html": html(staging_home), "/about.html": html(f"about for {staging_home}")},
        parent=current,
    )
    await api.set_env("acme", "staging", staged)
    fix = await emergency_fix(api, {"/index.html": html(production_home)})
    return staged, fix


async def test_a_drift_conflict_shows_its_paths_and_the_ways_out(
    server: EdgeServer, api: Api, visitor: Visitor, page: Page, tmp_path: Path
) -> None:
    await api.push("acme", {"/index.html": html("home v1"), "/about.html": html("about v1")})
    status, doc = await api.publish()
    assert status == 200, doc
    _, fix = await make_drift(api, staging_home="home redesign", production_home="home hotfix")

    dash = Dashboard(page, server)
    await dash.signed_in("admin")
    await expect(dash.snapshot("production")).to_have_text(fix)
    publish_all = page.get_by_role("button", name="Publish all to production")
    drift_dialog = page.locator("#drift-dialog")

    # 1. The 409 (from the publish's dry run, before any confirmation): its message and
    # its conflicting path, said once, by the dialog; nothing changed.
    await publish_all.click()
    await expect(drift_dialog).to_be_visible()
    await expect(page.locator("#drift-conflicts")).to_have_text("/index.html")
    await expect(page.locator("#drift-message")).to_contain_text(
        "production changed since staging's base"
    )
    await expect(dash.error).to_be_hidden()
    await expect(dash.status).not_to_contain_text("failed")
    await page.screenshot(path=str(shots_dir(tmp_path) / "drift-409.png"))
    assert (await environments(api))["production"]["snapshot"] == fix

    # 2. "Publish selected paths": the safe paths are chosen, the conflict is marked.
    await drift_dialog.get_by_role("button", name="Publish selected paths").click()
    await expect(drift_dialog).to_be_hidden()
    await expect(dash.diff_row("/index.html")).to_contain_text("conflict")
    await expect(page.get_by_label("Select /about.html")).to_be_checked()
    await expect(page.get_by_label("Select /index.html")).not_to_be_checked()
    await expect(dash.status).to_contain_text("changed on staging only")
    await page.get_by_role("button", name="Publish selected paths (1)").click()
    await dash.confirm(contains="/about.html")
    await expect(dash.status).to_contain_text("Published")
    status, _, body = await visitor.get(PRODUCTION_HOST, "/about.html")
    assert status == 200 and b"about for home redesign" in body
    status, _, body = await visitor.get(PRODUCTION_HOST, "/")
    assert b"home hotfix" in body

    # 3. "Force": staging's version wins on the conflicting path.
    await publish_all.click()
    await expect(drift_dialog).to_be_visible()
    await drift_dialog.get_by_role("button", name="Force the publish").click()
    await expect(dash.confirm_dialog).to_contain_text(
        "changed, staging's version wins: /index.html"
    )
    await dash.confirm(contains="Staging's version wins")
    await expect(dash.status).to_contain_text("Published (merge-publish)")
    await expect(page.locator("#drift")).to_be_hidden()
    status, _, body = await visitor.get(PRODUCTION_HOST, "/")
    assert b"home redesign" in body

    # 4. "Refresh staging first": staging holds work, so the refresh asks again with
    # the paths it would set aside, then staging := production.
    _, fix = await make_drift(api, staging_home="home v3", production_home="home hotfix 2")
    await dash.reload_state()
    await expect(dash.snapshot("production")).to_have_text(fix)
    await publish_all.click()
    await drift_dialog.get_by_role("button", name="Refresh staging first").click()
    await dash.confirm(contains="Refresh staging from production?")
    await expect(dash.confirm_dialog).to_contain_text("Staging holds work production lacks")
    await expect(page.locator("#confirm-items")).to_contain_text("/index.html")
    await expect(dash.error).to_contain_text("staging holds changes production lacks")
    await dash.confirm()
    await expect(dash.status).to_contain_text("Refreshed")
    await expect(dash.snapshot("staging")).to_have_text(fix)
    await expect(page.get_by_test_id("diff-empty")).to_be_visible()
    await expect(page.locator("#drift")).to_be_hidden()
    status, _, body = await visitor.get(STAGING_HOST, "/")
    assert b"home hotfix 2" in body


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
