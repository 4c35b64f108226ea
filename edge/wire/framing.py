"""Request framing rules on top of aiohttp's C parser. Pure.

aiohttp's llhttp-based request parser already refuses, with 400 and a closed
connection, every ambiguous framing we know of: Content-Length together with
Transfer-Encoding, two Content-Lengths (equal or not), a Content-Length that is
not plain digits (``+5``, ``-0``, ``0x5``, ``5, 5``), a Transfer-Encoding whose
last coding is not ``chunked`` (``xchunked``, ``chunked, chunked``,
``identity``, ``chunked`` with trailing whitespace), two Transfer-Encoding or
Host fields, CR, NUL or other control bytes in a field, bare LF line endings,
obs-fold continuation lines, whitespace before the colon, chunk sizes that
overflow, LF inside chunk extensions and framing headers in trailers
(tests/security/test_protocol_framing.py shows each one).

It accepts three things that edge refuses here:

- ``Transfer-Encoding`` in an HTTP/1.0 request: RFC 9112 §6.1 says the framing
  is then faulty (400);
- transfer codings before the final ``chunked`` (``gzip, chunked``): edge
  cannot decode them, and RFC 9112 §6.1 answers 501;
- a request line claiming a major version other than 1 (``HTTP/2.0``), which
  aiohttp would answer as ``HTTP/2.0 200``: 505.

Each of these answers closes the connection, so nothing sent after the refused
request on the same connection is ever read as a request.
"""

from __future__ import annotations

from edge.errors import BadFraming, EdgeError, UnsupportedTransferCoding, VersionNotSupported


def framing_error(version: tuple[int, int], transfer_encoding: str | None) -> EdgeError | None:
    """The error to answer for a parsed request's framing, or ``None`` when it is sound.

    ``transfer_encoding`` is the request's one Transfer-Encoding value (the parser
    refuses two); callers skip this call for HTTP/1.1 requests without one.
    """
    if version[0] != 1:
        return VersionNotSupported("only HTTP/1.0 and HTTP/1.1 are served here")
    if transfer_encoding is None:
        return None
    if version[1] == 0:
        return BadFraming("Transfer-Encoding is not allowed in an HTTP/1.0 request")
    if transfer_encoding.strip(" \t").lower() != "chunked":
        return UnsupportedTransferCoding("only the chunked transfer coding is supported")
    return None


def encoded_body(content_encoding: str | None) -> bool:
    """Whether a request body is content-coded (gzip, br, ...), which edge never inflates.

    Edge turns aiohttp's request decompression off: a compressed body is passed on
    untouched to an upstream, and refused (415) where edge reads the body itself,
    so no small request can make edge inflate a large one.
    """
    return content_encoding is not None and content_encoding.strip(" \t").lower() not in (
        "",
        "identity",
    )
