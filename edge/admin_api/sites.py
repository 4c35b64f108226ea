"""The site directory behind ``GET /v1/sites``: sites, hosts and visitor URLs. Pure."""

from __future__ import annotations

from edge.admin_api.schemas import (
    EnvironmentSummary,
    SiteDirectory,
    SiteSummary,
    VisitorListeners,
)
from edge.config import EnvironmentConfig, Settings
from edge.errors import NotFound
from edge.router import Env, normalize_host
from edge.visitor.preview import LINK_PATH


def _environment(
    settings: Settings, site: str, env: Env, config: EnvironmentConfig
) -> EnvironmentSummary:
    # Configured hosts first, in the file's order (the first is the one people know),
    # then the ones edge adds itself (<site>.<staging_domain>).
    hosts: list[str] = []
    for raw in config.hosts:
        host = normalize_host(raw) or raw
        if host not in hosts:
            hosts.append(host)
    hosts += [h for h in settings.routes.hosts_of(site, env) if h not in hosts]
    if not hosts:
        return EnvironmentSummary(hosts=[], url=None)
    return EnvironmentSummary(hosts=hosts, url=origin(settings, config, hosts[0]))


def origin(settings: Settings, config: EnvironmentConfig, host: str) -> str:
    """``scheme://host[:port]`` for visitors of an environment: HTTPS when it has a certificate."""
    if config.tls is not None and settings.listen_tls is not None:
        scheme, port, default = "https", settings.listen_tls.port, 443
    else:
        scheme, port, default = "http", settings.listen.port, 80
    return f"{scheme}://{host}" if port == default else f"{scheme}://{host}:{port}"


def preview_url(settings: Settings, site: str, token: str) -> str:
    """A preview link on the site's first staging host."""
    hosts = settings.routes.hosts_of(site, "staging")
    if not hosts:
        raise NotFound(f"site {site!r} has no staging host")
    staging = next(s for s in settings.config.sites if s.id == site).staging
    return f"{origin(settings, staging, hosts[0])}{LINK_PATH}?token={token}"


def site_directory(settings: Settings) -> SiteDirectory:
    """Every site of ``settings`` with its hosts per environment, in configuration order."""
    return SiteDirectory(
        visitor=VisitorListeners(
            http=str(settings.listen),
            https=None if settings.listen_tls is None else str(settings.listen_tls),
        ),
        sites=[
            SiteSummary(
                id=site.id,
                staging=_environment(settings, site.id, "staging", site.staging),
                production=_environment(settings, site.id, "production", site.production),
            )
            for site in settings.config.sites
        ],
    )
