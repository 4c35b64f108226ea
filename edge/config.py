"""The configuration file: TOML decoded into frozen msgspec Structs, then checked.

Anything wrong stops start-up with one line that names the key, e.g.
``config/edge.toml: sites[1].staging.hosts[0]: host 'a.example' is already claimed
by sites[0].production.hosts[0]``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import msgspec

from edge.errors import ConfigError, validation_detail
from edge.router import ENVS, Route, RouteTable, normalize_host

Role = Literal["editor", "publisher", "admin"]
ROLE_RANK: dict[str, int] = {"editor": 1, "publisher": 2, "admin": 3}

MiB = 1024 * 1024
SITE_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class _Frozen(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class TlsFiles(_Frozen, frozen=True):
    """A PEM certificate chain and its private key (paths relative to the config file)."""

    cert: Annotated[str, msgspec.Meta(min_length=1)]
    key: Annotated[str, msgspec.Meta(min_length=1)]


class ServerConfig(_Frozen, frozen=True):
    listen: str = "127.0.0.1:8080"
    listen_tls: str | None = None  # HTTPS for visitors, certificates chosen by SNI
    default_tls: TlsFiles | None = None  # for SNI names without a certificate of their own
    admin_listen: str = "127.0.0.1:8081"
    data_dir: str = "var"
    cache_max_bytes: Annotated[int, msgspec.Meta(gt=0)] = 256 * MiB
    staging_domain: str | None = None
    max_blob_bytes: Annotated[int, msgspec.Meta(gt=0)] = 5 * 1024 * MiB
    # Files above this are sent from their blob file in bounded chunks, never held
    # in the cache as bytes (edge.visitor.bodyfile).
    stream_threshold_bytes: Annotated[int, msgspec.Meta(ge=1024)] = MiB
    max_request_bytes: Annotated[int, msgspec.Meta(gt=0)] = 64 * MiB
    # Visitor access log, JSON lines: "off", "sampled" (access_log_sample of the
    # requests, and every 5xx) or "full"; true/false mean "full"/"off".
    access_log: Literal["off", "sampled", "full"] | bool = "off"
    # Outbound webhooks and upstreams may reach these networks (CIDRs) although they
    # are private, loopback or link-local; everything else of that kind is refused.
    allow_private_targets: tuple[str, ...] = ()
    upstream_connect_timeout: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    upstream_read_timeout: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    analytics_flush_seconds: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    access_log_sample: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.01
    access_log_file: str | None = None  # default: stderr
    event_log_file: str | None = None  # default: stderr
    metrics_public: bool = False  # true: GET /metrics on the admin listener needs no token
    # On SIGTERM/SIGINT: seconds requests in flight get to finish before they are cut.
    shutdown_grace: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    # Hostile clients (docs/security/wire.md): refuse aiohttp's pure-Python
    # parser, whom to believe about X-Forwarded-*, request size limits and timeouts.
    allow_python_http_parser: bool = False
    trusted_proxies: tuple[str, ...] = ()  # IPs or CIDRs whose X-Forwarded-* edge believes
    max_request_line: Annotated[int, msgspec.Meta(ge=256, le=MiB)] = 8190  # URL bytes, else 414
    max_header_size: Annotated[int, msgspec.Meta(ge=256, le=MiB)] = 8190  # one field, else 431
    max_headers: Annotated[int, msgspec.Meta(ge=8, le=10_000)] = 100  # fields, else 431
    header_timeout: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 10.0  # whole request head
    body_timeout: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 30.0  # silence inside a body
    keepalive_timeout: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 15.0  # idle between
    send_timeout: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 30.0  # a write not draining
    # Abuse and overload limits (docs/limits.md).
    # Form posts per client address, per form and worker process: a bucket of
    # form_burst posts refilled at form_rate_per_minute (settings may set their own).
    form_rate_per_minute: Annotated[float, msgspec.Meta(gt=0, le=6000)] = 10.0
    form_burst: Annotated[int, msgspec.Meta(ge=1, le=6000)] = 10
    # One environment's inbox: past either cap new posts are refused (507).
    inbox_max_submissions: Annotated[int, msgspec.Meta(ge=1)] = 10_000
    inbox_max_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 64 * MiB
    # Free disk kept for publishing: below it, visitor writes (forms, page views) stop.
    disk_reserve_bytes: Annotated[int, msgspec.Meta(ge=0)] = 256 * MiB
    # Paths a snapshot may hold, counted on the manifest it would have (parent included).
    max_snapshot_paths: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)] = 200_000


class TokenConfig(_Frozen, frozen=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    sha256: str
    role: Role
    sites: tuple[str, ...] = ()


WebhookEvent = Literal["form.submitted", "environment.updated", "publish.failed"]


class WebhookConfig(_Frozen, frozen=True):
    """An endpoint told about this environment's events, signed with HMAC-SHA256."""

    url: str
    events: tuple[WebhookEvent, ...]
    secret_env: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class UpstreamConfig(_Frozen, frozen=True):
    """Requests under ``prefix`` are reverse-proxied to ``origin``."""

    prefix: str
    origin: str


class EnvironmentConfig(_Frozen, frozen=True):
    hosts: tuple[str, ...] = ()
    webhooks: tuple[WebhookConfig, ...] = ()
    upstreams: tuple[UpstreamConfig, ...] = ()
    # Staging only: visitors must give this password (HTTP Basic, any user name),
    # read from the named environment variable; preview links also let them in.
    password_env: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None
    tls: TlsFiles | None = None
    # Strict-Transport-Security max-age on HTTPS responses; default: one year on
    # production, off on staging; 0 turns it off.
    hsts_max_age: Annotated[int, msgspec.Meta(ge=0)] | None = None


class SiteConfig(_Frozen, frozen=True):
    id: str
    production: EnvironmentConfig = EnvironmentConfig()
    staging: EnvironmentConfig = EnvironmentConfig()
    # A staging webhook or upstream on the same origin as a production one is a
    # configuration error unless this says it is intended.
    allow_shared_endpoints: bool = False


class StoreConfig(_Frozen, frozen=True):
    """Where durable state lives: the embedded SQLite file, or a shared PostgreSQL."""

    backend: Literal["sqlite", "postgres"] = "sqlite"
    dsn: str | None = None  # postgresql://user@host:port/db, never with a password
    password_env: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None
    connect_timeout: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    pool_size: Annotated[int, msgspec.Meta(ge=1, le=100)] = 4
    reconnect_max_seconds: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    heartbeat_seconds: Annotated[float, msgspec.Meta(gt=0)] = 1.0
    node_name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | None = None


class RetentionConfig(_Frozen, frozen=True):
    """What garbage collection keeps (edge.snapshots.retention); the rest may go."""

    # Snapshots of the last N production moves stay (rollback targets).
    keep_production_moves: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 50
    # Snapshots created and blobs uploaded this recently stay (a push in progress).
    grace_seconds: Annotated[float, msgspec.Meta(ge=0)] = 3600.0
    # Collect every site this often; 0: only when asked (POST .../gc, edge gc).
    interval_seconds: Annotated[float, msgspec.Meta(ge=0)] = 0.0


class Config(_Frozen, frozen=True):
    server: ServerConfig = ServerConfig()
    tokens: tuple[TokenConfig, ...] = ()
    sites: tuple[SiteConfig, ...] = ()
    store: StoreConfig = StoreConfig()
    retention: RetentionConfig = RetentionConfig()


@dataclass(frozen=True, slots=True)
class ListenAddress:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Settings:
    """The checked configuration plus what is derived from it once."""

    config: Config
    data_dir: Path
    listen: ListenAddress
    admin_listen: ListenAddress
    routes: RouteTable
    listen_tls: ListenAddress | None = None
    base_dir: Path = Path(".")
    source: Path | None = None  # the file it was read from, for reloads

    @property
    def pid_file(self) -> Path:
        """Where the serving process records its pid (for ``edge reload``)."""
        return self.data_dir / "edge.pid"

    @property
    def site_ids(self) -> frozenset[str]:
        return frozenset(s.id for s in self.config.sites)


def parse_listen(value: str) -> ListenAddress | None:
    """``host:port`` or ``[v6]:port`` -> address, ``None`` when malformed."""
    if value.startswith("["):
        host, sep, port = value[1:].partition("]:")
        if not sep:
            return None
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
    else:
        host, sep, port = value.rpartition(":")
        if not sep or not host or ":" in host:
            return None
    if not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        return None
    return ListenAddress(host, int(port))


_WILDCARDS = frozenset({"", "0.0.0.0", "::"})


def _bind_host(host: str) -> str:
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        return host.lower()


def _clash(a: ListenAddress, b: ListenAddress) -> bool:
    """Two listeners the OS would refuse to bind together (same port, same or any host)."""
    if a.port != b.port:
        return False
    ha, hb = _bind_host(a.host), _bind_host(b.host)
    return ha == hb or ha in _WILDCARDS or hb in _WILDCARDS


def _decode(data: object) -> Config:
    try:
        return msgspec.convert(data, Config)
    except msgspec.ValidationError as exc:
        where, message = validation_detail(exc)
        return _fail(where or "(top level)", message)


def _fail(key: str, message: str) -> Config:
    raise ConfigError(f"{key}: {message}")


def check(config: Config, base_dir: Path) -> Settings:
    """Semantic checks msgspec cannot express; returns the derived :class:`Settings`."""
    server = config.server
    listen = parse_listen(server.listen)
    if listen is None:
        raise ConfigError(f"server.listen: expected 'host:port', got {server.listen!r}")
    admin = parse_listen(server.admin_listen)
    if admin is None:
        raise ConfigError(f"server.admin_listen: expected 'host:port', got {server.admin_listen!r}")
    if _clash(listen, admin):
        raise ConfigError("server.admin_listen: must not share server.listen's address and port")
    listen_tls = None
    if server.listen_tls is not None:
        listen_tls = parse_listen(server.listen_tls)
        if listen_tls is None:
            raise ConfigError(f"server.listen_tls: expected 'host:port', got {server.listen_tls!r}")
        if _clash(listen_tls, listen) or _clash(listen_tls, admin):
            raise ConfigError("server.listen_tls: must not share another listener's port")
        if server.default_tls is None:
            raise ConfigError(
                "server.default_tls: required with server.listen_tls (the certificate for"
                " names that have none of their own)"
            )
    elif server.default_tls is not None:
        raise ConfigError("server.default_tls: only used with server.listen_tls")

    staging_domain = None
    if server.staging_domain is not None:
        staging_domain = normalize_host(server.staging_domain)
        if staging_domain is None or staging_domain.startswith("["):
            raise ConfigError(
                f"server.staging_domain: not a domain name: {server.staging_domain!r}"
            )

    claims: dict[str, tuple[str, Route]] = {}

    def claim(host: str, route: Route, key: str) -> None:
        norm = normalize_host(host)
        if norm is None:
            raise ConfigError(f"{key}: not a valid host: {host!r}")
        if norm in claims:
            other_key, _ = claims[norm]
            raise ConfigError(f"{key}: host {norm!r} is already claimed by {other_key}")
        claims[norm] = (key, route)

    seen_ids: dict[str, int] = {}
    for i, site in enumerate(config.sites):
        if not SITE_ID.match(site.id):
            raise ConfigError(
                f"sites[{i}].id: {site.id!r} must be lowercase letters, digits and hyphens"
                " (a DNS label)"
            )
        if site.id in seen_ids:
            other = seen_ids[site.id]
            raise ConfigError(f"sites[{i}].id: {site.id!r} is already used by sites[{other}]")
        seen_ids[site.id] = i
        for env in ENVS:
            env_config: EnvironmentConfig = getattr(site, env)
            for j, host in enumerate(env_config.hosts):
                claim(host, Route(site.id, env), f"sites[{i}].{env}.hosts[{j}]")
            if env_config.tls is not None and listen_tls is None:
                raise ConfigError(f"sites[{i}].{env}.tls: needs server.listen_tls")
            _check_endpoints(env_config, f"sites[{i}].{env}")
        if site.production.password_env is not None:
            raise ConfigError(
                f"sites[{i}].production.password_env: production is never password-protected"
            )
    production_endpoints: set[str | None] = set()
    for site in config.sites:
        production_endpoints |= {origin_of(h.url) for h in site.production.webhooks}
        production_endpoints |= {origin_of(u.origin) for u in site.production.upstreams}
    for i, site in enumerate(config.sites):
        if not site.allow_shared_endpoints:
            _check_isolation(site, f"sites[{i}]", production_endpoints)
    if staging_domain is not None:
        for i, site in enumerate(config.sites):
            claim(
                f"{site.id}.{staging_domain}",
                Route(site.id, "staging"),
                f"sites[{i}] (via server.staging_domain)",
            )

    _check_networks("server.allow_private_targets", server.allow_private_targets, "a network")

    for key in ("access_log_file", "event_log_file"):
        _check_log_file(key, getattr(server, key), base_dir)
    _check_networks("server.trusted_proxies", server.trusted_proxies, "an IP address or network")

    token_names: set[str] = set()
    for i, token in enumerate(config.tokens):
        if not SHA256_HEX.match(token.sha256):
            raise ConfigError(f"tokens[{i}].sha256: expected 64 lowercase hex digits")
        if token.name in token_names:
            raise ConfigError(f"tokens[{i}].name: {token.name!r} is used twice")
        token_names.add(token.name)
        for j, site_id in enumerate(token.sites):
            if site_id != "*" and site_id not in seen_ids:
                raise ConfigError(f"tokens[{i}].sites[{j}]: no site with id {site_id!r}")

    _check_store(config.store)
    data_dir = Path(server.data_dir)
    if not data_dir.is_absolute():
        data_dir = base_dir / data_dir
    return Settings(
        config=config,
        data_dir=data_dir,
        listen=listen,
        admin_listen=admin,
        routes=RouteTable.build((h, r) for h, (_, r) in claims.items()),
        listen_tls=listen_tls,
        base_dir=base_dir,
    )


def _check_store(store: StoreConfig) -> None:
    if store.backend == "sqlite":
        for key in ("dsn", "password_env", "node_name"):
            if getattr(store, key) is not None:
                raise ConfigError(f'store.{key}: only used with store.backend = "postgres"')
        return
    if store.dsn is None:
        raise ConfigError('store.dsn: required with store.backend = "postgres"')
    try:
        parts = urlsplit(store.dsn)
        password = parts.password
    except ValueError as exc:
        raise ConfigError(f"store.dsn: not a valid URI: {exc}") from None
    if parts.scheme not in ("postgres", "postgresql"):
        raise ConfigError("store.dsn: expected a postgresql://user@host:port/database URI")
    if password:
        raise ConfigError(
            "store.dsn: must not contain a password (name the environment variable that"
            " holds it in store.password_env)"
        )


def origin_of(url: str) -> str | None:
    """``scheme://host:port`` of an http(s) URL in one canonical spelling, else None.

    Hosts are normalised like visitor hosts (case, trailing dot, IDNA) and IP
    literals written any way the OS accepts (``10.0.0.05``, ``167772165``,
    ``::ffff:10.0.0.5``) become one form, so two spellings of one endpoint compare equal.
    """
    from edge.netguard import parse_ip  # the one parser of IP spellings

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    port = port or (443 if parts.scheme == "https" else 80)
    ip = parse_ip(parts.hostname)
    if ip is not None:
        mapped = getattr(ip, "ipv4_mapped", None)
        host = str(mapped or ip)
    else:
        host = normalize_host(parts.hostname) or parts.hostname.lower()
    return f"{parts.scheme}://{host}:{port}"


def _check_networks(key: str, values: Sequence[str], what: str) -> None:
    """Each of ``values`` parses as an IP network (a bare address is a /32 or /128)."""
    for j, value in enumerate(values):
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ConfigError(f"{key}[{j}]: not {what}: {value!r}") from None


def _check_log_file(key: str, value: str | None, base_dir: Path) -> None:
    if value is None:
        return
    if not value.strip():
        raise ConfigError(f"server.{key}: empty path (leave it out to log to stderr)")
    path = base_dir / value
    if path.is_dir():
        raise ConfigError(f"server.{key}: {str(path)!r} is a directory")
    if not path.parent.is_dir():
        raise ConfigError(f"server.{key}: no directory {str(path.parent)!r}")


def _check_endpoints(env: EnvironmentConfig, key: str) -> None:
    for j, hook in enumerate(env.webhooks):
        if origin_of(hook.url) is None:
            raise ConfigError(f"{key}.webhooks[{j}].url: not an http(s) URL: {hook.url!r}")
        if not hook.events:
            raise ConfigError(f"{key}.webhooks[{j}].events: name at least one event")
    prefixes: set[str] = set()
    for j, up in enumerate(env.upstreams):
        if origin_of(up.origin) is None or urlsplit(up.origin).path not in ("", "/"):
            raise ConfigError(
                f"{key}.upstreams[{j}].origin: expected scheme://host[:port], got {up.origin!r}"
            )
        if not (up.prefix.startswith("/") and up.prefix.endswith("/")) or "//" in up.prefix:
            raise ConfigError(
                f"{key}.upstreams[{j}].prefix: a path prefix like '/api/', got {up.prefix!r}"
            )
        if up.prefix.startswith("/_edge/"):
            raise ConfigError(f"{key}.upstreams[{j}].prefix: /_edge/ is edge's own")
        if up.prefix in prefixes:
            raise ConfigError(f"{key}.upstreams[{j}].prefix: {up.prefix!r} is used twice")
        prefixes.add(up.prefix)


def _check_isolation(site: SiteConfig, key: str, production: set[str | None]) -> None:
    """A staging integration must not reach a production endpoint (of any site)."""
    for j, hook in enumerate(site.staging.webhooks):
        if origin_of(hook.url) in production:
            raise ConfigError(
                f"{key}.staging.webhooks[{j}].url: {origin_of(hook.url)} is also a production"
                " endpoint (staging events must not reach production; set"
                " allow_shared_endpoints = true if this is intended)"
            )
    for j, up in enumerate(site.staging.upstreams):
        if origin_of(up.origin) in production:
            raise ConfigError(
                f"{key}.staging.upstreams[{j}].origin: {origin_of(up.origin)} is also a"
                " production endpoint (set allow_shared_endpoints = true if this is intended)"
            )


def parse_config(text: str, base_dir: Path) -> Settings:
    """Decode and check configuration text; relative paths resolve from ``base_dir``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}") from None
    return check(_decode(data), base_dir)


def load_config(path: str | Path) -> Settings:
    """Read a configuration file; every problem is a :class:`ConfigError` naming the key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        settings = parse_config(text, path.resolve().parent)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.message}") from None
    return dataclasses.replace(settings, source=path.resolve())
