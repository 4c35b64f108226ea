"""The [server] keys of logs and metrics: defaults, old spellings, bad values name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import parse_config
from edge.errors import ConfigError
from edge.observability.logs import access_mode
from edge.observability.observer import resolve_path

BASE = """
[server]
listen = "127.0.0.1:8080"
admin_listen = "127.0.0.1:8081"
{extra}

[[sites]]
id = "acme"
[sites.production]
hosts = ["acme.example"]
"""


def parse(extra: str, base_dir: Path):  # type: ignore[no-untyped-def]
    return parse_config(BASE.format(extra=extra), base_dir)


def test_defaults_log_no_access_lines_and_protect_metrics(tmp_path: Path) -> None:
    server = parse("", tmp_path).config.server
    assert access_mode(server.access_log) == "off"
    assert server.access_log_sample == 0.01
    assert server.access_log_file is None and server.event_log_file is None
    assert server.metrics_public is False


@pytest.mark.parametrize(
    ("line", "mode"),
    [
        ('access_log = "full"', "full"),
        ('access_log = "sampled"', "sampled"),
        ('access_log = "off"', "off"),
        ("access_log = true", "full"),  # the older boolean switch still reads
        ("access_log = false", "off"),
    ],
)
def test_access_log_modes(tmp_path: Path, line: str, mode: str) -> None:
    assert access_mode(parse(line, tmp_path).config.server.access_log) == mode


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ('access_log = "verbose"', "server.access_log"),
        ("access_log = 1", "server.access_log"),
        ("access_log_sample = 0", "server.access_log_sample"),
        ("access_log_sample = 1.5", "server.access_log_sample"),
        ("access_log_sample = -0.1", "server.access_log_sample"),
        ('access_log_sample = "1%"', "server.access_log_sample"),
        ('access_log_file = ""', "server.access_log_file"),
        ('access_log_file = "no/such/dir/access.log"', "server.access_log_file"),
        ('event_log_file = "no/such/dir/events.log"', "server.event_log_file"),
        ('event_log_file = "."', "server.event_log_file"),
        ("event_log_file = 3", "server.event_log_file"),
        ('metrics_public = "yes"', "server.metrics_public"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, line: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(line, tmp_path)
    assert caught.value.message.startswith(key), caught.value.message


def test_log_files_are_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    settings = parse(
        'access_log = "sampled"\naccess_log_sample = 1\n'
        'access_log_file = "logs/access.log"\nevent_log_file = "/tmp/events.log"',
        tmp_path,
    )
    server = settings.config.server
    assert server.access_log_sample == 1.0
    assert resolve_path(settings, server.access_log_file) == tmp_path / "logs" / "access.log"
    assert resolve_path(settings, server.event_log_file) == Path("/tmp/events.log")
    assert resolve_path(settings, None) is None
