"""Driving the dashboard page like an operator: what the tests click and read.

Test modules import Playwright's names from here: importing this module first
skips them (or fails them under EDGE_REQUIRE_BROWSER=1) where there is no browser.
"""

from __future__ import annotations

import hashlib
from typing import Any

from tests.e2e.chromium import require_browser
from tests.integration.conftest import Api, EdgeServer
from tests.waiting import eventually

require_browser()

from playwright.async_api import Locator, Page, Route, expect  # noqa: E402

__all__ = [
    "Dashboard",
    "Locator",
    "Page",
    "Route",
    "emergency_fix",
    "environments",
    "expect",
    "html",
]


def html(text: str) -> bytes:
    return f"<html><head><title>{text}</title></head><body><p>{text}</p></body></html>".encode()


async def environments(api: Api) -> dict[str, Any]:
    status, doc = await api.call("GET", "/v1/sites/acme/environments")
    assert status == 200, doc
    return dict(doc)


async def emergency_fix(api: Api, files: dict[str, bytes]) -> str:
    """Change production directly (on top of what it serves), as an emergency fix does."""
    production = (await environments(api))["production"]["snapshot"]
    fix = await api.snapshot("acme", files, parent=production, message="emergency fix")
    await api.set_env("acme", "production", fix)
    return fix


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Dashboard:
    """The page at ``/ui/`` of one edge server."""

    def __init__(self, page: Page, server: EdgeServer) -> None:
        self.page = page
        self.server = server

    async def open(self) -> None:
        await self.page.goto(self.server.admin_url + "/ui/")

    async def sign_in(self, who: str = "admin") -> None:
        token = self.server.tokens.get(who, who)
        await self.page.get_by_label("Admin token").fill(token)
        await self.page.get_by_role("button", name="Sign in").click()

    async def signed_in(self, who: str = "admin") -> None:
        """Open the page, sign in and wait until the site's state is drawn."""
        await self.open()
        await self.sign_in(who)
        await expect(self.page.locator("#caller")).to_contain_text(f"Signed in as {who}")
        await self.loaded()

    async def loaded(self) -> None:
        await expect(self.page.locator('#dashboard[aria-busy="false"]')).to_be_visible()

    def snapshot(self, env: str) -> Locator:
        """The snapshot id shown on an environment's card."""
        return self.page.get_by_test_id(f"snapshot-{env}")

    @property
    def status(self) -> Locator:
        return self.page.locator("#status")

    @property
    def error(self) -> Locator:
        return self.page.locator("#error")

    @property
    def confirm_dialog(self) -> Locator:
        return self.page.locator("#confirm-dialog")

    def diff_row(self, path: str) -> Locator:
        return self.page.locator(f'#diff tr[data-path="{path}"]')

    async def confirm(self, *, contains: str | None = None) -> None:
        """The confirmation dialog is open (saying ``contains``): confirm it."""
        await self._answer("#confirm-ok", contains)

    async def dismiss(self) -> None:
        await self._answer("#confirm-cancel", None)

    async def _answer(self, button: str, contains: str | None) -> None:
        await expect(self.confirm_dialog).to_be_visible()
        if contains is not None:
            await expect(self.confirm_dialog).to_contain_text(contains)
        asked = await self.confirm_dialog.get_attribute("data-ask")
        await self.page.locator(button).click()
        # Closed, or already asking the next question (the same <dialog>, reused).
        await expect(
            self.page.locator(
                f'#confirm-dialog:not([open]), #confirm-dialog:not([data-ask="{asked}"])'
            )
        ).to_have_count(1)

    async def reload_state(self) -> None:
        await self.page.get_by_role("button", name="Reload").click()
        await expect(self.status).to_contain_text("Reloaded")

    async def reload_until(self, locator: Locator, text: str) -> None:
        """Reload the state until ``locator`` reads ``text`` (counts land in the background)."""

        async def shown() -> str | None:
            await self.reload_state()
            return await locator.text_content()

        await eventually(shown, lambda found: found == text, what=f"{text!r} shown")
