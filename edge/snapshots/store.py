"""The store protocol: everything durable edge keeps, behind one interface.

The SQLite store (``edge.snapshots.sqlite``) is the embedded default; a networked
backend shared by several machines implements the same protocol, and no handler
knows which one it has. Every method that moves a pointer commits durably before
it returns. Both share what they do alike in :class:`edge.snapshots.sqlstore.SqlStore`.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from edge.errors import PointerMoved
from edge.router import Env
from edge.snapshots.model import (
    FormSubmission,
    HistoryEntry,
    InboxLimits,
    InboxPage,
    InboxUsage,
    NodeState,
    OutboxEvent,
    OutboxItem,
    PageViews,
    Pointer,
    PointerMove,
    Schedule,
    Snapshot,
    SnapshotInfo,
)
from edge.snapshots.retention import Collected, Retention


class Store(Protocol):
    """Durable state: content-addressed blobs, snapshots, pointers and their history."""

    async def missing_blobs(self, site: str, hashes: Sequence[str]) -> list[str]:
        """Those of ``hashes`` the site does not hold yet, in the order given."""
        ...

    async def blob_sizes(self, site: str, hashes: Sequence[str]) -> dict[str, int]:
        """Sizes of those of ``hashes`` the site holds."""
        ...

    async def receive_blob(
        self, site: str, sha256: str, chunks: AsyncIterable[bytes], *, limit: int
    ) -> tuple[bool, int]:
        """Stream an upload in, hashing it on the fly; ``(new, size)`` once it is durable.

        :class:`edge.errors.HashMismatch` when the bytes do not hash to ``sha256``,
        :class:`edge.errors.PayloadTooLarge` past ``limit`` bytes; then, as when
        ``chunks`` fails (the client went away), nothing is stored. An upload that
        races a collection of the same blob ends with the blob present.
        """
        ...

    async def put_blob(self, site: str, sha256: str, data: bytes | bytearray) -> bool:
        """:meth:`receive_blob` of bytes in memory (small blobs, tests); ``True`` if new."""
        ...

    async def blob_file(self, site: str, sha256: str) -> Path | None:
        """A local file holding the blob (never to be written to), or ``None``.

        On a networked store the blob is fetched into this node's disk cache first.
        """
        ...

    async def prefetch_blobs(self, site: str, hashes: Sequence[str], *, seconds: float) -> None:
        """Bring blobs to this node's disk, waiting at most ``seconds`` (the rest go on
        in the background); nothing to do where every blob is already local."""
        ...

    async def get_blob(self, site: str, sha256: str) -> bytes | None:
        """A blob's bytes read whole (small blobs only), or ``None``."""
        ...

    async def add_preview_link(self, site: str, snapshot: str, expires: float) -> None:
        """Remember that a preview link shows ``snapshot`` until ``expires`` (epoch
        seconds): collection keeps it that long."""
        ...

    async def collect(
        self, site: str, policy: Retention, *, dry_run: bool, now: float
    ) -> Collected:
        """Remove the site's snapshots and blobs ``policy`` does not keep (or, with
        ``dry_run``, only count them). History rows stay."""
        ...

    async def was_collected(self, site: str, snapshot_id: str) -> bool:
        """Whether ``snapshot_id`` existed and was removed by a collection."""
        ...

    def cluster(self) -> ClusterStore | None:
        """The cluster capabilities of a store shared by several nodes, else ``None``."""
        ...

    async def create_snapshot(self, snapshot: Snapshot) -> None:
        """Store a snapshot whole or not at all; :class:`MissingBlobs` if any blob is absent."""
        ...

    async def get_snapshot(self, site: str, snapshot_id: str) -> Snapshot | None:
        """One snapshot with its manifest, or ``None``."""
        ...

    async def list_snapshots(
        self, site: str, *, limit: int, before: str | None = None
    ) -> list[SnapshotInfo]:
        """Snapshots newest first; ``before`` continues a listing."""
        ...

    async def snapshot_messages(self, site: str, ids: Sequence[str]) -> dict[str, str]:
        """The message of each of ``ids`` that exists (without loading any manifest)."""
        ...

    async def get_pointers(self, site: str) -> dict[Env, Pointer]:
        """Both environment pointers of a site (unset ones with ``snapshot=None``)."""
        ...

    async def all_pointers(self) -> list[Pointer]:
        """Every set pointer of every site."""
        ...

    async def move_pointers(
        self,
        site: str,
        moves: Sequence[PointerMove],
        *,
        action: str,
        actor: str,
        complete: Sequence[str] = (),
        events: Sequence[OutboxEvent] = (),
    ) -> list[HistoryEntry]:
        """Apply ``moves`` in one durable transaction, each a compare-and-swap.

        ``events`` (webhook deliveries announcing the move) join the same transaction.

        Raises :class:`edge.errors.PointerMoved` (and changes nothing) when any
        pointer is not at its ``expect`` any more. The schedules named in
        ``complete`` are marked done in the same transaction, and it fails with
        :class:`edge.errors.Conflict` if any is no longer pending: a schedule
        fires once, even with several processes racing for it.
        """
        ...

    async def history(
        self, site: str, *, env: Env | None, limit: int, before: int | None = None
    ) -> list[HistoryEntry]:
        """Pointer moves newest first; ``before`` (an entry id) continues a listing."""
        ...

    async def add_schedule(self, schedule: Schedule) -> None:
        """Store a new pending schedule durably."""
        ...

    async def list_schedules(
        self, site: str, *, status: str | None = None, limit: int = 100
    ) -> list[Schedule]:
        """A site's schedules, latest moment first, optionally of one status."""
        ...

    async def get_schedule(self, site: str, schedule_id: str) -> Schedule | None: ...

    async def pending_schedules(self, *, due_by: str | None = None) -> list[Schedule]:
        """Every pending schedule of every site, earliest first (only those due by
        ``due_by``, a canonical moment, when given)."""
        ...

    async def next_schedule_moment(self) -> str | None:
        """The earliest moment of any pending schedule (no schedule is decoded)."""
        ...

    async def cancel_schedule(self, site: str, schedule_id: str) -> None:
        """Cancel a pending schedule: NotFound, or Conflict when it is not pending."""
        ...

    async def fail_schedules(
        self,
        site: str,
        schedule_ids: Sequence[str],
        error: str,
        events: Sequence[OutboxEvent] = (),
    ) -> None:
        """Record that pending schedules could not fire, and why."""
        ...

    async def add_form_submission(
        self,
        site: str,
        env: Env,
        form: str,
        fields: dict[str, str | list[str]],
        events: Sequence[OutboxEvent] = (),
        *,
        limits: InboxLimits | None = None,
    ) -> FormSubmission:
        """Store a submission (and its webhook events) durably in one transaction.

        With ``limits``, :class:`edge.errors.InboxFull` (and nothing stored) when the
        environment's inbox would pass either cap; the check and the write are one
        transaction, so concurrent posts cannot overshoot it.
        """
        ...

    async def list_form_submissions(
        self, site: str, env: Env, *, form: str | None, limit: int, before: int | None
    ) -> list[FormSubmission]:
        """An inbox, newest first."""
        ...

    async def inbox_page(
        self,
        site: str,
        env: Env,
        *,
        form: str | None,
        limit: int,
        before: int | None,
        max_bytes: int,
    ) -> InboxPage:
        """Up to ``limit`` submissions newest first, cut once their stored bytes pass
        ``max_bytes`` (always at least one); only the page's rows are read whole."""
        ...

    async def delete_form_submissions(
        self,
        site: str,
        env: Env,
        *,
        submission: int | None = None,
        before: str | None = None,
        form: str | None = None,
    ) -> int:
        """Delete one submission, or those older than ``before`` (canonical UTC), or all;
        how many went. The inbox's usage follows in the same transaction."""
        ...

    async def inbox_usage(self, site: str, env: Env) -> InboxUsage:
        """What the environment's inbox holds now."""
        ...

    def free_bytes(self) -> int | None:
        """Free bytes on the disk that holds the store, ``None`` when edge cannot know
        (a database on another machine). A syscall: callers cache it."""
        ...

    async def add_page_views(self, counts: Sequence[tuple[str, Env, str, str, int]]) -> None:
        """Add ``(site, env, path, day, views)`` counts."""
        ...

    async def page_views(
        self, site: str, env: Env, *, first_day: str, last_day: str, limit: int
    ) -> list[PageViews]: ...

    async def claim_outbox(self, *, now: float, lease: float, limit: int) -> list[OutboxItem]:
        """Due pending deliveries, leased to the caller for ``lease`` seconds."""
        ...

    async def next_outbox_due(self) -> float | None:
        """When the next pending delivery is due (epoch seconds)."""
        ...

    async def outbox_depth(self) -> dict[tuple[str, str], int]:
        """Pending deliveries (due or waiting for a retry) per ``(site, env)``."""
        ...

    async def record_delivery(
        self, item_id: int, *, delivered: bool, error: str | None, retry_at: float | None
    ) -> None:
        """The outcome of one attempt: delivered, retry at ``retry_at``, or given up."""
        ...

    async def list_outbox(
        self, site: str, env: Env, *, limit: int, before: int | None
    ) -> list[OutboxItem]:
        """The delivery log of an environment, newest first."""
        ...

    async def close(self) -> None:
        """Release connections; pending writes are already committed."""
        ...


class ClusterStore(Store, Protocol):
    """What a store shared by several nodes adds: a generation, a node registry, secrets."""

    async def generation(self) -> int:
        """The cluster's pointer generation (every committed move is at or below it)."""
        ...

    async def live_nodes(self, stale_after: float) -> dict[str, int]:
        """Nodes seen within ``stale_after`` seconds and the generation each serves."""
        ...

    async def nodes(self, stale_after: float) -> list[NodeState]:
        """Every registered node."""
        ...

    async def shared_secret(self, name: str, size: int) -> bytes:
        """A random secret of ``size`` bytes shared by every node, made once."""
        ...

    async def sweep_cache(self, served: set[str], *, idle_before: float) -> int:
        """Drop this node's cached copies of blobs the database no longer holds, and of
        blobs no snapshot in ``served`` names fetched before ``idle_before``; how many.
        See :func:`edge.snapshots.cachesweep.sweepable`."""
        ...


def check_expected(current: Mapping[Env, Pointer], moves: Sequence[PointerMove]) -> None:
    """The compare in compare-and-swap: each move's ``expect`` is what its pointer holds.

    Both stores call it inside the transaction that then writes the moves, so a
    pointer that moved meanwhile refuses the whole batch.
    """
    for move in moves:
        found = current[move.env].snapshot
        if found != move.expect:
            raise PointerMoved(
                f"{move.env} points at {found!r}, not {move.expect!r}",
                env=move.env,
                current=found,
            )
