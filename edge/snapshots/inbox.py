"""Inbox caps and pages: the pure part both stores share."""

from __future__ import annotations

from collections.abc import Sequence

from edge.errors import InboxFull
from edge.router import Env
from edge.snapshots.model import InboxLimits

_UNCAPPED = InboxLimits(max_submissions=2**62, max_bytes=2**62)


def inbox_cap(limits: InboxLimits | None, size: int, site: str, env: Env) -> InboxLimits:
    """The cap to check in SQL; full at once when one submission is over it alone."""
    cap = limits or _UNCAPPED
    if size > cap.max_bytes or cap.max_submissions < 1:
        raise inbox_full(site, env, cap)
    return cap


def inbox_full(site: str, env: Env, cap: InboxLimits) -> InboxFull:
    return InboxFull(
        f"the {env} inbox of {site} is full ({cap.max_submissions} submissions or"
        f" {cap.max_bytes} bytes); delete submissions to make room",
        site=site,
        env=env,
    )


def page_ids(sizes: Sequence[tuple[int, int]], limit: int, max_bytes: int) -> list[int]:
    """The ids of one inbox page from ``(id, stored bytes)`` newest first: at most
    ``limit``, and no more once ``max_bytes`` is reached (the first always)."""
    ids: list[int] = []
    total = 0
    for submission_id, size in sizes[:limit]:
        if ids and total + size > max_bytes:
            break
        ids.append(submission_id)
        total += size
    return ids
