"""``edge push``: hash a directory, upload only the missing blobs, snapshot, point.

The upload protocol is the Netlify/Vercel one: ask which hashes are missing,
send only those, then create the snapshot from hashes alone. Pushing an
unchanged site uploads nothing; changing one page uploads one blob.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from edge.cli.client import AdminClient, ApiError
from edge.paths import is_manifest_path

_READ_CHUNK = 1024 * 1024
_PARALLEL_UPLOADS = 4


@dataclass(frozen=True, slots=True)
class LocalFile:
    path: Path
    sha256: str
    size: int


class PushError(Exception):
    """The directory cannot be pushed as it is."""


def hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_READ_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def scan_tree(root: Path) -> dict[str, LocalFile]:
    """URL path -> file for every file below ``root``.

    Hidden files and folders (``.git``, ``.DS_Store``) are skipped, except
    ``.well-known``; symlinks to folders are not followed.
    """
    if not root.is_dir():
        raise PushError(f"{root} is not a directory")
    files: dict[str, LocalFile] = {}
    for folder, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") or d == ".well-known")
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            local = Path(folder) / name
            if not local.is_file():
                continue
            url_path = "/" + local.relative_to(root).as_posix()
            if not is_manifest_path(url_path):
                raise PushError(f"{local}: its name cannot be a URL path ({url_path!r})")
            files[url_path] = LocalFile(local, hash_file(local), local.stat().st_size)
    return files


async def stream_file(f: LocalFile, sent: Callable[[int], None]) -> AsyncIterator[bytes]:
    """The file's bytes, read from disk a chunk at a time (never whole), reporting each.

    Exactly ``f.size`` bytes (the Content-Length sent): a file that grew meanwhile
    is cut there, and the server's hash check refuses what changed.
    """
    left = f.size
    with f.path.open("rb") as fh:
        while left > 0:
            chunk = await asyncio.to_thread(fh.read, min(_READ_CHUNK, left))
            if not chunk:
                raise PushError(f"{f.path} changed while pushing (it shrank); push again")
            left -= len(chunk)
            sent(len(chunk))
            yield chunk


@dataclass(frozen=True, slots=True)
class PushResult:
    snapshot: str
    files: int
    uploaded: int
    uploaded_bytes: int


async def push(
    client: AdminClient,
    site: str,
    root: Path,
    *,
    env: str = "staging",
    message: str = "",
    settings: dict[str, Any] | None = None,
    show_progress: bool = True,
    allow_empty: bool = False,
) -> PushResult:
    """Push ``root`` as a new snapshot of ``site`` and point ``env`` at it."""
    files = scan_tree(root)
    if not files and not allow_empty:
        raise PushError(
            f"{root} holds no files: {env} would answer 404 for every path"
            " (pass --allow-empty if that is what you mean)"
        )
    by_hash = {f.sha256: f for f in files.values()}
    answer = await client.call(
        "POST", f"/v1/sites/{site}/blobs/missing", json={"sha256": sorted(by_hash)}
    )
    missing = [by_hash[h] for h in answer["missing"]]
    total = sum(f.size for f in missing)
    with Progress(
        TextColumn("uploading"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        disable=not show_progress or not missing,
        transient=True,
    ) as progress:
        task = progress.add_task("upload", total=total)
        gate = asyncio.Semaphore(_PARALLEL_UPLOADS)

        async def upload(f: LocalFile) -> None:
            async with gate:
                try:
                    await client.call(
                        "PUT",
                        f"/v1/sites/{site}/blobs/{f.sha256}",
                        data=stream_file(f, lambda n: progress.advance(task, n)),
                        content_length=f.size,
                    )
                except ApiError as exc:
                    if exc.code == "hash_mismatch":  # the server stored nothing
                        raise PushError(f"{f.path} changed while pushing; push again") from exc
                    raise

        await asyncio.gather(*(upload(f) for f in missing))
    # On top of what the environment serves now: its settings carry over (unless
    # given), files gone from the directory are deleted, and history shows lineage.
    body: dict[str, Any] = {
        "files": {path: {"sha256": f.sha256} for path, f in files.items()},
        "message": message,
    }
    current = (await client.call("GET", f"/v1/sites/{site}/environments"))[env]["snapshot"]
    if current is not None:
        parent = await client.call("GET", f"/v1/sites/{site}/snapshots/{current}")
        body["parent"] = current
        body["delete"] = sorted(set(parent["files"]) - set(files))
    if settings is not None:
        body["settings"] = settings
    created = await client.call("POST", f"/v1/sites/{site}/snapshots", json=body)
    await client.call(
        "PUT",
        f"/v1/sites/{site}/environments/{env}",
        json={"snapshot": created["id"], "action": "push", "allow_empty": allow_empty},
    )
    return PushResult(created["id"], len(files), len(missing), total)
