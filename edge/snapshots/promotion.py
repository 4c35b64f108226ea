"""Promotion planning: which pointer moves an operator action means. Pure.

Given the current pointers (read from the store), each function returns the
compare-and-swap moves to commit. The store applies them in one transaction or
not at all, so a plan made on stale pointers fails instead of overwriting.

Staging's ``base`` is production's snapshot at staging's last sync: set by
publish and refresh, kept when staging moves by a plain set, and taken from
production the first time staging is set.
"""

from __future__ import annotations

from collections.abc import Mapping

from edge.errors import Conflict
from edge.router import Env
from edge.snapshots.model import Pointer, PointerMove


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
        PointerMove(env="production", expect=pointers["production"].snapshot, to=to, base=None),
        PointerMove(env="staging", expect=staging.snapshot, to=to, base=to),
    ]
