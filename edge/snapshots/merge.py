"""Three-way merge of snapshots: what a publish does when production drifted.

How this works: ``base`` is production as staging last saw it; ``production``
may since have received an emergency fix; ``staging`` holds the reviewed work.
Each path (and each top-level settings key, named ``settings.<key>``) is decided
on its own:

- the same on both sides (including both removed): keep it;
- changed on one side only: take that side's version (or removal);
- changed on both sides, differently: a conflict. Without ``force`` the caller
  refuses the publish; with it, staging's version wins.

Pure: plain mappings in, a :class:`MergeResult` out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from edge.snapshots.model import ManifestEntry

V = TypeVar("V")
_ABSENT: Any = object()


@dataclass(frozen=True, slots=True)
class MergeResult:
    files: dict[str, ManifestEntry]
    settings: dict[str, Any]
    conflicts: list[str]


def _merge_maps(
    base: Mapping[str, V], ours: Mapping[str, V], theirs: Mapping[str, V], prefix: str = ""
) -> tuple[dict[str, V], list[str]]:
    merged: dict[str, V] = {}
    conflicts: list[str] = []
    for key in sorted(base.keys() | ours.keys() | theirs.keys()):
        b = base.get(key, _ABSENT)
        o = ours.get(key, _ABSENT)
        t = theirs.get(key, _ABSENT)
        if o == t:
            pick = o
        elif o == b:
            pick = t
        elif t == b:
            pick = o
        else:
            conflicts.append(prefix + key)
            pick = t
        if pick is not _ABSENT:
            merged[key] = pick
    return merged, conflicts


def three_way_merge(
    base: tuple[Mapping[str, ManifestEntry], Mapping[str, Any]],
    production: tuple[Mapping[str, ManifestEntry], Mapping[str, Any]],
    staging: tuple[Mapping[str, ManifestEntry], Mapping[str, Any]],
) -> MergeResult:
    """Merge ``(files, settings)`` triples; conflicts resolve to staging's side."""
    files, file_conflicts = _merge_maps(base[0], production[0], staging[0])
    settings, settings_conflicts = _merge_maps(
        base[1], production[1], staging[1], prefix="settings."
    )
    return MergeResult(files, settings, file_conflicts + settings_conflicts)


def changed_paths(
    old: Mapping[str, ManifestEntry], new: Mapping[str, ManifestEntry]
) -> tuple[list[str], list[str], list[str]]:
    """``(added, removed, changed)`` paths from ``old`` to ``new``, each sorted."""
    added = sorted(new.keys() - old.keys())
    removed = sorted(old.keys() - new.keys())
    changed = sorted(p for p in old.keys() & new.keys() if old[p] != new[p])
    return added, removed, changed


def unpublished_changes(
    base: tuple[Mapping[str, ManifestEntry], Mapping[str, Any]],
    production: tuple[Mapping[str, ManifestEntry], Mapping[str, Any]],
    staging: tuple[Mapping[str, ManifestEntry], Mapping[str, Any]],
) -> list[str]:
    """What staging changed since ``base`` that production does not have.

    A refresh (staging := production) would throw these away.
    """
    lost: list[str] = []
    for prefix, b, p, s in (
        ("", base[0], production[0], staging[0]),
        ("settings.", base[1], production[1], staging[1]),
    ):
        for key in sorted(b.keys() | s.keys()):
            mine = s.get(key, _ABSENT)
            if mine != b.get(key, _ABSENT) and mine != p.get(key, _ABSENT):
                lost.append(prefix + key)
    return lost


def fixes_kept(
    base: tuple[Mapping[str, ManifestEntry], Mapping[str, Any]],
    production: tuple[Mapping[str, ManifestEntry], Mapping[str, Any]],
    staging: tuple[Mapping[str, ManifestEntry], Mapping[str, Any]],
    merged: tuple[Mapping[str, ManifestEntry], Mapping[str, Any]],
) -> list[str]:
    """Production's own changes since ``base`` that ``merged`` keeps although staging lacks them.

    These are the emergency fixes a merged publish carries over: a plain manifest
    diff from production to staging would show them as removed or changed.
    """
    kept: list[str] = []
    for prefix, b, p, s, m in (
        ("", base[0], production[0], staging[0], merged[0]),
        ("settings.", base[1], production[1], staging[1], merged[1]),
    ):
        for key in sorted(p.keys() | b.keys()):
            ours = p.get(key, _ABSENT)
            if ours != b.get(key, _ABSENT) and ours != s.get(key, _ABSENT):
                if m.get(key, _ABSENT) == ours:
                    kept.append(prefix + key)
    return kept
