"""The admin process's roll call of the visitor workers before a move (edge.snapshots.readiness)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from edge.router import Env
from edge.snapshots import readiness
from edge.snapshots.model import Snapshot
from edge.snapshots.readiness import Responder, RollCall, address

SNAP = Snapshot(id="s2", site="acme", files={}, settings={}, created_at="2026-01-01T00:00:00Z")


def worker(tmp_path: Path, index: int, loaded: list[tuple[int, str, str, str]],
           flushed: list[int]) -> Responder:  # fmt: skip
    async def preload(site: str, env: Env, snapshot_id: str) -> None:
        loaded.append((index, site, env, snapshot_id))

    return Responder(tmp_path, index, preload=preload, flush=lambda: flushed.append(index))


async def test_every_running_worker_holds_the_snapshot_when_the_ask_returns(
    tmp_path: Path,
) -> None:
    loaded: list[tuple[int, str, str, str]] = []
    flushed: list[int] = []
    workers = [worker(tmp_path, i, loaded, flushed) for i in range(2)]
    admin = RollCall(tmp_path, 3, asks=range(3))  # 2: not running
    for r in (*workers, admin):
        r.open()
    try:
        await admin.ask([("production", SNAP)])
        assert sorted(loaded) == [(0, "acme", "production", "s2"), (1, "acme", "production", "s2")]
        await admin.sync_others()
        assert sorted(flushed) == [0, 1]
    finally:
        for r in (*workers, admin):
            await r.close()


async def test_a_worker_that_does_not_answer_delays_the_move_only_by_the_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(readiness, "READY_WAIT_SECONDS", 0.05)
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    silent.bind(address(tmp_path, 0))  # bound (running) but never reads: a stuck worker
    admin = RollCall(tmp_path, 1, asks=range(1))
    admin.open()
    try:
        await admin.ask([("production", SNAP)])
    finally:
        await admin.close()
        silent.close()
    assert "did not load the new snapshot within" in caplog.text


async def test_nothing_to_ask_without_workers(tmp_path: Path) -> None:
    alone = RollCall(tmp_path, 0, asks=())
    alone.open()  # one process (edge demo): no socket at all
    await alone.ask([("production", SNAP)])
    await alone.close()
