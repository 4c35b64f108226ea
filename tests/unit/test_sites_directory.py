"""The site directory behind GET /v1/sites: hosts and visitor URLs per environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.admin_api.schemas import EnvironmentSummary
from edge.admin_api.sites import preview_url, site_directory
from edge.config import parse_config
from edge.errors import NotFound
from edge.visitor.preview import LINK_PATH

BASE = """
[server]
listen = "0.0.0.0:{port}"
admin_listen = "127.0.0.1:8081"
{server_extra}

[[sites]]
id = "acme"
[sites.production]
hosts = ["WWW.Acme.Example.", "acme.example"]
{production_extra}
[sites.staging]
hosts = ["preview.acme.example"]

[[sites]]
id = "bare"
"""


def directory(
    port: int = 8080, server_extra: str = "", production_extra: str = ""
) -> dict[str, dict[str, EnvironmentSummary]]:
    text = BASE.format(port=port, server_extra=server_extra, production_extra=production_extra)
    settings = parse_config(text, Path("/etc/edge"))
    found = site_directory(settings)
    return {s.id: {"staging": s.staging, "production": s.production} for s in found.sites}


def test_configured_hosts_first_in_file_order_normalised() -> None:
    acme = directory()["acme"]
    assert acme["production"] == EnvironmentSummary(
        hosts=["www.acme.example", "acme.example"], url="http://www.acme.example:8080"
    )
    assert acme["staging"].hosts == ["preview.acme.example"]


def test_staging_domain_hosts_come_after_configured_ones() -> None:
    sites = directory(server_extra='staging_domain = "staging.example"')
    assert sites["acme"]["staging"].hosts == ["preview.acme.example", "acme.staging.example"]
    assert sites["bare"]["staging"] == EnvironmentSummary(
        hosts=["bare.staging.example"], url="http://bare.staging.example:8080"
    )


@pytest.mark.parametrize(
    ("port", "url"),
    [(80, "http://www.acme.example"), (8080, "http://www.acme.example:8080")],
)
def test_the_default_port_is_left_out(port: int, url: str) -> None:
    assert directory(port=port)["acme"]["production"].url == url


def test_an_environment_with_a_certificate_links_to_https() -> None:
    sites = directory(
        port=80,
        server_extra='listen_tls = "0.0.0.0:8443"\n'
        'default_tls = { cert = "default.pem", key = "default.key" }',
        production_extra='tls = { cert = "acme.pem", key = "acme.key" }',
    )
    assert sites["acme"]["production"].url == "https://www.acme.example:8443"
    assert sites["acme"]["staging"].url == "http://preview.acme.example"  # no certificate


def test_a_site_without_hosts_has_no_url() -> None:
    assert directory()["bare"]["production"] == EnvironmentSummary(hosts=[], url=None)


@pytest.mark.parametrize(
    ("port", "origin"),
    [(80, "http://preview.acme.example"), (8080, "http://preview.acme.example:8080")],
)
def test_preview_links_use_the_first_staging_host_and_its_origin(port: int, origin: str) -> None:
    settings = parse_config(
        BASE.format(port=port, server_extra="", production_extra=""), Path("/etc/edge")
    )
    assert preview_url(settings, "acme", "t0k") == f"{origin}{LINK_PATH}?token=t0k"


def test_a_site_without_a_staging_host_has_no_preview_link() -> None:
    settings = parse_config(BASE.format(port=80, server_extra="", production_extra=""), Path("/e"))
    with pytest.raises(NotFound):
        preview_url(settings, "bare", "t0k")
