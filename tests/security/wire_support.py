"""Raw HTTP/1.1 over sockets: exact bytes out, parsed responses and EOF in.

No client library is involved, so nothing "fixes" a hostile request on its way
out, and the tests see exactly what the server sent and whether it then closed
the connection.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.admin_api.auth import new_token
from tests.integration.conftest import ROLES, EdgeServer

WAIT = 20.0  # seconds a test waits for the server before failing (generous: loaded machines)


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-case names; repeated fields joined with ", "
    body: bytes
    status_line: bytes = b""


@dataclass
class Exchange:
    """Everything one connection received, parsed."""

    raw: bytes
    responses: list[Response] = field(default_factory=list)
    closed: bool = False  # the server closed (EOF or reset) before the wait ran out

    @property
    def first(self) -> Response:
        assert self.responses, f"no response at all; got {self.raw[:300]!r}"
        return self.responses[0]


def connect(
    port: int, *, tls: ssl.SSLContext | None = None, server_name: str | None = None
) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    if tls is not None:
        sock = tls.wrap_socket(sock, server_hostname=server_name)
    return sock


def read_until_closed(sock: socket.socket, wait: float = WAIT) -> tuple[bytes, bool]:
    """Read until the peer closes or ``wait`` passes; (bytes, closed)."""
    data = bytearray()
    deadline = time.monotonic() + wait
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return bytes(data), False
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return bytes(data), False
        except (ConnectionResetError, ssl.SSLError):
            return bytes(data), True
        if not chunk:
            return bytes(data), True
        data += chunk


def parse_responses(data: bytes) -> list[Response]:
    """Consecutive HTTP/1.x responses (Content-Length or chunked bodies)."""
    out: list[Response] = []
    rest = data
    while rest.startswith(b"HTTP/"):
        head, sep, rest = rest.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.decode("latin-1").partition(":")
            key = name.strip().lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = bytearray()
            while True:
                size_line, _, rest = rest.partition(b"\r\n")
                try:
                    size = int(size_line.split(b";")[0], 16)
                except ValueError:  # not all of it arrived
                    return out
                body += rest[:size]
                rest = rest[size + 2 :]
                if size == 0:
                    break
            out.append(Response(status, headers, bytes(body), lines[0]))
        else:
            length = int(headers.get("content-length", "0"))
            out.append(Response(status, headers, rest[:length], lines[0]))
            rest = rest[length:]
    return out


def exchange(
    port: int,
    data: bytes,
    *,
    wait: float = WAIT,
    tls: ssl.SSLContext | None = None,
    server_name: str | None = None,
) -> Exchange:
    """Send ``data`` at once, then read until the server closes or ``wait`` passes."""
    with connect(port, tls=tls, server_name=server_name) as sock:
        sock.sendall(data)
        raw, closed = read_until_closed(sock, wait)
    return Exchange(raw, parse_responses(raw), closed)


def get(host: str, path: str = "/", *, extra: str = "", close: bool = True) -> bytes:
    """A well-formed GET (``extra``: more header lines, each ending in CRLF)."""
    connection = "Connection: close\r\n" if close else ""
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}{connection}\r\n".encode("latin-1")


# -- servers --------------------------------------------------------------------------


def new_server(root: Path, *, extra_config: str = "", workers: int = 1, **kw: Any) -> EdgeServer:
    """An ``edge serve`` (not started) with every role's token and ``extra_config``."""
    srv = EdgeServer(
        root=root,
        tokens={name: new_token()[0] for name in ROLES},
        workers=workers,
        extra_config=extra_config,
        **kw,
    )
    return srv


def publish_site(
    srv: EdgeServer,
    files: dict[str, bytes],
    *,
    site: str = "acme",
    settings: dict[str, Any] | None = None,
    env: str = "production",
) -> None:
    """Push ``files`` (and ``settings``) with the real CLI; to production via publish."""
    work = srv.root / f"push-{site}-{len(list(srv.root.glob('push-*')))}"
    for path, body in files.items():
        target = work / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
    args = ["push", str(work), "--site", site]
    if settings is not None:
        settings_file = work.with_suffix(".json")
        settings_file.write_text(json.dumps(settings))
        args += ["--settings", str(settings_file)]
    done = srv.cli(*args)
    assert done.returncode == 0, done.stderr
    if env == "production":
        done = srv.cli("publish", "--site", site)
        assert done.returncode == 0, done.stderr


def environments(srv: EdgeServer, site: str = "acme") -> dict[str, Any]:
    """``GET /v1/sites/{site}/environments`` over a raw socket."""
    token = srv.tokens["admin"]
    request = (
        f"GET /v1/sites/{site}/environments HTTP/1.1\r\nHost: admin\r\n"
        f"Authorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    ).encode()
    answer = exchange(srv.admin_port, request).first
    assert answer.status == 200, answer.body
    doc: dict[str, Any] = json.loads(answer.body)
    return doc


def read_response(sock: socket.socket, wait: float = WAIT) -> Response | None:
    """Read until one whole response has arrived (or the peer closes, or ``wait`` passes)."""
    data = bytearray()
    deadline = time.monotonic() + wait
    while True:
        parsed = parse_responses(bytes(data)) if b"\r\n\r\n" in data else []
        if parsed and _complete(bytes(data), parsed[0]):
            return parsed[0]
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError, ssl.SSLError):
            return None
        if not chunk:
            return parsed[0] if parsed else None
        data += chunk


def _complete(data: bytes, response: Response) -> bool:
    if response.headers.get("transfer-encoding", "").lower() == "chunked":
        return data.endswith(b"0\r\n\r\n")
    return len(response.body) >= int(response.headers.get("content-length", "0"))


def first_response(port: int, data: bytes, *, wait: float = WAIT) -> Response:
    """Send ``data``; the first response, as soon as it is complete."""
    with connect(port) as sock:
        sock.sendall(data)
        response = read_response(sock, wait)
    assert response is not None, "no response in time"
    return response
