"""The schedule timer: sleeps until the next due moment, then fires.

No polling: the task waits on an event with a timeout equal to the time left
until the earliest pending schedule; adding or cancelling a schedule sets the
event, which re-arms the timer. After a restart every overdue schedule fires at
once, in time order. Firing is exactly-once even with several processes: the
store marks a schedule done in the same transaction as the pointer move.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from edge.errors import Conflict, EdgeError, StoreUnavailable
from edge.snapshots.control import Control
from edge.snapshots.model import utc_now
from edge.snapshots.schedule import due_groups, moment_epoch
from edge.snapshots.store import Store
from edge.timer import PokeableLoop

log = logging.getLogger("edge.scheduler")
# After losing a race for a due schedule (or a store error), try again this soon,
# not at once: that would spin while the other process finishes.
RETRY_SECONDS = 0.05
# The disk is full or read-only: try again this often (each try logs an error).
STORE_RETRY_SECONDS = 1.0
# Sleep at most this long before re-reading the store, so a wall-clock jump or a
# schedule added by another process is noticed within this bound.
MAX_SLEEP_SECONDS = 30.0


class Scheduler(PokeableLoop):
    """Fires due schedules; poked when one is added or cancelled."""

    def __init__(
        self,
        store: Store,
        control: Control,
        *,
        wake: asyncio.Event | None = None,
        on_fired: Callable[[str, list[str], float], None] | None = None,
    ) -> None:
        """``wake``: set when a schedule was added or cancelled (``Control`` is built
        first and sets it, since this fires through ``Control``); ``on_fired``: told
        when a group went through, with its site, schedule ids and seconds late."""
        super().__init__(log, wake=wake)
        self._store = store
        self._control = control
        self._on_fired = on_fired

    async def step(self) -> float:
        """Fire everything due; the seconds until the next moment (capped)."""
        # Only what is due is read and decoded (a pending schedule may name 200,000
        # paths); the next moment comes from the (status, at) index alone.
        pending = await self._store.pending_schedules(due_by=utc_now())
        retry = False
        unwritable = False
        held: set[str] = set()  # sites whose earlier group could not fire this pass
        for group in due_groups(pending, utc_now()):
            ids = [s.id for s in group]
            site = group[0].site
            if site in held:
                continue  # never fire a later moment before an earlier one of its site
            try:
                moved = await self._control.fire(group)
            except Conflict as exc:
                # Lost a race (another process fired it, or a pointer moved under
                # us): the next pass re-reads the store and sees what is left.
                log.info("schedule group %s not fired now: %s", ids, exc)
                retry = True
                held.add(site)
                continue
            except StoreUnavailable as exc:
                # The disk is full or read-only, or the database went away: the
                # schedule is fine, keep it pending and try again soon.
                log.error("schedule group %s cannot fire now: %s", ids, exc.message)
                unwritable = True
                held.add(site)
                continue
            except EdgeError as exc:
                # The schedule itself is broken (its snapshot is gone): say so.
                log.error("schedule group %s cannot fire: %s", ids, exc)
                await self._store.fail_schedules(site, ids, f"could not fire: {exc.message}")
                continue
            except Exception:
                # The store or the disk failed: keep the schedules, try again soon.
                log.exception("schedule group %s failed; retrying", ids)
                retry = True
                held.add(site)
                continue
            if self._on_fired is not None:
                self._on_fired(site, ids, time.time() - moment_epoch(group[0].at))
            log.info(
                "schedules %s of %s fired: production %s -> %s",
                [s.id for s in group],
                group[0].site,
                moved.previous,
                moved.to,
            )
        moment = await self._store.next_schedule_moment()
        delay = MAX_SLEEP_SECONDS
        if moment is not None:
            delay = min(max(moment_epoch(moment) - time.time(), 0.0), MAX_SLEEP_SECONDS)
        if unwritable:
            return max(delay, STORE_RETRY_SECONDS)
        return max(delay, RETRY_SECONDS) if retry else delay
