"""Which cached blob files a node's sweep removes, and how sweeps are run."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from edge.snapshots.blobfiles import BlobDir
from edge.snapshots.cachesweep import CacheSweeper, sweepable

A, B, C, D = ("a" * 64, "b" * 64, "c" * 64, "d" * 64)


def test_a_collected_blob_goes_however_fresh_its_file() -> None:
    files = [(A, 1000.0), (B, 1000.0)]
    assert sweepable(files, stored={B}, served=set(), idle_before=0.0) == [A]


def test_a_served_blob_never_goes() -> None:
    files = [(A, 1.0), (B, 1.0)]
    assert sweepable(files, stored=set(), served={A, B}, idle_before=100.0) == []


def test_an_unserved_stored_blob_goes_once_idle() -> None:
    files = [(A, 10.0), (B, 200.0), (C, 10.0)]
    assert sweepable(files, stored={A, B, C}, served={C}, idle_before=100.0) == [A]


def test_entries_lists_blob_files_only(tmp_path: Path) -> None:
    blobs = BlobDir(tmp_path)
    blobs.prepare()
    blobs.write_durably(D, b"bytes")
    os.utime(blobs.path(D), (123.0, 123.0))
    (tmp_path / "tmp" / "leftover").write_bytes(b"x")
    (tmp_path / "README").write_bytes(b"x")
    assert blobs.prefixes() == ["dd"]
    assert blobs.entries("dd") == [(D, 123.0)]
    assert blobs.entries("ee") == []  # a folder gone meanwhile


async def test_pokes_during_a_sweep_make_one_more_and_a_failure_is_not_fatal() -> None:
    started = asyncio.Event()
    release = asyncio.Event()
    calls = 0

    async def sweep() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("database away")
        if calls == 2:
            started.set()
            await release.wait()
        return 2

    sweeper = CacheSweeper(sweep, interval=3600)
    task = asyncio.ensure_future(sweeper.run())
    try:
        sweeper.poke()  # fails: logged, the loop goes on
        while calls < 1:
            await asyncio.sleep(0)
        sweeper.poke()
        await started.wait()
        for _ in range(5):  # while it runs: coalesced into one more sweep
            sweeper.poke()
        release.set()
        while sweeper.sweeps < 2:
            await asyncio.sleep(0)
        for _ in range(20):
            await asyncio.sleep(0)
        assert (calls, sweeper.sweeps, sweeper.removed) == (3, 2, 4)
    finally:
        task.cancel()
