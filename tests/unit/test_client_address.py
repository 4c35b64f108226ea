"""Whose address a per-client limit counts (edge.wire.proxies.client_address)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.wire.proxies import TrustedProxies, client_address

PROXIES = TrustedProxies.parse(["10.0.0.0/8", "::1"])


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "proxies", "client"),
    [
        ("203.0.113.9", None, None, "203.0.113.9"),
        # Not a trusted peer: X-Forwarded-For is anybody's claim.
        ("203.0.113.9", "198.51.100.1", PROXIES, "203.0.113.9"),
        ("203.0.113.9", "198.51.100.1", None, "203.0.113.9"),
        # A trusted proxy: the address it saw (the rightmost).
        ("10.0.0.2", "198.51.100.1", PROXIES, "198.51.100.1"),
        # Whatever the client put further left is not believed.
        ("10.0.0.2", "1.2.3.4, 198.51.100.1", PROXIES, "198.51.100.1"),
        # Several trusted hops are skipped.
        ("10.0.0.2", "1.2.3.4, 198.51.100.1, 10.0.0.7", PROXIES, "198.51.100.1"),
        # Nothing usable in the header: the last trusted address vouched for.
        ("10.0.0.2", "garbage", PROXIES, "10.0.0.2"),
        ("10.0.0.2", "198.51.100.1, garbage", PROXIES, "10.0.0.2"),
        ("10.0.0.2", "", PROXIES, "10.0.0.2"),
        # Forms of one address count as one client.
        ("::ffff:203.0.113.9", None, None, "203.0.113.9"),
        ("10.0.0.2", " 2001:DB8::1 ", PROXIES, "2001:db8::1"),
        (None, None, None, ""),
    ],
)
def test_client_address(
    peer: str | None, forwarded_for: str | None, proxies: TrustedProxies | None, client: str
) -> None:
    assert client_address(peer, forwarded_for, proxies) == client


@given(forwarded_for=st.text(max_size=200))
def test_an_untrusted_peer_is_always_the_client(forwarded_for: str) -> None:
    assert client_address("203.0.113.9", forwarded_for, PROXIES) == "203.0.113.9"


@given(left=st.text(max_size=100))
def test_what_the_client_writes_left_of_the_proxy_never_counts(left: str) -> None:
    assert client_address("10.0.0.2", f"{left},198.51.100.1", PROXIES) == "198.51.100.1"
