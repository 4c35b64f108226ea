"""Which browser the e2e tests drive, and what happens when it is not there.

Debian's Chromium (``/usr/bin/chromium``), driven by Playwright for Python; Playwright's
own browser downloads are never used (never run ``playwright install``). Without
Chromium or Playwright the tests are skipped with the reason, unless
``EDGE_REQUIRE_BROWSER=1`` (set by ``.ci/run``) makes that a failure.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # The sites' hosts (acme.example, ...) lead to this machine's edge; nothing else
    # is reachable from the browser.
    "--host-resolver-rules=MAP * 127.0.0.1",
]


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.exists():
        return "chromium not found at /usr/bin/chromium: apt-get install chromium"
    if importlib.util.find_spec("playwright") is None:
        return "playwright not installed: pip install -e '.[dev]'"
    return None


def require_browser() -> None:
    """At import of a browser test module: skip it, or fail under EDGE_REQUIRE_BROWSER=1."""
    reason = browser_missing()
    if reason is None:
        return
    if os.environ.get("EDGE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (EDGE_REQUIRE_BROWSER=1: the browser tests must run)")
    pytest.skip(reason, allow_module_level=True)
