"""Promotion planning: what an operator action does to manifests and pointers. Pure.

Given snapshots' contents and the current pointers (read from the store), these
functions compute the resulting content and the compare-and-swap moves to
commit. The store applies the moves in one transaction or not at all, so a plan
made on stale pointers fails instead of overwriting.

Staging's ``base`` is production's snapshot at staging's last sync: set by
publish and refresh, kept when staging moves by a plain set, and taken from
production the first time staging is set.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from edge.errors import Conflict
from edge.router import Env
from edge.snapshots.manifest import apply_changes
from edge.snapshots.merge import three_way_merge
from edge.snapshots.model import ManifestEntry, Pointer, PointerMove

Content = tuple[Mapping[str, ManifestEntry], Mapping[str, Any]]
EMPTY: Content = ({}, {})


@dataclass(frozen=True, slots=True)
class Piece:
    """Content to publish: a snapshot's files and settings, whole or in part.

    ``paths=None`` is a whole publish, merged against ``base`` (production as the
    snapshot's author last saw it); otherwise only ``paths`` are taken, plus the
    settings when ``settings`` is true.
    """

    content: Content
    base: Content = EMPTY
    paths: Sequence[str] | None = None
    settings: bool = False


@dataclass(frozen=True, slots=True)
class Composition:
    files: dict[str, ManifestEntry]
    settings: dict[str, Any]
    conflicts: list[str] = field(default_factory=list)


def take_paths(
    target: Mapping[str, ManifestEntry],
    source: Mapping[str, ManifestEntry],
    paths: Iterable[str],
) -> dict[str, ManifestEntry]:
    """``target`` with ``paths`` as ``source`` has them (absent there: removed)."""
    wanted = list(paths)
    return apply_changes(
        target,
        upserts={path: source[path] for path in wanted if path in source},
        deletes=[path for path in wanted if path not in source],
    )


def compose(production: Content, pieces: Sequence[Piece]) -> Composition:
    """Production's content with every piece applied in order.

    Conflicts from whole pieces are listed and resolved to the piece's side; the
    caller decides whether they stop the publish.
    """
    files: dict[str, ManifestEntry] = dict(production[0])
    settings: dict[str, Any] = dict(production[1])
    conflicts: list[str] = []
    for piece in pieces:
        if piece.paths is None:
            merged = three_way_merge(piece.base, (files, settings), piece.content)
            files, settings = merged.files, merged.settings
            conflicts.extend(c for c in merged.conflicts if c not in conflicts)
        else:
            files = take_paths(files, piece.content[0], piece.paths)
            if piece.settings:
                settings = dict(piece.content[1])
    return Composition(files, settings, conflicts)


def same_content(a: Content, b: Content) -> bool:
    return a[0] == b[0] and a[1] == b[1]


def plan_set(pointers: Mapping[Env, Pointer], env: Env, to: str) -> list[PointerMove]:
    """Point ``env`` at snapshot ``to`` directly (a push, or an emergency fix)."""
    current = pointers[env]
    if env == "staging":
        base = current.base if current.snapshot is not None else pointers["production"].snapshot
    else:
        base = None
    return [PointerMove(env=env, expect=current.snapshot, to=to, base=base)]


def is_fast_forward(pointers: Mapping[Env, Pointer]) -> bool:
    """Production has not moved since staging last synced with it."""
    return pointers["production"].snapshot == pointers["staging"].base


def plan_production(pointers: Mapping[Env, Pointer], to: str) -> list[PointerMove]:
    """Production := ``to``, staging untouched (partial publish, rollback)."""
    return [PointerMove(env="production", expect=pointers["production"].snapshot, to=to, base=None)]


def plan_promote(pointers: Mapping[Env, Pointer], to: str) -> list[PointerMove]:
    """Production := ``to``; staging := ``to`` too, with base := ``to``.

    Used for the fast-forward (``to`` is staging's snapshot, so staging keeps its
    snapshot and only its base moves) and after a merge (staging follows the merged
    snapshot so the next publish cannot revert production's fix).
    """
    staging = pointers["staging"]
    if staging.snapshot is None:
        raise Conflict("staging has no snapshot to publish")
    return [
        *plan_production(pointers, to),
        PointerMove(env="staging", expect=staging.snapshot, to=to, base=to),
    ]


def plan_refresh(pointers: Mapping[Env, Pointer]) -> list[PointerMove]:
    """Staging := production, base := production."""
    production = pointers["production"].snapshot
    if production is None:
        raise Conflict("production has no snapshot to refresh staging from")
    return [
        PointerMove(
            env="staging", expect=pointers["staging"].snapshot, to=production, base=production
        )
    ]


def environments_etag(pointers: Mapping[Env, Pointer]) -> str:
    """A strong validator of both pointers (and staging's base), for ``If-Match``."""
    staging, production = pointers["staging"], pointers["production"]
    state = f"{staging.snapshot}|{staging.base}|{production.snapshot}"
    return '"' + hashlib.sha256(state.encode()).hexdigest()[:24] + '"'


def if_match_holds(if_match: str | None, etag: str) -> bool:
    """``If-Match`` absent, ``*``, or listing ``etag`` (strong comparison)."""
    if if_match is None or if_match.strip() == "*":
        return True
    return any(tag.strip() == etag for tag in if_match.split(","))
