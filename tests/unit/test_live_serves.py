"""LivePointers.serves: the one check a remembered cache answer needs (the hit paths)."""

from __future__ import annotations

from edge.snapshots.control import Control, NewFile
from edge.snapshots.live import LivePointers, SnapshotLoader, pointer_key
from edge.snapshots.sqlite import SqliteStore
from tests.unit.conftest import DIGEST


async def test_serves_only_the_snapshot_the_route_points_at(store: SqliteStore) -> None:
    loader = SnapshotLoader(store)
    live = LivePointers(store, loader)
    control = Control(store, live, loader)
    made = []
    for message in ("first", "second"):
        files = {"/index.html": NewFile(DIGEST)}
        snapshot = await control.create_snapshot(
            "acme", files=files, parent=None, delete=(), settings=None, message=message,
            actor="test",
        )  # fmt: skip
        made.append(snapshot)
    first, second = made
    staging = pointer_key("acme", "staging")
    assert not live.serves(staging, first.id)  # nothing points anywhere yet
    await control.set_environment(
        "acme", "staging", first.id, expect=None, check_expect=False, action="set", actor="test"
    )
    assert live.serves(staging, first.id)
    assert not live.serves(staging, second.id)
    assert not live.serves(pointer_key("acme", "production"), first.id)
    await control.set_environment(
        "acme", "staging", second.id, expect=None, check_expect=False, action="set", actor="test"
    )
    assert live.serves(staging, second.id) and not live.serves(staging, first.id)
