"""Per-host HTTP policy compiled from the configuration: routes, HTTPS, HSTS. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field

from edge.config import Settings
from edge.router import ENVS, Route, RouteTable

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


def host_policy(settings: Settings) -> HostPolicy:
    if settings.listen_tls is None:
        return HostPolicy(settings.routes)
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
    return HostPolicy(settings.routes, settings.listen_tls.port, frozenset(https_only), hsts)


def https_location(host: str, port: int, raw_target: str) -> str:
    """The HTTPS URL for a request: ``host`` is the configured (normalised) host."""
    authority = host if port == 443 else f"{host}:{port}"
    return f"https://{authority}{raw_target}"
