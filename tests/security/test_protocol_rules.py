"""The pure rules behind the wire defences, and the aiohttp internals they rely on."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any
from unittest import mock

import pytest
from aiohttp import http_parser, web, web_protocol, web_runner
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from hypothesis import given
from hypothesis import strategies as st

from edge.errors import BadFraming, UnsupportedTransferCoding, VersionNotSupported
from edge.wire.framing import encoded_body, framing_error
from edge.wire.proxies import TrustedProxies, first_value, forwarded_https, parse_peer


@pytest.mark.parametrize(
    ("version", "te", "error"),
    [
        ((1, 1), None, None),
        ((1, 0), None, None),
        ((1, 1), "chunked", None),
        ((1, 1), "Chunked", None),
        ((1, 1), "\tchunked ", None),
        ((1, 0), "chunked", BadFraming),
        ((1, 1), "gzip, chunked", UnsupportedTransferCoding),
        ((1, 1), "deflate,chunked", UnsupportedTransferCoding),
        ((1, 1), "identity", UnsupportedTransferCoding),
        ((2, 0), None, VersionNotSupported),
        ((0, 9), None, VersionNotSupported),
        ((2, 0), "chunked", VersionNotSupported),
    ],
)
def test_framing_error(version: tuple[int, int], te: str | None, error: type | None) -> None:
    found = framing_error(version, te)
    if error is None:
        assert found is None
    else:
        assert type(found) is error


def test_framing_error_statuses() -> None:
    assert framing_error((1, 0), "chunked").status == 400  # type: ignore[union-attr]
    assert framing_error((1, 1), "gzip, chunked").status == 501  # type: ignore[union-attr]
    assert framing_error((2, 0), None).status == 505  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("value", "coded"),
    [(None, False), ("", False), ("identity", False), (" Identity ", False), ("gzip", True),
     ("br", True), ("deflate", True), ("gzip, identity", True), ("x-gzip", True)],
)  # fmt: skip
def test_encoded_body(value: str | None, coded: bool) -> None:
    assert encoded_body(value) is coded


def test_trusted_proxies() -> None:
    proxies = TrustedProxies.parse(["10.0.0.0/8", "192.0.2.1", "2001:db8::/32"])
    assert proxies is not None
    for peer in ("10.1.2.3", "192.0.2.1", "::ffff:10.0.0.1", "2001:db8::5", "2001:db8::5%eth0"):
        assert proxies.trusts(peer), peer
    for peer in ("192.0.2.2", "11.0.0.1", "::1", "2001:db9::1", "garbage", "", None):
        assert not proxies.trusts(peer), peer
    assert TrustedProxies.parse([]) is None


@given(st.text(max_size=60))
def test_trusts_never_raises(peer: str) -> None:
    proxies = TrustedProxies.parse(["127.0.0.1"])
    assert proxies is not None
    assert proxies.trusts(peer) is (parse_peer(peer) == parse_peer("127.0.0.1"))


@pytest.mark.parametrize(
    ("value", "first"),
    [(None, None), ("", None), ("a.example", "a.example"), (" a.example , b", "a.example"),
     (",b", None), ("\ta\t", "a")],
)  # fmt: skip
def test_first_value(value: str | None, first: str | None) -> None:
    assert first_value(value) == first


@pytest.mark.parametrize(
    ("value", "https"),
    [(None, None), ("https", True), ("HTTPS", True), ("https, http", True), ("http", False),
     ("http, https", False), ("wss", None), ("", None)],
)  # fmt: skip
def test_forwarded_https(value: str | None, https: bool | None) -> None:
    assert forwarded_https(value) is https


# -- the aiohttp internals edge/wire/protocol.py relies on -----------------------------


async def test_aiohttp_internals_used_by_the_guarded_protocol_are_there() -> None:
    """Fails loudly when an aiohttp upgrade moves what the deadlines hook into."""
    assert hasattr(web_protocol, "_ErrInfo")
    assert {"status", "exc", "message"} <= set(inspect.signature(web_protocol._ErrInfo).parameters)
    server = web.Server(lambda request: web.Response())  # type: ignore[arg-type, return-value]
    handler = web_protocol.RequestHandler(server, loop=asyncio.get_running_loop())
    for name in (
        "_messages", "_request_count", "_current_request", "_request_in_progress",
        "_force_close", "_close", "_paused", "_reading_paused", "_buffer_paused", "_loop",
        "_task_handler",
    ):  # fmt: skip
        assert hasattr(handler, name), name
    handle_error = inspect.signature(web_protocol.RequestHandler.handle_error).parameters
    assert list(handle_error) == ["self", "request", "status", "exc", "message"]
    for name in ("_runner", "_host", "_port", "_ssl_context", "_backlog", "_reuse_address",
                 "_reuse_port", "_server", "_bound_port"):  # fmt: skip
        assert name in web_runner.TCPSite.__slots__ or name in web_runner.BaseSite.__slots__, name
    assert "_make_server" in vars(web_runner.AppRunner)

    def parser() -> Any:
        return http_parser.HttpRequestParserC(
            mock.Mock(), asyncio.get_running_loop(), 2**16, max_line_size=64, max_field_size=64,
            max_headers=8,
        )  # fmt: skip

    with pytest.raises(BadHttpMessage) as too_many:
        parser().feed_data(b"GET / HTTP/1.1\r\n" + b"".join(b"A%d: 1\r\n" % i for i in range(20)))
    assert too_many.value.message.startswith("Too many headers")  # what protocol.py matches
    with pytest.raises(LineTooLong):
        parser().feed_data(b"GET /" + b"a" * 100 + b" HTTP/1.1\r\n\r\n")
