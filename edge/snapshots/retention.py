"""Which snapshots and blobs a collection keeps: the retention policy, as pure logic.

A snapshot is kept while anything may still serve it or go back to it:
- a pointer (its snapshot, and its sync base: the merge rules read it),
- a pending schedule (its snapshot and base),
- a preview link that has not expired,
- one of the last ``keep_production_moves`` production moves (both ends: rollback
  targets within the policy),
- or it is younger than ``grace_seconds`` (a push creates the snapshot, then points).

A blob is kept while a kept snapshot names it, or while it was uploaded (or uploaded
again) within ``grace_seconds``: the files of a push in progress are not referenced by
any snapshot yet. History rows always stay; rolling back to a collected snapshot is
refused with a message that says so (:mod:`edge.snapshots.control`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from edge.config import RetentionConfig as Retention
from edge.errors import Conflict

__all__ = ["Collected", "Retention", "collected_refusal", "kept_snapshots", "rfc3339"]


@dataclass(frozen=True, slots=True)
class Collected:
    """What a collection removed, or with ``dry_run`` would remove."""

    dry_run: bool
    snapshots: list[str]
    blobs: int
    bytes: int


def rfc3339(epoch: float) -> str:
    """``epoch`` in :func:`edge.snapshots.model.utc_now`'s format (comparable as text)."""
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch * 1000) % 1000:03d}Z"
    )


def kept_snapshots(
    *,
    pointers: Iterable[str | None],
    schedules: Iterable[str | None],
    previews: Iterable[str],
    production_moves: Iterable[str | None],
    young: Iterable[str],
) -> set[str]:
    """Every snapshot id the policy keeps (each argument already limited as it says)."""
    kept: set[str] = set()
    for group in (pointers, schedules, previews, production_moves, young):
        kept.update(i for i in group if i is not None)
    return kept


def collected_refusal(snapshot_id: str) -> Conflict:
    """The answer to a move onto a snapshot a collection removed."""
    return Conflict(
        f"snapshot {snapshot_id} was removed by garbage collection (the retention policy"
        " no longer kept it); its history stays, but nothing can point at it again"
    )
