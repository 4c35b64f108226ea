"""Schedules and rollbacks from the dashboard, in a real browser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.e2e.dashboard import Dashboard, Page, environments, expect, html
from tests.integration.conftest import PRODUCTION_HOST, Api, EdgeServer, Visitor

pytestmark = pytest.mark.timeout(240)

# Not the machine's zone: the picker must read and show the operator's time.
ZONE = "Asia/Tokyo"


@pytest.fixture
def context_options() -> dict[str, Any]:
    return {"viewport": {"width": 1280, "height": 900}, "timezone_id": ZONE}


def local_input(moment: datetime) -> str:
    """What an operator in ZONE types into the picker for ``moment``."""
    return moment.astimezone(ZoneInfo(ZONE)).strftime("%Y-%m-%dT%H:%M:%S")


def canonical(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


async def schedules(api: Api) -> list[dict[str, Any]]:
    status, doc = await api.call("GET", "/v1/sites/acme/schedules")
    assert status == 200, doc
    return list(doc["schedules"])


async def test_schedule_a_launch_cancel_one_and_watch_one_go_live(
    server: EdgeServer, api: Api, visitor: Visitor, page: Page
) -> None:
    await api.push("acme", {"/index.html": html("before the launch")})
    status, doc = await api.publish()
    assert status == 200, doc
    live = doc["production"]
    launch = await api.push("acme", {"/index.html": html("after the launch")})

    dash = Dashboard(page, server)
    await dash.signed_in("publisher")
    await expect(page.locator("#tz-hint")).to_contain_text(f"{ZONE} (UTC+09:00)")
    picker = page.get_by_label("Go live at")
    schedule_button = page.get_by_role("button", name="Schedule", exact=True)

    # A launch tomorrow, typed in the operator's zone, is stored in UTC; then cancelled.
    tomorrow = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    await picker.fill(local_input(tomorrow))
    await schedule_button.click()
    await dash.confirm(contains=f"{canonical(tomorrow)} UTC")
    await expect(dash.status).to_contain_text("Scheduled")
    [pending] = await schedules(api)
    assert pending["at"] == canonical(tomorrow)
    assert pending["status"] == "pending" and pending["snapshot"] == launch
    row = page.locator(f'tr[data-schedule="{pending["id"]}"]')
    await expect(row).to_contain_text("pending")
    await expect(row.locator("time")).to_have_attribute("datetime", canonical(tomorrow))

    await row.get_by_role("button", name="Cancel").click()
    await dash.confirm(contains="will not happen")
    await expect(row).to_have_attribute("data-status", "cancelled")
    assert [s["status"] for s in await schedules(api)] == ["cancelled"]

    # A launch a few seconds ahead: the page shows it going live on its own (no
    # click: it re-reads at the launch's moment and every few seconds).
    await expect(dash.snapshot("production")).to_have_text(live)
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=6)
    await picker.fill(local_input(soon))
    await schedule_button.click()
    await dash.confirm()
    await expect(dash.status).to_contain_text("Scheduled")
    await expect(dash.snapshot("production")).to_have_text(launch, timeout=90_000)
    status, headers, body = await visitor.get(PRODUCTION_HOST, "/")
    assert status == 200 and b"after the launch" in body
    assert headers["X-Edge-Snapshot"] == launch
    done = [s for s in await schedules(api) if s["status"] == "done"]
    assert len(done) == 1 and done[0]["at"] == canonical(soon)
    await expect(page.locator(f'tr[data-schedule="{done[0]["id"]}"]')).to_have_attribute(
        "data-status", "done"
    )


async def test_roll_back_to_a_history_entry_and_to_the_previous_one(
    server: EdgeServer, api: Api, visitor: Visitor, page: Page
) -> None:
    published = []
    for n in (1, 2, 3):
        await api.push("acme", {"/index.html": html(f"version {n}")})
        status, doc = await api.publish()
        assert status == 200, doc
        published.append(doc["production"])
    v1, v2, v3 = published

    dash = Dashboard(page, server)
    await dash.signed_in("publisher")
    await expect(dash.snapshot("production")).to_have_text(v3)
    history = page.locator("#history")
    await expect(history.locator('tr[data-env="production"]')).to_have_count(3)

    await page.get_by_role("button", name=f"Roll production back to {v1}").click()
    await dash.confirm(contains=f"back to {v1}")
    await expect(dash.status).to_contain_text("Rolled back")
    await expect(dash.snapshot("production")).to_have_text(v1)
    status, _, body = await visitor.get(PRODUCTION_HOST, "/")
    assert b"version 1" in body
    # The rollback is in the history, by whom it was made.
    newest = history.locator("tbody tr").first
    await expect(newest).to_contain_text("rollback")
    await expect(newest).to_contain_text("publisher")

    # "Roll back to previous" undoes the rollback.
    await page.get_by_role("button", name="Roll back to previous").click()
    await dash.confirm(contains="back to the snapshot it served before")
    await expect(dash.snapshot("production")).to_have_text(v3)
    assert (await environments(api))["production"]["snapshot"] == v3
    status, _, body = await visitor.get(PRODUCTION_HOST, "/")
    assert b"version 3" in body
    assert v2  # still in history, never the target here
