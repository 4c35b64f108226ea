"""HTTPS termination with a certificate per host (SNI), against a real ``edge serve``."""

from __future__ import annotations

import asyncio
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from cryptography import x509

from edge.admin_api.auth import new_token
from tests.integration.conftest import (
    PRODUCTION_HOST,
    ROLES,
    STAGING_HOST,
    Api,
    EdgeServer,
    Visitor,
    free_port,
)
from tests.waiting import eventually

DEFAULT_NAME = "default.edge.test"


def write_pair(dir_: Path, name: str, cert: trustme.LeafCert) -> tuple[Path, Path]:
    cert_path, key_path = dir_ / f"{name}.crt", dir_ / f"{name}.key"
    cert.private_key_pem.write_to_path(str(key_path))
    cert_path.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    return cert_path, key_path


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server(tmp_path: Path, ca: trustme.CA) -> Iterator[EdgeServer]:
    """Overrides the plain server: here ``api`` and ``visitor`` talk to this one."""
    certs = tmp_path / "certs"
    certs.mkdir()
    write_pair(certs, "default", ca.issue_cert(DEFAULT_NAME))
    write_pair(certs, "acme", ca.issue_cert("acme.example", "www.acme.example"))
    write_pair(certs, "staging", ca.issue_cert("acme-preview.example", "*.staging.example"))
    write_pair(certs, "other", ca.issue_cert("other.example"))
    srv = EdgeServer(root=tmp_path, tokens={name: new_token()[0] for name in ROLES})
    srv.extra_config = (
        f'listen_tls = "127.0.0.1:{srv.tls_port}"\n'
        'default_tls = { cert = "certs/default.crt", key = "certs/default.key" }'
    )
    srv.env_extra = {
        "acme.production": 'tls = { cert = "certs/acme.crt", key = "certs/acme.key" }',
        "acme.staging": 'tls = { cert = "certs/staging.crt", key = "certs/staging.key" }',
        "other.production": 'tls = { cert = "certs/other.crt", key = "certs/other.key" }',
    }
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def client_context(ca: trustme.CA, verify: bool = True) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class TlsConnection:
    """One raw keep-alive HTTPS connection (so the test controls SNI and reuse)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, sni: str, ctx: ssl.SSLContext) -> TlsConnection:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, server_hostname=sni
        )
        return cls(reader, writer)

    def peer_names(self) -> list[str]:
        der = self.writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        cert = x509.load_der_x509_certificate(der)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        return list(san.value.get_values_for_type(x509.DNSName))

    def serial(self) -> int:
        der = self.writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        return int(x509.load_der_x509_certificate(der).serial_number)

    async def get(self, host: str, path: str = "/") -> tuple[int, dict[str, str], bytes]:
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        await self.writer.drain()
        status_line = await self.reader.readline()
        headers: dict[str, str] = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return int(status_line.split()[1]), headers, body

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ssl.SSLError, ConnectionError):
            pass


def page(text: str) -> bytes:
    return f"<html><head></head><body>{text}</body></html>".encode()


async def publish_both(api: Api) -> None:
    await api.push("acme", {"/index.html": page("acme")})
    await api.publish("acme")
    await api.push("other", {"/index.html": page("other")})
    await api.publish("other")


async def test_each_sni_name_gets_its_certificate_and_content(
    server: EdgeServer, api: Api, ca: trustme.CA
) -> None:
    await publish_both(api)
    port = server.tls_port
    for sni, body in (
        ("acme.example", b"acme"),
        ("other.example", b"other"),
        ("www.acme.example", b"acme"),
    ):
        conn = await TlsConnection.open(port, sni, client_context(ca))
        assert sni in conn.peer_names()
        status, headers, content = await conn.get(sni)
        assert status == 200 and body in content
        assert headers["x-edge-env"] == "production"
        await conn.close()

    # An unknown name gets the default certificate, then the same 421 as plain HTTP.
    conn = await TlsConnection.open(port, "unknown.example", client_context(ca, verify=False))
    assert conn.peer_names() == [DEFAULT_NAME]
    status, _, content = await conn.get("unknown.example")
    assert status == 421 and b"acme" not in content
    await conn.close()


async def test_https_redirect_and_hsts_on_production_only(
    server: EdgeServer, api: Api, visitor: Visitor, ca: trustme.CA
) -> None:
    await publish_both(api)
    port = server.tls_port
    status, redirected, _ = await visitor.get(PRODUCTION_HOST, "/docs/?a=1")
    assert status == 308
    assert redirected["Location"] == f"https://acme.example:{port}/docs/?a=1"
    # Like every answer it says where it is from (SPEC §3), and no HSTS over plain HTTP.
    assert redirected["X-Edge-Env"] == "production"
    assert "Strict-Transport-Security" not in redirected
    status, headers, _ = await visitor.get("ACME.example.:80", "/")
    assert headers["Location"] == f"https://acme.example:{port}/"
    # Staging stays reachable over plain HTTP.
    await api.push("acme", {"/index.html": page("staged")})
    status, _, body = await visitor.get(STAGING_HOST, "/")
    assert status == 200 and b"staged" in body

    conn = await TlsConnection.open(port, "acme.example", client_context(ca))
    status, headers, _ = await conn.get("acme.example")
    assert headers["strict-transport-security"] == "max-age=31536000"
    assert redirected["X-Edge-Snapshot"] == headers["x-edge-snapshot"]
    status, headers, _ = await conn.get("acme.example", "/missing")
    assert status == 404 and "strict-transport-security" in headers
    await conn.close()
    conn = await TlsConnection.open(port, STAGING_HOST, client_context(ca))
    status, headers, body = await conn.get(STAGING_HOST)
    assert status == 200 and "strict-transport-security" not in headers
    assert headers["x-robots-tag"] == "noindex, nofollow"
    await conn.close()


async def wait_for_serial(port: int, sni: str, ctx: ssl.SSLContext, serial: int) -> None:
    async def served() -> int:
        conn = await TlsConnection.open(port, sni, ctx)
        found = conn.serial()
        await conn.close()
        return found

    await eventually(served, lambda found: found == serial, what=f"certificate {serial}")


async def test_reload_switches_certificates_without_dropping_connections(
    server: EdgeServer, api: Api, ca: trustme.CA
) -> None:
    await publish_both(api)
    port = server.tls_port
    kept = await TlsConnection.open(port, "acme.example", client_context(ca))
    old_serial = kept.serial()
    assert (await kept.get("acme.example"))[0] == 200

    new_cert = ca.issue_cert("acme.example", "www.acme.example")
    write_pair(server.root / "certs", "acme", new_cert)
    result = server.cli("reload", "--config", str(server.config_path))
    assert result.returncode == 0, result.stderr
    new_serial = x509.load_pem_x509_certificate(new_cert.cert_chain_pems[0].bytes()).serial_number
    assert new_serial != old_serial
    await wait_for_serial(port, "acme.example", client_context(ca), new_serial)
    # The keep-alive connection opened before the reload still works.
    status, _, body = await kept.get("acme.example")
    assert status == 200 and b"acme" in body
    await kept.close()

    # A mismatched key is refused by `edge reload` and, signalled directly, by the
    # server, which keeps serving the certificate it has.
    other = ca.issue_cert("acme.example", "www.acme.example")
    (server.root / "certs" / "acme.key").write_bytes(other.private_key_pem.bytes())
    refused = server.cli("reload", "--config", str(server.config_path))
    assert refused.returncode == 2 and "acme.key" in refused.stderr
    assert server.process is not None
    server.process.send_signal(signal.SIGHUP)
    await eventually(lambda: "reload refused" in server.log(), what="the reload refused")
    conn = await TlsConnection.open(port, "acme.example", client_context(ca))
    assert conn.serial() == new_serial
    await conn.close()


def run_serve(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_bad_certificates_stop_start_up(tmp_path: Path, ca: trustme.CA) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    write_pair(certs, "default", ca.issue_cert(DEFAULT_NAME))
    write_pair(certs, "acme", ca.issue_cert("acme.example"))
    write_pair(certs, "wrong", ca.issue_cert("someone-else.example"))
    (certs / "mismatch.crt").write_bytes((certs / "acme.crt").read_bytes())
    (certs / "mismatch.key").write_bytes((certs / "wrong.key").read_bytes())
    base = f"""
[server]
listen = "127.0.0.1:{free_port()}"
admin_listen = "127.0.0.1:{free_port()}"
listen_tls = "127.0.0.1:{free_port()}"
data_dir = "data"
default_tls = {{ cert = "certs/default.crt", key = "certs/default.key" }}
[[sites]]
id = "acme"
[sites.production]
hosts = ["acme.example"]
"""
    cases = {
        'tls = { cert = "certs/mismatch.crt", key = "certs/mismatch.key" }': "mismatch.key",
        'tls = { cert = "certs/wrong.crt", key = "certs/wrong.key" }': "acme.example",
        'tls = { cert = "certs/missing.crt", key = "certs/acme.key" }': "missing.crt",
    }
    config = tmp_path / "edge.toml"
    for line, named in cases.items():
        config.write_text(base + line + "\n")
        result = run_serve(config)
        assert result.returncode == 2, result.stderr
        assert named in result.stderr
        assert "PRIVATE KEY" not in result.stderr
