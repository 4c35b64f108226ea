"""Browser tests: a real ``edge serve`` and the dashboard in headless Chromium.

See :mod:`tests.e2e.chromium` for the browser and when the tests are skipped.
Playwright is imported only inside the fixtures (and by :mod:`tests.e2e.dashboard`,
after the check), so a machine without it collects this folder and skips it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from edge.admin_api.auth import new_token
from tests.e2e.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.integration.conftest import (  # noqa: F401  (fixtures, found by name)
    ROLES,
    EdgeServer,
    api,
    session,
    visitor,
)

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

TIMEOUT_MS = 60_000  # generous: the machine may be very busy; no test asserts on speed


START_TRIES = 4  # EdgeServer.wait_ready waits 20 s a try: a very busy machine needs more


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EdgeServer]:
    srv = EdgeServer(
        root=tmp_path,
        tokens={name: new_token()[0] for name in ROLES},
        extra_config="analytics_flush_seconds = 0.2",
    )
    try:
        srv.start_nowait()
        for attempt in range(START_TRIES):
            try:
                srv.wait_ready()
                break
            except RuntimeError:
                assert srv.process is not None
                if srv.process.poll() is not None or attempt == START_TRIES - 1:
                    raise
        yield srv
    finally:
        if srv.process is not None:  # also when start-up failed: never leak the process
            srv.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=60_000
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
def context_options() -> dict[str, Any]:
    """Options of the browser context; a test overrides it (time zone, viewport)."""
    return {"viewport": {"width": 1280, "height": 900}}


@pytest.fixture
async def page(browser: Browser, context_options: dict[str, Any]) -> AsyncIterator[Page]:
    from playwright.async_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    context = await browser.new_context(**context_options)
    context.set_default_timeout(TIMEOUT_MS)
    tab = await context.new_page()
    problems: list[str] = []

    def on_console(message: Any) -> None:
        # Failed API calls (a 409 the test provokes) are logged by Chromium as
        # "Failed to load resource"; anything else logged as an error is a defect,
        # including a Content-Security-Policy violation ("Refused to ...").
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            problems.append(f"console: {message.text}")

    tab.on("console", on_console)
    tab.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    try:
        yield tab
    finally:
        await context.close()
    assert not problems, problems
