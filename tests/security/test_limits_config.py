"""The ``[server]`` keys of the wire defences: defaults, and bad values named at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import parse_config
from edge.errors import ConfigError
from edge.wire.protocol import WireLimits, aiohttp_kwargs

BASE = """
[server]
listen = "127.0.0.1:8080"
admin_listen = "127.0.0.1:8081"
"""


def test_defaults(tmp_path: Path) -> None:
    server = parse_config(BASE, tmp_path).config.server
    assert server.allow_python_http_parser is False
    assert server.trusted_proxies == ()
    limits = WireLimits.from_config(server)
    assert limits == WireLimits(
        header_timeout=10.0,
        body_timeout=30.0,
        keepalive_timeout=15.0,
        send_timeout=30.0,
        max_request_line=8190,
        max_header_size=8190,
        max_headers=100,
    )
    assert aiohttp_kwargs(limits)["auto_decompress"] is False


def test_values_are_read(tmp_path: Path) -> None:
    text = BASE + (
        'trusted_proxies = ["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"]\n'
        "header_timeout = 1.5\nbody_timeout = 2\nkeepalive_timeout = 3\nsend_timeout = 4\n"
        "max_request_line = 2048\nmax_header_size = 4096\nmax_headers = 50\n"
    )
    server = parse_config(text, tmp_path).config.server
    assert server.trusted_proxies == ("10.0.0.0/8", "192.0.2.7", "2001:db8::/32")
    assert WireLimits.from_config(server) == WireLimits(1.5, 2.0, 3.0, 4.0, 2048, 4096, 50)


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ('trusted_proxies = ["10.0.0.0/8", "not-an-ip"]', "server.trusted_proxies[1]"),
        ('trusted_proxies = ["10.0.0.0/33"]', "server.trusted_proxies[0]"),
        ('trusted_proxies = "10.0.0.1"', "server.trusted_proxies"),
        ("header_timeout = 0", "server.header_timeout"),
        ("body_timeout = -1", "server.body_timeout"),
        ("keepalive_timeout = 0", "server.keepalive_timeout"),
        ("send_timeout = 0.0", "server.send_timeout"),
        ("send_timeout = 86400", "server.send_timeout"),
        ('header_timeout = "10"', "server.header_timeout"),
        ("max_request_line = 10", "server.max_request_line"),
        ("max_header_size = 0", "server.max_header_size"),
        ("max_headers = 0", "server.max_headers"),
        ("max_headers = 1000000", "server.max_headers"),
        ('allow_python_http_parser = "yes"', "server.allow_python_http_parser"),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_key(tmp_path: Path, line: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(BASE + line + "\n", tmp_path)
    assert info.value.message.startswith(key), info.value.message


def test_a_reload_that_changes_limits_is_refused(tmp_path: Path) -> None:
    """Listeners keep the limits they started with: a reload must not pretend otherwise."""
    from edge.server import Reloader

    old = parse_config(BASE, tmp_path)
    reloader = Reloader(old, [], None)
    reloader._check_reloadable(
        parse_config(BASE + 'trusted_proxies = ["10.0.0.1"]\n', tmp_path), None
    )
    with pytest.raises(ConfigError, match="restart edge"):
        reloader._check_reloadable(parse_config(BASE + "header_timeout = 5\n", tmp_path), None)
