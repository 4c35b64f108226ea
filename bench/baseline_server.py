"""The baseline of ``bench/throughput.py``: a bare aiohttp app on uvloop.

One handler returns a page's bytes from a dict, with the Content-Type edge sends
for it, an ETag (``If-None-Match`` answers 304) and, for text, gzip bytes made at
start-up (``Accept-Encoding: gzip``), so every scenario of the benchmark has its
bare-aiohttp counterpart. Nothing else: no host routing, no snapshots, no cache,
no noindex, and no access log (logging is left unconfigured, so aiohttp's access
logger is off).
This is the "bare aiohttp handler that returns the same bytes from a dict" of
SPEC §6, started by the benchmark in the same run as ``edge serve``.

    python bench/baseline_server.py --port 9000 --pages pages.json

``pages.json`` maps URL paths to ``[file, content type]``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import uvloop
from aiohttp import web


@dataclass(frozen=True)
class Page:
    body: bytes
    content_type: str
    etag: str
    gzipped: bytes | None


def load_pages(spec: Path) -> dict[str, Page]:
    """URL path -> the page, every file read (and text gzipped) once at start-up."""
    table = json.loads(spec.read_text())
    pages = {}
    for path, (file, ctype) in table.items():
        body = Path(file).read_bytes()
        text = ctype.startswith("text/") or "javascript" in ctype or "json" in ctype
        pages[path] = Page(
            body,
            ctype,
            f'"{hashlib.sha256(body).hexdigest()[:40]}"',
            gzip.compress(body, compresslevel=6, mtime=0) if text else None,
        )
    return pages


def build_app(pages: dict[str, Page]) -> web.Application:
    """One catch-all GET route whose handler is a dict lookup."""

    async def page(request: web.Request) -> web.Response:
        found = pages.get(request.path)
        if found is None:
            return web.Response(status=404, text="Not Found\n")
        headers = {"Content-Type": found.content_type, "ETag": found.etag}
        if request.headers.get("If-None-Match") == found.etag:
            return web.Response(status=304, headers={"ETag": found.etag})
        if found.gzipped is not None and "gzip" in request.headers.get("Accept-Encoding", ""):
            headers["Content-Encoding"] = "gzip"
            headers["Vary"] = "Accept-Encoding"
            return web.Response(body=found.gzipped, headers=headers)
        return web.Response(body=found.body, headers=headers)

    app = web.Application()
    app.router.add_get("/{path:.*}", page)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pages", type=Path, required=True, help="JSON: path -> [file, type]")
    args = parser.parse_args()
    web.run_app(
        build_app(load_pages(args.pages)),
        host=args.host,
        port=args.port,
        loop=uvloop.new_event_loop(),
        print=None,
        shutdown_timeout=1.0,
    )


if __name__ == "__main__":
    main()
