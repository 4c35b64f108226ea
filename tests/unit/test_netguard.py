"""The outbound guard: which addresses are internal, IP literals, resolver, socket factory."""

from __future__ import annotations

import errno
import ipaddress
import socket

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from hypothesis import given
from hypothesis import strategies as st

from edge.netguard import (
    Address,
    ForbiddenTarget,
    GuardedConnector,
    GuardedResolver,
    allowed_networks,
    check_url,
    guarded_session,
    guarded_socket_factory,
    is_forbidden,
    parse_ip,
    parse_networks,
)

FORBIDDEN = [
    # loopback
    "127.0.0.1",
    "127.255.255.254",
    "::1",
    # RFC 1918
    "10.0.0.1",
    "10.255.255.255",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.0.1",
    # link-local, cloud metadata
    "169.254.169.254",
    "169.254.0.1",
    "fe80::1",
    # unspecified and "this network"
    "0.0.0.0",
    "0.1.2.3",
    "::",
    # multicast
    "224.0.0.1",
    "239.255.255.250",
    "ff02::1",
    "ff0e::1",
    # reserved, broadcast
    "240.0.0.1",
    "255.255.255.255",
    # CGNAT
    "100.64.0.1",
    "100.127.255.255",
    # unique-local, site-local
    "fc00::1",
    "fd12:3456:789a::1",
    "fec0::1",
    # documentation, benchmarking: never a real destination
    "192.0.2.1",
    "198.18.0.1",
    "2001:db8::1",
    # IPv4-mapped, IPv4-compatible, NAT64 and 6to4 forms of internal IPv4 addresses
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::ffff:100.64.0.1",
    "::ffff:0.0.0.0",
    "::127.0.0.1",
    "::10.0.0.1",
    "64:ff9b::a00:1",
    "64:ff9b::7f00:1",
    "2002:7f00:1::",
    "2002:a9fe:a9fe::1",
]

PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "100.63.255.255",  # just below CGNAT
    "100.128.0.0",  # just above
    "172.15.255.255",  # just below 172.16/12
    "172.32.0.0",  # just above
    "11.0.0.1",
    "2606:4700:4700::1111",
    "2a00:1450:4001::200e",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
    "2002:808:808::1",
]


def ip(text: str) -> Address:
    return ipaddress.ip_address(text)


@pytest.mark.parametrize("address", FORBIDDEN)
def test_internal_addresses_are_forbidden(address: str) -> None:
    assert is_forbidden(ip(address), ())


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_not(address: str) -> None:
    assert not is_forbidden(ip(address), ())


@pytest.mark.parametrize(
    ("address", "allow", "forbidden"),
    [
        ("127.0.0.1", ["127.0.0.0/8"], False),
        ("127.0.0.1", ["127.0.0.1/32"], False),
        ("127.0.0.2", ["127.0.0.1/32"], True),
        ("::ffff:127.0.0.1", ["127.0.0.0/8"], False),
        ("::127.0.0.1", ["127.0.0.0/8"], False),
        ("10.1.2.3", ["10.1.0.0/16"], False),
        ("10.2.0.1", ["10.1.0.0/16"], True),
        ("10.1.2.3", ["192.168.0.0/16", "10.0.0.0/8"], False),
        ("169.254.169.254", ["10.0.0.0/8"], True),
        ("169.254.169.254", ["169.254.0.0/16"], False),
        # an allowed network of one version says nothing about the other
        ("::1", ["127.0.0.0/8"], True),
        ("::1", ["::1/128"], False),
        ("fd00::5", ["fd00::/8"], False),
        ("fe80::1", ["fd00::/8"], True),
        # host bits in the config are accepted, as the config check does
        ("192.168.1.7", ["192.168.1.1/24"], False),
    ],
)
def test_allow_list_exceptions(address: str, allow: list[str], forbidden: bool) -> None:
    assert is_forbidden(ip(address), parse_networks(allow)) is forbidden


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0X7F.0.0.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("10.0.0.1.", "10.0.0.1"),
        ("0", "0.0.0.0"),
        ("169.254.43518", "169.254.169.254"),
        ("[::1]", "::1"),
        ("::ffff:127.0.0.1", "::ffff:7f00:1"),
        ("[::ffff:7f00:1]", "::ffff:7f00:1"),
        ("fe80::1%eth0", "fe80::1"),
        ("[fe80::1%25eth0]", "fe80::1"),
        # names and things that are not an address
        ("example.com", None),
        ("localhost", None),
        ("1.2.3.4.5", None),
        ("256.0.0.1", None),
        ("1.2.3.256", None),
        ("1.2.65536", None),
        ("4294967296", None),
        ("08.0.0.1", None),
        ("0x", None),
        ("1..2", None),
        ("", None),
        ("١٢٧.0.0.1", None),
        ("1_0.0.0.1", None),
        ("[not-v6]", None),
        ("1" * 5000, None),
        ("0x" + "0" * 300 + "1", None),
        ("1.2.3.4a", None),
    ],
)
def test_parse_ip_reads_every_literal_form(host: str, expected: str | None) -> None:
    parsed = parse_ip(host)
    assert parsed == (None if expected is None else ip(expected))


@given(st.text(alphabet="0123456789abcdefxX.", max_size=24))
def test_parse_ip_agrees_with_inet_aton(host: str) -> None:
    try:
        expected: Address | None = ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        expected = None
    if host.endswith("."):  # refused by inet_aton, read as the address by parse_ip
        return
    assert parse_ip(host) == expected


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://127.0.0.1:8080/api/",
        "https://10.1.2.3/",
        "http://169.254.169.254/latest/meta-data/",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://[::1]:9000/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://[fe80::1%25eth0]/",
        "http://0.0.0.0:80/",
        "http://[::]/",
    ],
)
def test_check_url_refuses_internal_literals(url: str) -> None:
    with pytest.raises(ForbiddenTarget, match="private address"):
        check_url(url, ())


@pytest.mark.parametrize(
    "url",
    [
        "http://8.8.8.8/",
        "https://[2606:4700:4700::1111]/",
        # names are judged when resolved and when connected, not here
        "http://example.com/",
        "http://localhost:8080/",
    ],
)
def test_check_url_passes_public_literals_and_names(url: str) -> None:
    check_url(url, ())


def test_check_url_allow_list() -> None:
    check_url("http://127.0.0.1:9000/", parse_networks(["127.0.0.0/8"]))
    check_url("http://[::ffff:127.0.0.1]:9000/", parse_networks(["127.0.0.0/8"]))
    with pytest.raises(ForbiddenTarget):
        check_url("http://10.0.0.1/", parse_networks(["127.0.0.0/8"]))


@pytest.mark.parametrize(
    "url", ["ftp://example.com/", "file:///etc/passwd", "/relative", "http://"]
)
def test_check_url_refuses_non_http(url: str) -> None:
    with pytest.raises(ForbiddenTarget):
        check_url(url, ())


def test_forbidden_target_is_a_clear_oserror() -> None:
    exc = ForbiddenTarget("refusing to connect to x (127.0.0.1): private address")
    assert isinstance(exc, OSError)
    assert str(exc) == "refusing to connect to x (127.0.0.1): private address"


class FakeResolver(AbstractResolver):
    """Answers every name with fixed addresses, like a DNS server under an attacker's control."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses
        self.closed = False

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host=a,
                port=port,
                family=socket.AF_INET6 if ":" in a else socket.AF_INET,
                proto=0,
                flags=0,
            )
            for a in self.addresses
        ]

    async def close(self) -> None:
        self.closed = True


async def test_resolver_drops_internal_answers() -> None:
    resolver = GuardedResolver((), FakeResolver("10.0.0.7", "93.184.216.34", "::1", "2606::1"))
    answers = await resolver.resolve("mixed.example", 443)
    assert [a["host"] for a in answers] == ["93.184.216.34", "2606::1"]


async def test_resolver_refuses_a_name_with_only_internal_answers() -> None:
    resolver = GuardedResolver((), FakeResolver("169.254.169.254", "10.0.0.1"))
    with pytest.raises(ForbiddenTarget) as caught:
        await resolver.resolve("rebind.example", 80)
    assert str(caught.value) == (
        "refusing to connect to rebind.example (169.254.169.254): private address"
    )


async def test_resolver_keeps_allowed_networks() -> None:
    inner = FakeResolver("127.0.0.1", "10.0.0.1")
    resolver = GuardedResolver(parse_networks(["127.0.0.0/8"]), inner)
    answers = await resolver.resolve("sidecar.example", 80)
    assert [a["host"] for a in answers] == ["127.0.0.1"]
    await resolver.close()
    assert inner.closed


async def test_resolver_checks_real_resolution_of_numeric_names() -> None:
    """``0x7f.1`` is not an IP to aiohttp, but getaddrinfo turns it into 127.0.0.1."""
    resolver = GuardedResolver(())
    with pytest.raises(ForbiddenTarget, match=r"0x7f\.1 \(127\.0\.0\.1\)"):
        await resolver.resolve("0x7f.1", 80, socket.AF_UNSPEC)
    await resolver.close()


def addr_info(host: str, port: int = 80) -> aiohttp.AddrInfoType:
    """What aiohttp hands the socket factory for one address it is about to connect to."""
    if ":" in host:
        return (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (host, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (host, port))


@pytest.mark.parametrize(
    ("host", "allow"),
    [
        ("127.0.0.1", []),
        ("10.9.8.7", []),
        ("169.254.169.254", []),
        ("::1", []),
        ("::ffff:7f00:1", []),
        ("fe80::1%eth0", []),
        ("10.9.8.7", ["127.0.0.0/8"]),
        ("not-an-address", []),
    ],
)
def test_socket_factory_refuses_internal_addresses(host: str, allow: list[str]) -> None:
    factory = guarded_socket_factory(parse_networks(allow))
    with pytest.raises(ForbiddenTarget, match="private address"):
        factory(addr_info(host))


@pytest.mark.parametrize(
    ("host", "allow"),
    [
        ("93.184.216.34", []),
        ("2606:4700:4700::1111", []),
        ("127.0.0.1", ["127.0.0.0/8"]),
        ("::ffff:7f00:1", ["127.0.0.0/8"]),
    ],
)
def test_socket_factory_makes_sockets_for_allowed_addresses(host: str, allow: list[str]) -> None:
    factory = guarded_socket_factory(parse_networks(allow))
    info = addr_info(host)
    try:
        sock = factory(info)
    except OSError as exc:
        if exc.errno == errno.EAFNOSUPPORT:
            pytest.skip("no IPv6 on this machine")
        raise
    with sock:
        assert sock.family == info[0]
        assert sock.type == socket.SOCK_STREAM


async def test_guarded_session_shape() -> None:
    session = guarded_session(["127.0.0.0/8", "fd00::/8"], connect_timeout=2.0, read_timeout=7.0)
    async with session:
        assert isinstance(session.connector, GuardedConnector)
        assert allowed_networks(session) == parse_networks(["127.0.0.0/8", "fd00::/8"])
        assert session.timeout.sock_connect == 2.0
        assert session.timeout.sock_read == 7.0
        assert session.timeout.total is None
        assert session.auto_decompress is False
        assert isinstance(session.cookie_jar, aiohttp.DummyCookieJar)


async def test_allowed_networks_of_a_plain_session_is_empty() -> None:
    async with aiohttp.ClientSession() as session:
        assert allowed_networks(session) == ()
