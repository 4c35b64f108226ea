"""The ceiling of ``bench/throughput.py``: a bare uvloop protocol with httptools.

About forty lines: one ``asyncio.Protocol``, httptools' C parser, and answers
made at start-up from a dict (200, 304 on the ETag, gzip bytes for text), with a
``Date`` line formatted once a second. No routing, no snapshots, no metrics, no
deadlines, no pipelining order, no limits: what Python on uvloop costs per
request before any of edge's work, on the same machine in the same run.

    python bench/ceiling_server.py --port 9000 --pages pages.json
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script: make the ``bench`` package importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio
import time
from email.utils import formatdate
from typing import Any, ClassVar

import httptools
import uvloop

from bench.baseline_server import Page, load_pages


def _answers(page: Page) -> tuple[bytes, bytes, bytes | None]:
    common = f"Content-Type: {page.content_type}\r\nETag: {page.etag}\r\n"
    ok = f"HTTP/1.1 200 OK\r\n{common}Content-Length: {len(page.body)}\r\n".encode()
    gz = None
    if page.gzipped is not None:
        gz = (
            f"HTTP/1.1 200 OK\r\n{common}Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n"
            f"Content-Length: {len(page.gzipped)}\r\n"
        ).encode()
    return ok, f"HTTP/1.1 304 Not Modified\r\nETag: {page.etag}\r\n".encode(), gz


class Ceiling(asyncio.Protocol):
    pages: ClassVar[dict[bytes, tuple[Page, tuple[bytes, bytes, bytes | None]]]] = {}
    date: ClassVar[list[Any]] = [0, b""]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.headers: dict[bytes, bytes] = {}

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_url(self, url: bytes) -> None:
        self.url = url
        self.headers = {}

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_message_complete(self) -> None:
        now = int(time.time())
        if now != self.date[0]:
            self.date[:] = [now, b"Date: " + formatdate(now, usegmt=True).encode() + b"\r\n\r\n"]
        found = self.pages.get(self.url)
        if found is None:
            self.transport.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            return
        page, (ok, not_modified, gz) = found
        date = self.date[1]
        if self.headers.get(b"if-none-match") == page.etag.encode():
            self.transport.write(not_modified + date)
        elif gz is not None and b"gzip" in self.headers.get(b"accept-encoding", b""):
            self.transport.write(b"".join((gz, date, page.gzipped or b"")))
        else:
            self.transport.write(b"".join((ok, date, page.body)))


async def serve(host: str, port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Ceiling, host, port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pages", type=Path, required=True, help="JSON: path -> [file, type]")
    args = parser.parse_args()
    pages = load_pages(args.pages)
    Ceiling.pages = {path.encode(): (page, _answers(page)) for path, page in pages.items()}
    uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
