"""Per-host HTTP policy compiled from the configuration: routes, HTTPS, HSTS, passwords."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from edge.config import Settings
from edge.errors import ConfigError
from edge.router import ENVS, Route, RouteTable
from edge.wire.proxies import TrustedProxies

DEFAULT_PRODUCTION_HSTS = 31_536_000  # one year


@dataclass(frozen=True, slots=True)
class HostPolicy:
    """Everything the visitor handler decides from the Host alone, swapped whole on reload."""

    routes: RouteTable
    https_port: int | None = None
    # Route keys whose plain-HTTP requests are redirected to HTTPS (production
    # environments with a certificate of their own).
    https_only: frozenset[str] = frozenset()
    # Route key -> Strict-Transport-Security value, sent on HTTPS responses only.
    hsts: dict[str, str] = field(default_factory=dict)
    # Route key -> the staging preview password (HTTP Basic).
    passwords: dict[str, str] = field(default_factory=dict)
    # Peers whose X-Forwarded-* edge believes (None: nobody's, the common case).
    proxies: TrustedProxies | None = None


def preview_passwords(settings: Settings, environ: Mapping[str, str]) -> dict[str, str]:
    """Staging passwords by route key, read from the named environment variables."""
    passwords: dict[str, str] = {}
    for i, site in enumerate(settings.config.sites):
        name = site.staging.password_env
        if name is None:
            continue
        value = environ.get(name)
        if not value:
            raise ConfigError(
                f"sites[{i}].staging.password_env: environment variable {name} is not set"
            )
        passwords[Route(site.id, "staging").key] = value
    return passwords


def host_policy(settings: Settings, environ: Mapping[str, str] = os.environ) -> HostPolicy:
    passwords = preview_passwords(settings, environ)
    proxies = TrustedProxies.parse(settings.config.server.trusted_proxies)
    if settings.listen_tls is None:
        return HostPolicy(settings.routes, passwords=passwords, proxies=proxies)
    https_only: set[str] = set()
    hsts: dict[str, str] = {}
    for site in settings.config.sites:
        for env in ENVS:
            env_config = getattr(site, env)
            key = Route(site.id, env).key
            max_age = env_config.hsts_max_age
            if max_age is None:
                max_age = DEFAULT_PRODUCTION_HSTS if env == "production" else 0
            if max_age:
                hsts[key] = f"max-age={max_age}"
            if env == "production" and env_config.tls is not None:
                https_only.add(key)
    return HostPolicy(
        settings.routes, settings.listen_tls.port, frozenset(https_only), hsts, passwords, proxies
    )


def https_location(host: str, port: int, raw_target: str) -> str:
    """The HTTPS URL for a request: ``host`` is the configured (normalised) host."""
    authority = host if port == 443 else f"{host}:{port}"
    return f"https://{authority}{raw_target}"
