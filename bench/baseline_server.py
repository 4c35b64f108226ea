"""The baseline of ``bench/throughput.py``: a bare aiohttp app on uvloop.

One handler returns a page's bytes from a dict, with the Content-Type edge sends
for it. Nothing else: no host routing, no snapshots, no cache, no noindex, and no
access log (logging is left unconfigured, so aiohttp's access logger is off).
This is the "bare aiohttp handler that returns the same bytes from a dict" of
SPEC §6, started by the benchmark in the same run as ``edge serve``.

    python bench/baseline_server.py --port 9000 --pages pages.json

``pages.json`` maps URL paths to ``[file, content type]``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import uvloop
from aiohttp import web


def load_pages(spec: Path) -> dict[str, tuple[bytes, str]]:
    """URL path -> (body, content type), every file read once at start-up."""
    table = json.loads(spec.read_text())
    return {path: (Path(file).read_bytes(), ctype) for path, (file, ctype) in table.items()}


def build_app(pages: dict[str, tuple[bytes, str]]) -> web.Application:
    """One catch-all GET route whose handler is a dict lookup."""

    async def page(request: web.Request) -> web.Response:
        found = pages.get(request.path)
        if found is None:
            return web.Response(status=404, text="Not Found\n")
        body, content_type = found
        return web.Response(body=body, headers={"Content-Type": content_type})

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
