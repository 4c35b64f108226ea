"""The reliability suite's own helpers hold under load (issue 15, item 12)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.reliability import conftest


async def test_connect_refused_treats_a_reset_as_not_yet_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reset (a handshake into a closing listener's backlog) retries; a refusal ends."""
    outcomes: list[BaseException] = [ConnectionResetError(104, "reset"), ConnectionRefusedError()]

    async def connect(*_args: Any) -> Any:
        raise outcomes.pop(0)

    monkeypatch.setattr(asyncio, "open_connection", connect)
    await conftest.connect_refused(9, timeout=5)
    assert outcomes == []
