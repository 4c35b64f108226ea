"""Certificate name matching and the per-host HTTPS policy (pure parts of TLS)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import parse_config
from edge.errors import ConfigError
from edge.router import Route
from edge.tls import covers
from edge.visitor.hosts import host_policy, https_location


@pytest.mark.parametrize(
    ("names", "host", "ok"),
    [
        (["acme.example"], "acme.example", True),
        (["*.acme.example"], "www.acme.example", True),
        (["*.acme.example"], "acme.example", False),
        (["*.acme.example"], "a.b.acme.example", False),
        (["acme.example"], "www.acme.example", False),
        ([], "acme.example", False),
    ],
)
def test_covers(names: list[str], host: str, ok: bool) -> None:
    assert covers(names, host) is ok


BASE = """
[server]
listen = "127.0.0.1:8080"
admin_listen = "127.0.0.1:8081"
{server}
[[sites]]
id = "acme"
[sites.production]
hosts = ["acme.example"]
{production}
[sites.staging]
hosts = ["preview.acme.example"]
{staging}
"""


def config(server: str = "", production: str = "", staging: str = "") -> str:
    return BASE.format(server=server, production=production, staging=staging)


TLS_SERVER = 'listen_tls = "127.0.0.1:8443"\ndefault_tls = { cert = "d.crt", key = "d.key" }'
SITE_TLS = 'tls = { cert = "a.crt", key = "a.key" }'


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (config(server='listen_tls = "127.0.0.1:8443"'), "server.default_tls"),
        (config(server='default_tls = { cert = "d.crt", key = "d.key" }'), "server.default_tls"),
        (
            config(server='listen_tls = "127.0.0.1:8080"\ndefault_tls = { cert = "d", key = "k" }'),
            "server.listen_tls",
        ),
        (config(production=SITE_TLS), "sites[0].production.tls"),
        (
            config(server=TLS_SERVER, production="hsts_max_age = -1"),
            "sites[0].production.hsts_max_age",
        ),
    ],
)
def test_tls_config_errors_name_the_key(text: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(text, Path("/etc/edge"))
    assert key in err.value.message


def test_policy_redirects_production_with_a_certificate_and_sets_hsts() -> None:
    settings = parse_config(
        config(server=TLS_SERVER, production=SITE_TLS, staging=SITE_TLS), Path("/etc/edge")
    )
    policy = host_policy(settings)
    production, staging = Route("acme", "production").key, Route("acme", "staging").key
    assert policy.https_port == 8443
    assert policy.https_only == {production}
    assert policy.hsts == {production: "max-age=31536000"}

    settings = parse_config(
        config(server=TLS_SERVER, production="hsts_max_age = 0", staging="hsts_max_age = 600"),
        Path("/etc/edge"),
    )
    policy = host_policy(settings)
    assert policy.https_only == frozenset()
    assert policy.hsts == {staging: "max-age=600"}


def test_plain_config_has_no_https_policy() -> None:
    policy = host_policy(parse_config(config(), Path("/etc/edge")))
    assert policy.https_port is None and not policy.https_only and not policy.hsts


def test_https_location() -> None:
    assert https_location("acme.example", 443, "/a?b=1") == "https://acme.example/a?b=1"
    assert https_location("acme.example", 8443, "/") == "https://acme.example:8443/"
