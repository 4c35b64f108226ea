"""X-Forwarded-* and Forwarded change nothing unless the peer is a trusted proxy.

Two servers with the same sites: one trusts nobody (the default), one has
``trusted_proxies = ["127.0.0.1"]`` (the test is that proxy). acme's production
has a certificate of its own, so plain HTTP is redirected to HTTPS and HTTPS
answers carry HSTS; acme's staging proxies ``/api/`` to an echo upstream that
reports the headers it received.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.integration.conftest import PRODUCTION_HOST, STAGING_HOST, EdgeServer
from tests.security.wire_support import exchange, get, new_server, publish_site

STAGING_PAGE = b"<html><head></head><body>staging</body></html>"  # served with noindex
OTHER_PAGE = b"<html><head></head><body>other</body></html>"
CLAIMS = (
    "X-Forwarded-For: 203.0.113.7\r\n"
    "Forwarded: for=203.0.113.7;proto=https;host=evil.example\r\n"
    "X-Forwarded-Proto: https\r\n"
    "X-Forwarded-Host: other.example\r\n"
)


class _Echo(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps([[k, v] for k, v in self.headers.items()]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _write_pair(dir_: Path, name: str, cert: trustme.LeafCert) -> None:
    cert.private_key_pem.write_to_path(str(dir_ / f"{name}.key"))
    (dir_ / f"{name}.crt").write_bytes(b"".join(b.bytes() for b in cert.cert_chain_pems))


def _server(root: Path, upstream: str, trusted: list[str]) -> EdgeServer:
    ca = trustme.CA()
    certs = root / "certs"
    certs.mkdir()
    _write_pair(certs, "default", ca.issue_cert("default.edge.test"))
    _write_pair(certs, "acme", ca.issue_cert(PRODUCTION_HOST, "www.acme.example"))
    srv = new_server(root)
    srv.extra_config = (
        f'listen_tls = "127.0.0.1:{srv.tls_port}"\n'
        'default_tls = { cert = "certs/default.crt", key = "certs/default.key" }\n'
        'allow_private_targets = ["127.0.0.0/8"]\n'
        f"trusted_proxies = {json.dumps(trusted)}\n"
    )
    srv.env_extra = {
        "acme.production": 'tls = { cert = "certs/acme.crt", key = "certs/acme.key" }',
        "acme.staging": f'upstreams = [{{ prefix = "/api/", origin = "{upstream}" }}]',
    }
    srv.start()
    publish_site(srv, {"/index.html": b"<html><head></head><body>acme</body></html>"})
    publish_site(srv, {"/index.html": STAGING_PAGE}, env="staging")
    publish_site(srv, {"/index.html": OTHER_PAGE}, site="other")
    return srv


@pytest.fixture(scope="module")
def untrusting(tmp_path_factory: pytest.TempPathFactory, upstream: str) -> Iterator[EdgeServer]:
    srv = _server(tmp_path_factory.mktemp("untrusting"), upstream, [])
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def trusting(tmp_path_factory: pytest.TempPathFactory, upstream: str) -> Iterator[EdgeServer]:
    srv = _server(tmp_path_factory.mktemp("trusting"), upstream, ["10.0.0.0/8", "127.0.0.1"])
    try:
        yield srv
    finally:
        srv.stop()


def _upstream_saw(srv: EdgeServer, host: str, extra: str) -> dict[str, list[str]]:
    answer = exchange(srv.port, get(host, "/api/echo", extra=extra)).first
    assert answer.status == 200, answer.body
    seen: dict[str, list[str]] = {}
    for name, value in json.loads(answer.body):
        seen.setdefault(name.lower(), []).append(value)
    return seen


# -- from an untrusted peer ------------------------------------------------------------


def test_untrusted_claims_do_not_change_the_https_redirect_or_hsts(
    untrusting: EdgeServer,
) -> None:
    plain = exchange(untrusting.port, get(PRODUCTION_HOST)).first
    assert plain.status == 308
    claimed = exchange(untrusting.port, get(PRODUCTION_HOST, extra=CLAIMS)).first
    assert claimed.status == 308
    assert claimed.headers["location"] == plain.headers["location"]
    assert claimed.headers["location"].startswith(f"https://{PRODUCTION_HOST}:")
    assert "strict-transport-security" not in claimed.headers


def test_untrusted_claims_do_not_change_routing(untrusting: EdgeServer) -> None:
    answer = exchange(untrusting.port, get(STAGING_HOST, extra=CLAIMS)).first
    assert b">staging<" in answer.body  # (with staging's noindex meta)
    spoofed = exchange(
        untrusting.port, get("unknown.example", extra=f"X-Forwarded-Host: {STAGING_HOST}\r\n")
    )
    assert spoofed.first.status == 421


def test_untrusted_claims_are_not_forwarded_upstream(untrusting: EdgeServer) -> None:
    seen = _upstream_saw(untrusting, STAGING_HOST, CLAIMS)
    assert seen["x-forwarded-for"] == ["127.0.0.1"]
    assert seen["x-forwarded-proto"] == ["http"]
    assert seen["x-forwarded-host"] == [STAGING_HOST]
    assert "forwarded" not in seen


# -- from a trusted proxy --------------------------------------------------------------


def test_a_trusted_proxy_saying_https_stops_the_redirect_and_gets_hsts(
    trusting: EdgeServer,
) -> None:
    plain = exchange(trusting.port, get(PRODUCTION_HOST)).first
    assert plain.status == 308  # no claim: plain HTTP, as before
    https = exchange(
        trusting.port, get(PRODUCTION_HOST, extra="X-Forwarded-Proto: https\r\n")
    ).first
    assert https.status == 200
    assert https.headers["strict-transport-security"].startswith("max-age=")
    http = exchange(trusting.port, get(PRODUCTION_HOST, extra="X-Forwarded-Proto: http\r\n"))
    assert http.first.status == 308


def test_a_trusted_proxy_names_the_host(trusting: EdgeServer) -> None:
    routed = exchange(
        trusting.port, get("unknown.example", extra="X-Forwarded-Host: other.example\r\n")
    ).first
    assert routed.status == 200 and routed.body == OTHER_PAGE
    # the first value is the client-side one
    chained = exchange(
        trusting.port,
        get("unknown.example", extra=f"X-Forwarded-Host: {STAGING_HOST}, lb.internal\r\n"),
    ).first
    assert b">staging<" in chained.body
    malformed = exchange(
        trusting.port, get(PRODUCTION_HOST, extra="X-Forwarded-Host: evil.example/x\r\n")
    )
    assert malformed.first.status == 400
    # an absolute-form target's authority still wins (RFC 9112 §3.2.2)
    absolute = exchange(
        trusting.port,
        get(
            "unknown.example",
            "http://other.example/",
            extra=f"X-Forwarded-Host: {STAGING_HOST}\r\n",
        ),
    ).first
    assert absolute.body == OTHER_PAGE


def test_a_trusted_proxys_claims_are_forwarded_upstream(trusting: EdgeServer) -> None:
    seen = _upstream_saw(trusting, "lb.internal", CLAIMS.replace("other.example", STAGING_HOST))
    assert seen["x-forwarded-for"] == ["203.0.113.7, 127.0.0.1"]
    assert seen["x-forwarded-proto"] == ["https"]
    assert seen["x-forwarded-host"] == [STAGING_HOST]
    assert seen["forwarded"] == ["for=203.0.113.7;proto=https;host=evil.example"]
