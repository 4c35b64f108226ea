"""Building manifests: pure functions over plain dicts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from edge.paths import is_manifest_path
from edge.snapshots.model import ManifestEntry


def bad_paths(paths: Iterable[str]) -> list[str]:
    """Paths that are not clean absolute URL paths of files (sorted)."""
    return sorted(p for p in paths if not is_manifest_path(p))


def apply_changes(
    base: Mapping[str, ManifestEntry],
    upserts: Mapping[str, ManifestEntry],
    deletes: Iterable[str],
) -> dict[str, ManifestEntry]:
    """``base`` with ``deletes`` removed, then ``upserts`` written over it."""
    files = dict(base)
    for path in deletes:
        files.pop(path, None)
    files.update(upserts)
    return files
