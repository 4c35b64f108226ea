"""Objects told their collaborators and hooks at construction (issue 17), on a real SQLite store.

Nothing is assigned onto a built object: a hook handed to a constructor is the
one that is called.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from edge.router import Env
from edge.snapshots.control import Control, NewFile
from edge.snapshots.live import LivePointers, SnapshotLoader, SwapHooks
from edge.snapshots.model import HistoryEntry, OutboxEvent, Snapshot
from edge.snapshots.scheduler import Scheduler
from edge.snapshots.sqlite import SqliteStore
from tests.unit.conftest import DIGEST


async def test_control_and_the_live_pointers_call_the_hooks_they_were_built_with(
    store: SqliteStore,
) -> None:
    loaded: list[str] = []
    prepared: list[tuple[Env, str | None, str]] = []
    moved: list[tuple[str, list[str]]] = []
    events: list[tuple[str, Env, str]] = []
    changed: list[str] = []

    async def prepare(env: Env, old: Snapshot | None, new: Snapshot) -> None:
        prepared.append((env, None if old is None else old.id, new.id))

    def build_events(site: str, env: Env, event: str, data: Mapping[str, Any]) -> list[OutboxEvent]:
        events.append((site, env, event))
        return []

    def on_moved(site: str, entries: Sequence[HistoryEntry], _seconds: float) -> None:
        moved.append((site, [e.env for e in entries]))

    async def wait_all(_timeout: float) -> list[str]:
        return ["node-b"]

    loader = SnapshotLoader(store, on_loaded=lambda: loaded.append("decoded"))
    live = LivePointers(store, loader, hooks=SwapHooks(prepare=prepare))
    control = Control(
        store,
        live,
        loader,
        events=build_events,
        on_moved=on_moved,
        schedules_changed=lambda: changed.append("schedules"),
        wait_all=wait_all,
    )
    snap = await control.create_snapshot(
        "acme", files={"/index.html": NewFile(DIGEST)}, parent=None, delete=(),
        settings=None, message="", actor="test",
    )  # fmt: skip
    await control.set_environment(
        "acme", "staging", snap.id, expect=None, check_expect=False, action="set", actor="test"
    )
    assert prepared == [("staging", None, snap.id)]
    assert moved == [("acme", ["staging"])]
    await control.publish("acme", actor="test")
    assert moved[-1][0] == "acme" and "production" in moved[-1][1]
    assert ("acme", "production", "environment.updated") in events
    await control.add_schedule(
        "acme", at="2099-01-01T00:00:00Z", paths=None, settings=False, actor="test"
    )
    assert changed == ["schedules"]
    assert await control.wait_all(1.0) == ["node-b"]

    # A loader built with on_loaded tells of each snapshot it decodes from the store.
    fresh = SnapshotLoader(store, on_loaded=lambda: loaded.append("fresh"))
    await fresh.load("acme", snap.id)
    assert "fresh" in loaded


async def test_the_schedule_timer_wakes_on_the_event_it_was_built_with(
    store: SqliteStore,
) -> None:
    """Control is built before the timer it pokes: the wake event is shared, not assigned."""
    steps = 0

    class CountingScheduler(Scheduler):
        async def step(self) -> float:
            nonlocal steps
            steps += 1
            return 3600.0  # without a wake-up the loop would sleep an hour

    wake = asyncio.Event()
    loader = SnapshotLoader(store)
    control = Control(store, LivePointers(store, loader), loader, schedules_changed=wake.set)
    timer = CountingScheduler(store, control, wake=wake)
    task = asyncio.create_task(timer.run())
    try:
        while steps < 1:
            await asyncio.sleep(0)
        snap = await control.create_snapshot(
            "acme", files={"/index.html": NewFile(DIGEST)}, parent=None, delete=(),
            settings=None, message="", actor="test",
        )  # fmt: skip
        await control.set_environment(
            "acme", "staging", snap.id, expect=None, check_expect=False, action="set", actor="t"
        )
        await control.add_schedule(
            "acme", at="2099-01-01T00:00:00Z", paths=None, settings=False, actor="test"
        )
        while steps < 2:  # the test's timeout bounds this: no wake-up, no second step
            await asyncio.sleep(0.01)
    finally:
        timer.stop()
        await task
