"""A SQLite store as the release before blob files wrote it: schema 4, bytes in rows."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import msgspec

from edge.snapshots import sqlite

RELEASE_SCHEMA = 4  # the last schema with blobs.data


def write_release_store(data_dir: Path, site: str, files: dict[str, bytes]) -> str:
    """``data_dir/edge.sqlite3`` with ``files`` as one snapshot on production; its id."""
    data_dir.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(data_dir / "edge.sqlite3")
    for script in sqlite._MIGRATIONS[:RELEASE_SCHEMA]:
        db.executescript(script)
    at = "2026-01-01T00:00:00.000Z"
    manifest = {}
    for path, data in files.items():
        digest = hashlib.sha256(data).hexdigest()
        db.execute(
            "INSERT OR IGNORE INTO blobs (site, sha256, size, data, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (site, digest, len(data), data, at),
        )
        manifest[path] = {"sha256": digest, "content_type": "text/html", "size": len(data)}
    snapshot_id = "0000000000000abc"
    db.execute(
        "INSERT INTO snapshots (site, id, parent, message, created_at, actor, files_count,"
        " manifest, settings) VALUES (?, ?, NULL, 'old', ?, 'old', ?, ?, ?)",
        (site, snapshot_id, at, len(files), msgspec.json.encode(manifest), b"{}"),
    )
    for env in ("staging", "production"):
        db.execute(
            "INSERT INTO pointers (site, env, snapshot, base, updated_at, actor)"
            " VALUES (?, ?, ?, NULL, ?, 'old')",
            (site, env, snapshot_id, at),
        )
    db.execute(f"PRAGMA user_version = {RELEASE_SCHEMA}")
    db.commit()
    db.close()
    return snapshot_id
