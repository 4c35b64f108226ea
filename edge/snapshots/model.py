"""The snapshot model: plain frozen data shared by the store, the API and the proxy.

A snapshot is a manifest (URL path -> blob + metadata) plus the site's settings.
It never changes once created; environments are pointers to snapshot ids.
"""

from __future__ import annotations

import os
import time
from typing import Any

import msgspec

from edge.router import Env


class ManifestEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One path of a snapshot: which blob it serves, as what, and whether indexable."""

    sha256: str
    content_type: str
    size: int
    noindex: bool = False


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    """A whole snapshot. ``files`` and ``settings`` are never mutated after creation."""

    id: str
    site: str
    files: dict[str, ManifestEntry]
    settings: dict[str, Any]
    parent: str | None = None
    message: str = ""
    created_at: str
    actor: str = ""


class SnapshotInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot without its manifest, for listings."""

    id: str
    parent: str | None
    message: str
    created_at: str
    files: int
    actor: str


class Pointer(msgspec.Struct, frozen=True, kw_only=True):
    """Where one environment of a site points, and staging's sync base."""

    site: str
    env: Env
    snapshot: str | None = None
    base: str | None = None
    updated_at: str | None = None
    actor: str | None = None


class PointerMove(msgspec.Struct, frozen=True, kw_only=True):
    """One compare-and-swap: ``env`` from ``expect`` to ``to`` (and its new ``base``)."""

    env: Env
    expect: str | None
    to: str
    base: str | None


class HistoryEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One pointer move, as it is recorded for ever."""

    id: int
    at: str
    env: Env
    from_: str | None = msgspec.field(name="from")
    to: str
    action: str
    actor: str


def utc_now() -> str:
    """The current time as RFC 3339 UTC with milliseconds."""
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def new_snapshot_id() -> str:
    """A 16-character id that sorts by creation time (48-bit ms clock + 32 random bits)."""
    value = (int(time.time() * 1000) << 32) | int.from_bytes(os.urandom(4), "big")
    chars = []
    for _ in range(16):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


class Schedule(msgspec.Struct, frozen=True, kw_only=True):
    """A publish captured now to go live at ``at`` (canonical UTC).

    ``snapshot`` is staging's snapshot when the schedule was made (what was reviewed
    is what goes live) and ``base`` staging's base then, for the drift rules.
    """

    id: str
    site: str
    at: str
    snapshot: str
    base: str | None
    paths: list[str] | None = None
    settings: bool = False
    status: str = "pending"  # pending | done | failed | cancelled
    error: str | None = None
    created_at: str
    actor: str
    fired_at: str | None = None


class FormSubmission(msgspec.Struct, frozen=True, kw_only=True):
    """One visitor's form post, kept in its environment's inbox."""

    id: int
    site: str
    env: Env
    form: str
    at: str
    fields: dict[str, str | list[str]]


class InboxLimits(msgspec.Struct, frozen=True, kw_only=True):
    """The cap of one environment's inbox: submissions kept and their stored bytes."""

    max_submissions: int
    max_bytes: int


class InboxPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of an inbox, newest first; ``more`` when older submissions follow."""

    submissions: list[FormSubmission]
    more: bool


class InboxUsage(msgspec.Struct, frozen=True, kw_only=True):
    """What an environment's inbox holds: submissions and their stored bytes."""

    submissions: int
    bytes: int


class OutboxEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A webhook delivery to make: written in the transaction of the change it reports."""

    site: str
    env: Env
    event: str
    url: str
    secret_env: str
    payload: bytes


class OutboxItem(OutboxEvent, frozen=True, kw_only=True):
    """A delivery as the outbox holds it: the event, its id and how its attempts went."""

    id: int
    attempts: int
    status: str  # pending | delivered | failed
    created_at: str
    last_error: str | None = None
    delivered_at: str | None = None


class PageViews(msgspec.Struct, frozen=True, kw_only=True):
    path: str
    day: str
    views: int


class NodeState(msgspec.Struct, frozen=True, kw_only=True):
    """One edge node in the PostgreSQL node registry (its last heartbeat)."""

    name: str
    generation: int  # the cluster generation it serves
    started_at: str
    seen_at: str
    live: bool  # heard from within the staleness bound ``wait: "all"`` uses
