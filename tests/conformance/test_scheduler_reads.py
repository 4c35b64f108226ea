"""The schedule timer reads only due schedules: pending ones far ahead cost no decode.

Issue 19: a hundred pending schedules of 200,000 paths each were all read and
decoded on every add, cancel and 30 s tick. The timer now asks the store for the
due ones (decoded, they fire) and for the next moment (from the index alone).
"""

from __future__ import annotations

from edge.snapshots.model import Schedule, new_snapshot_id, utc_now
from edge.snapshots.scheduler import Scheduler
from edge.snapshots.store import Store
from tests.conformance.test_store import SITE, make_snapshot


class Counting:
    """The store, counting the schedules it hands out decoded."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.decoded = 0

    async def pending_schedules(self, *, due_by: str | None = None) -> list[Schedule]:
        found = await self._store.pending_schedules(due_by=due_by)
        self.decoded += len(found)
        return found

    async def next_schedule_moment(self) -> str | None:
        return await self._store.next_schedule_moment()


async def test_pending_schedules_ahead_are_not_decoded_by_the_timer(store: Store) -> None:
    snap = await make_snapshot(store, {"/": b"a"})
    paths = [f"/p/{i}.html" for i in range(2_000)]
    for n in range(20):
        await store.add_schedule(
            Schedule(
                id=new_snapshot_id(),
                site=SITE,
                at=f"2099-01-01T00:00:{n:02d}.000Z",
                snapshot=snap.id,
                base=None,
                paths=paths,
                created_at=utc_now(),
                actor="t",
            )
        )
    counting = Counting(store)
    scheduler = Scheduler(counting, None)  # type: ignore[arg-type]  # nothing due: never fires
    for _ in range(5):  # as on five adds, cancels or ticks
        delay = await scheduler.step()
        assert delay > 0
    assert counting.decoded == 0
