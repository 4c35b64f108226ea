"""TLS termination: one ``SSLContext`` per certificate, chosen per handshake by SNI.

How this works: the HTTPS listener is created with one "front" context whose SNI
callback looks the requested name up (with the same normalisation as routing) in
a dict of contexts and switches the connection to the one found, or to the
default certificate's. A reload builds and checks every new context first, then
replaces the dict in one assignment: handshakes after it use the new
certificates, connections already open keep the one they negotiated.

Start-up and reload refuse a missing or unreadable file, a key that does not
match its certificate, and a certificate that does not cover a host it is
assigned to, naming the file and the host. Private keys are never logged.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from edge.config import Settings, TlsFiles
from edge.errors import ConfigError
from edge.router import ENVS, normalize_host


def _path(base_dir: Path, name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else base_dir / path


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server context with modern defaults and one certificate chain."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.set_alpn_protocols(["http/1.1"])
    for path in (cert, key):
        if not path.is_file():
            raise ConfigError(f"{path}: no such file")
    try:
        ctx.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc):
            raise ConfigError(f"{key}: this key does not match the certificate {cert}") from None
        raise ConfigError(f"{cert} / {key}: cannot load the certificate or key") from None
    except OSError as exc:
        raise ConfigError(f"{cert} / {key}: cannot read: {exc.strerror}") from None
    return ctx


def certificate_names(cert: Path) -> list[str]:
    """The DNS names a certificate covers (its SANs, else its common name)."""
    try:
        leaf = x509.load_pem_x509_certificate(cert.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{cert}: not a PEM certificate ({exc})") from None
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = san.value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = [str(a.value) for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return [n.lower().rstrip(".") for n in names]


def covers(names: list[str], host: str) -> bool:
    """RFC 6125 matching: exact, or a ``*.`` wildcard standing for one left label."""
    for name in names:
        if name == host:
            return True
        if name.startswith("*.") and "." in host and host.split(".", 1)[1] == name[2:]:
            return True
    return False


@dataclass(frozen=True, slots=True)
class Certificates:
    """Checked contexts: the default and one per host that has its own."""

    default: ssl.SSLContext
    by_host: dict[str, ssl.SSLContext]


def load_certificates(settings: Settings) -> Certificates | None:
    """Every configured certificate, loaded and checked; ``None`` without HTTPS."""
    server = settings.config.server
    if settings.listen_tls is None or server.default_tls is None:
        return None
    loaded: dict[tuple[Path, Path], tuple[ssl.SSLContext, list[str]]] = {}

    def load(files: TlsFiles) -> tuple[ssl.SSLContext, list[str], Path]:
        cert, key = _path(settings.base_dir, files.cert), _path(settings.base_dir, files.key)
        if (cert, key) not in loaded:
            loaded[(cert, key)] = (server_context(cert, key), certificate_names(cert))
        ctx, names = loaded[(cert, key)]
        return ctx, names, cert

    default, _, _ = load(server.default_tls)
    by_host: dict[str, ssl.SSLContext] = {}
    for site in settings.config.sites:
        for env in ENVS:
            files = getattr(site, env).tls
            if files is None:
                continue
            ctx, names, cert = load(files)
            for host in settings.routes.hosts_of(site.id, env):
                if not covers(names, host):
                    raise ConfigError(
                        f"{cert}: does not cover host {host!r} of site {site.id!r} ({env})"
                    )
                by_host[host] = ctx
    return Certificates(default, by_host)


class SniSelector:
    """Owns the HTTPS listener's context and picks a certificate per handshake."""

    def __init__(self, certificates: Certificates) -> None:
        self._certificates = certificates
        # The listener keeps this context for its lifetime; every handshake is
        # switched in _pick to the context the current certificates name.
        self.context = certificates.default
        self.context.sni_callback = self._pick

    def replace(self, certificates: Certificates) -> None:
        """Use new certificates for every handshake from now on."""
        self._certificates = certificates

    def _pick(
        self, connection: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: ssl.SSLContext
    ) -> None:
        certificates = self._certificates
        host = normalize_host(server_name) if server_name else None
        ctx = certificates.by_host.get(host, certificates.default) if host else certificates.default
        if connection.context is not ctx:
            connection.context = ctx
