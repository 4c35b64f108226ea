"""Configuration parsing and checking: every problem names its key."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pytest

from edge.config import ListenAddress, parse_config, parse_listen
from edge.errors import ConfigError
from edge.router import Route

HEX_A = "a" * 64
HEX_B = "b" * 64

VALID = f"""
[server]
listen = "127.0.0.1:8080"
admin_listen = "127.0.0.1:8081"
data_dir = "var"
cache_max_bytes = 1048576
staging_domain = "staging.example"

[[tokens]]
name = "release-bot"
sha256 = "{HEX_A}"
role = "publisher"
sites = ["acme"]

[[tokens]]
name = "root"
sha256 = "{HEX_B}"
role = "admin"
sites = ["*"]

[[sites]]
id = "acme"
[sites.production]
hosts = ["acme.example", "WWW.Acme.Example."]
[sites.staging]
hosts = ["acme-preview.example"]

[[sites]]
id = "other-site"
[sites.production]
hosts = ["bücher.example"]
"""


def test_a_valid_config_parses(tmp_path: Path) -> None:
    settings = parse_config(VALID, tmp_path)
    assert settings.listen == ListenAddress("127.0.0.1", 8080)
    assert settings.admin_listen == ListenAddress("127.0.0.1", 8081)
    assert settings.config.server.cache_max_bytes == 1048576
    assert settings.site_ids == {"acme", "other-site"}
    assert [t.name for t in settings.config.tokens] == ["release-bot", "root"]
    assert settings.config.tokens[0].role == "publisher"
    assert settings.config.tokens[0].sites == ("acme",)
    routes = settings.routes
    assert routes.resolve("acme.example") == Route("acme", "production")
    assert routes.resolve("www.acme.example") == Route("acme", "production")
    assert routes.resolve("acme-preview.example") == Route("acme", "staging")
    # generated from staging_domain, for every site
    assert routes.resolve("acme.staging.example") == Route("acme", "staging")
    assert routes.resolve("other-site.staging.example") == Route("other-site", "staging")
    assert routes.resolve("xn--bcher-kva.example") == Route("other-site", "production")
    assert routes.resolve("unknown.example") is None
    assert len(routes) == 6


def test_an_empty_config_uses_defaults(tmp_path: Path) -> None:
    settings = parse_config("", tmp_path)
    assert settings.listen == ListenAddress("127.0.0.1", 8080)
    assert settings.admin_listen == ListenAddress("127.0.0.1", 8081)
    assert settings.data_dir == tmp_path / "var"
    assert len(settings.routes) == 0


@pytest.mark.parametrize(
    ("data_dir", "expected"),
    [
        ("var", "/srv/edge/var"),
        ("../state", "/srv/edge/../state"),
        ("./a/b", "/srv/edge/a/b"),
        ("/var/lib/edge", "/var/lib/edge"),
    ],
)
def test_data_dir_resolves_against_base_dir(data_dir: str, expected: str) -> None:
    settings = parse_config(f'[server]\ndata_dir = "{data_dir}"\n', Path("/srv/edge"))
    assert settings.data_dir == Path(expected)
    assert settings.data_dir.is_absolute()


def _site(site_id: str, production: Sequence[str] = (), staging: Sequence[str] = ()) -> str:
    def hosts(items: Sequence[str]) -> str:
        return "[" + ", ".join(f'"{h}"' for h in items) + "]"

    return (
        f'[[sites]]\nid = "{site_id}"\n'
        f"[sites.production]\nhosts = {hosts(production)}\n"
        f"[sites.staging]\nhosts = {hosts(staging)}\n"
    )


def _token(name: str, sha256: str = HEX_A, role: str = "editor", sites: str = '["*"]') -> str:
    return f'[[tokens]]\nname = "{name}"\nsha256 = "{sha256}"\nrole = "{role}"\nsites = {sites}\n'


@pytest.mark.parametrize(
    ("text", "names"),
    [
        # unknown keys
        pytest.param("[server]\nfoo = 1\n", ["server", "foo"], id="unknown-server-key"),
        pytest.param("foo = 1\n", ["foo"], id="unknown-top-level-key"),
        pytest.param(
            '[[sites]]\nid = "a"\ncolour = "red"\n', ["sites[0]", "colour"], id="unknown-site-key"
        ),
        pytest.param(
            '[[sites]]\nid = "a"\n[sites.production]\nhost = ["a.example"]\n',
            ["sites[0].production", "host"],
            id="unknown-env-key",
        ),
        pytest.param(_token("t") + "scope = 1\n", ["tokens[0]", "scope"], id="unknown-token-key"),
        # wrong types
        pytest.param(
            '[server]\ncache_max_bytes = "big"\n', ["server.cache_max_bytes"], id="wrong-type-int"
        ),
        pytest.param("[server]\nlisten = 8080\n", ["server.listen"], id="wrong-type-str"),
        pytest.param(
            '[[sites]]\nid = "a"\n[sites.production]\nhosts = "a.example"\n',
            ["sites[0].production.hosts"],
            id="wrong-type-array",
        ),
        pytest.param(
            "[server]\ncache_max_bytes = 0\n", ["server.cache_max_bytes"], id="cache-not-positive"
        ),
        # issue 19's limits
        pytest.param("[server]\nform_burst = 0\n", ["server.form_burst"], id="burst-zero"),
        pytest.param(
            "[server]\nform_rate_per_minute = 0\n", ["server.form_rate_per_minute"], id="rate-0"
        ),
        pytest.param(
            "[server]\ninbox_max_submissions = 0\n", ["server.inbox_max_submissions"], id="inbox-0"
        ),
        pytest.param("[server]\ninbox_max_bytes = 10\n", ["server.inbox_max_bytes"], id="inbox-b"),
        pytest.param(
            "[server]\ndisk_reserve_bytes = -1\n", ["server.disk_reserve_bytes"], id="reserve-neg"
        ),
        pytest.param(
            "[server]\nmax_snapshot_paths = 0\n", ["server.max_snapshot_paths"], id="paths-zero"
        ),
        pytest.param(_token("t", role="root"), ["tokens[0].role"], id="unknown-role"),
        pytest.param('sites = "acme"\n', ["sites"], id="sites-not-a-table-array"),
        # listen addresses
        pytest.param('[server]\nlisten = "8080"\n', ["server.listen"], id="listen-no-host"),
        pytest.param(
            '[server]\nlisten = "host:99999"\n', ["server.listen"], id="listen-port-too-big"
        ),
        pytest.param('[server]\nlisten = "host:0"\n', ["server.listen"], id="listen-port-zero"),
        pytest.param('[server]\nlisten = "host:"\n', ["server.listen"], id="listen-empty-port"),
        pytest.param('[server]\nlisten = ":8080"\n', ["server.listen"], id="listen-empty-host"),
        pytest.param(
            '[server]\nlisten = "::1:8080"\n', ["server.listen"], id="listen-v6-unbracketed"
        ),
        pytest.param('[server]\nlisten = "[nope]:8080"\n', ["server.listen"], id="listen-v6-bad"),
        pytest.param(
            '[server]\nadmin_listen = "localhost"\n',
            ["server.admin_listen"],
            id="admin-listen-no-port",
        ),
        pytest.param(
            '[server]\nlisten = "127.0.0.1:9000"\nadmin_listen = "127.0.0.1:9000"\n',
            ["admin_listen"],
            id="listen-equals-admin-listen",
        ),
        pytest.param(
            '[server]\nlisten = "[::1]:9000"\nadmin_listen = "[0:0::1]:9000"\n',
            ["admin_listen"],
            id="listen-equals-admin-listen-v6-spelling",
        ),
        pytest.param(
            '[server]\nstaging_domain = "bad domain"\n',
            ["server.staging_domain"],
            id="staging-domain-invalid",
        ),
        # hosts
        pytest.param(
            _site("a", ["x.example"]) + _site("b", staging=["X.Example."]),
            ["sites[1].staging.hosts[0]", "sites[0].production.hosts[0]"],
            id="host-claimed-by-two-sites",
        ),
        pytest.param(
            _site("a", ["x.example"], ["x.example"]),
            ["sites[0].production.hosts[0]", "sites[0].staging.hosts[0]"],
            id="host-claimed-by-both-envs",
        ),
        pytest.param(
            _site("a", ["x.example", "x.example:80"]),
            ["sites[0].production.hosts[1]"],
            id="host-claimed-twice-in-one-env",
        ),
        pytest.param(
            '[server]\nstaging_domain = "staging.example"\n'
            + _site("a")
            + _site("b", ["a.staging.example"]),
            ["sites[1].production.hosts[0]", "staging_domain"],
            id="staging-domain-host-collides",
        ),
        pytest.param(
            _site("a", ["a/b.example"]), ["sites[0].production.hosts[0]"], id="host-invalid"
        ),
        pytest.param(
            '[server]\nallow_private_targets = ["10.0.0.0/8", "nope"]\n',
            ["server.allow_private_targets[1]: not a network: 'nope'"],
            id="private-target-not-a-network",
        ),
        pytest.param(
            '[server]\ntrusted_proxies = ["10.0.0.300"]\n',
            ["server.trusted_proxies[0]: not an IP address or network: '10.0.0.300'"],
            id="trusted-proxy-not-an-address",
        ),
        # site ids
        pytest.param(_site("Acme"), ["sites[0].id"], id="site-id-uppercase"),
        pytest.param(_site("a_b"), ["sites[0].id"], id="site-id-underscore"),
        pytest.param(_site("-acme"), ["sites[0].id"], id="site-id-leading-hyphen"),
        pytest.param(_site(""), ["sites[0].id"], id="site-id-empty"),
        pytest.param(_site("a" * 64), ["sites[0].id"], id="site-id-too-long"),
        pytest.param(_site("a.b"), ["sites[0].id"], id="site-id-dot"),
        pytest.param(
            _site("acme") + _site("acme"), ["sites[1].id", "sites[0]"], id="duplicate-site-id"
        ),
        # tokens
        pytest.param(_token("t", sha256="abc"), ["tokens[0].sha256"], id="sha256-short"),
        pytest.param(_token("t", sha256="A" * 64), ["tokens[0].sha256"], id="sha256-uppercase"),
        pytest.param(_token("t", sha256="g" * 64), ["tokens[0].sha256"], id="sha256-not-hex"),
        pytest.param(_token("t", sha256="a" * 65), ["tokens[0].sha256"], id="sha256-too-long"),
        pytest.param(
            _site("acme") + _token("t", sites='["acme", "nope"]'),
            ["tokens[0].sites[1]", "nope"],
            id="token-unknown-site",
        ),
        pytest.param(
            _token("t") + _token("t", sha256=HEX_B), ["tokens[1].name"], id="token-name-twice"
        ),
        pytest.param(_token(""), ["tokens[0].name"], id="token-name-empty"),
        pytest.param("[server\n", ["TOML"], id="not-toml"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, text: str, names: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, tmp_path)
    message = str(info.value)
    assert message == info.value.message
    for name in names:
        assert name in message, message


def test_unknown_key_message_has_one_location(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape("server: ")) as info:
        parse_config("[server]\nfoo = 1\n", tmp_path)
    assert "`foo`" in str(info.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:8080", ListenAddress("127.0.0.1", 8080)),
        ("localhost:1", ListenAddress("localhost", 1)),
        ("0.0.0.0:65535", ListenAddress("0.0.0.0", 65535)),
        ("[::1]:8080", ListenAddress("::1", 8080)),
        ("8080", None),
        ("host:99999", None),
        ("host:65536", None),
        ("host:0", None),
        ("host:-1", None),
        ("host:\uff18\uff10", None),  # fullwidth digits
        ("host:", None),
        (":80", None),
        ("a:b:80", None),
        ("[::1]", None),
        ("[::1]8080", None),
        ("[zz]:80", None),
    ],
)
def test_parse_listen(value: str, expected: ListenAddress | None) -> None:
    assert parse_listen(value) == expected


def test_listen_address_str_round_trips() -> None:
    for value in ["127.0.0.1:8080", "[::1]:8080"]:
        address = parse_listen(value)
        assert address is not None
        assert str(address) == value
        assert parse_listen(str(address)) == address


@pytest.mark.parametrize(
    ("production_url", "staging_url"),
    [
        ("https://hooks.acme.example/p", "https://HOOKS.acme.example./s"),
        ("http://10.0.0.5:8080/p", "http://10.0.0.05:8080/s"),
        ("http://10.0.0.5:8080/p", "http://167772165:8080/s"),
        ("http://10.0.0.5:8080/p", "http://[::ffff:10.0.0.5]:8080/s"),
        ("https://hooks.example/p", "https://hooks.example:443/s"),
    ],
)
def test_a_staging_webhook_on_any_spelling_of_a_production_origin_is_refused(
    production_url: str, staging_url: str
) -> None:
    hook = '{{ url = "{}", events = ["form.submitted"], secret_env = "S" }}'
    text = f"""
[[sites]]
id = "a"
[sites.production]
hosts = ["a.example"]
webhooks = [{hook.format(production_url)}]
[[sites]]
id = "b"
[sites.staging]
hosts = ["b-preview.example"]
webhooks = [{hook.format(staging_url)}]
"""
    with pytest.raises(ConfigError) as err:
        parse_config(text, Path("/etc/edge"))
    assert "sites[1].staging.webhooks[0].url" in err.value.message
