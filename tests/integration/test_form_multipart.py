"""Multipart form posts on a real ``edge serve``: what is stored, what is refused, and how.

The reader is edge's own (``edge.visitor.forms``; why not aiohttp's: its docstring and
``bench/form_multipart.py``). Each refused body stores nothing; the accepted ones
are stored exactly as sent.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.integration.conftest import PRODUCTION_HOST, Api, EdgeServer

# Rate limits high enough for the posts below from one address (the guard is tested elsewhere).
FORMS = {"contact": {"max_bytes": 2048, "max_fields": 5, "rate_per_minute": 1000, "burst": 100}}
CT = "multipart/form-data; boundary=b"


def part(name: bytes, value: bytes, extra: bytes = b"") -> bytes:
    return b'Content-Disposition: form-data; name="' + name + b'"' + extra + b"\r\n\r\n" + value


def body(*parts: bytes, end: bool = True) -> bytes:
    out = b"".join(b"--b\r\n" + p + b"\r\n" for p in parts)
    return out + (b"--b--\r\n" if end else b"")


async def post(
    session: aiohttp.ClientSession, server: EdgeServer, data: bytes, content_type: str = CT
) -> int:
    headers = {"Host": PRODUCTION_HOST, "Content-Type": content_type}
    async with session.post(
        f"{server.url}/_edge/forms/contact", data=data, headers=headers, allow_redirects=False
    ) as resp:
        await resp.read()
        return resp.status


async def stored(api: Api) -> list[dict[str, Any]]:
    _, doc = await api.call("GET", "/v1/sites/acme/forms/production")
    return [s["fields"] for s in doc["submissions"]]


async def test_multipart_edge_cases_are_refused_whole_and_good_posts_stored_as_sent(
    server: EdgeServer, api: Api, session: aiohttp.ClientSession
) -> None:
    snap = await api.snapshot("acme", {"/index.html": b"<p>home</p>"}, settings={"forms": FORMS})
    await api.set_env("acme", "staging", snap)
    await api.publish()

    refused = [
        ("missing boundary", body(part(b"a", b"1")), "multipart/form-data", 400),
        ("empty boundary", body(part(b"a", b"1")), "multipart/form-data; boundary=", 400),
        ("wrong boundary", body(part(b"a", b"1")), "multipart/form-data; boundary=zz", 400),
        ("boundary over 70", body(part(b"a", b"1")), "multipart/form-data; boundary=" + "x" * 71,
         400),
        ("no closing boundary", body(part(b"a", b"1"), end=False), CT, 400),
        ("only the closing boundary", b"--b--\r\n", CT, 400),
        ("empty body", b"", CT, 400),
        ("LF line ends", b'--b\nContent-Disposition: form-data; name="a"\n\nv\n--b--\n', CT, 400),
        ("a file", body(part(b"a", b"1", b'; filename="x.txt"')), CT, 400),
        ("no name", body(b"Content-Disposition: form-data\r\n\r\nv"), CT, 400),
        ("not form-data", body(b'Content-Disposition: attachment; name="a"\r\n\r\nv'), CT, 400),
        ("too many fields", body(*[part(b"a", b"1")] * 6), CT, 400),
        ("an oversized part header", body(part(b"a", b"v", b'; p="x"' * 200)), CT, 400),
        ("not UTF-8", body(part(b"a", b"\xff")), CT, 400),
        ("an oversized field", body(part(b"a", b"x" * 2100)), CT, 413),
    ]  # fmt: skip
    for label, data, content_type, status in refused:
        assert await post(session, server, data, content_type) == status, label
    assert await stored(api) == []

    accepted = [
        (body(part(b"name", b"multi"), part(b"message", "héllo".encode())),
         {"name": "multi", "message": "héllo"}),
        (body(*[part(b"a", b"1")] * 5), {"a": ["1"] * 5}),  # exactly max_fields
        (b"preamble\r\n" + body(part(b"a", b"x\r\ny")), {"a": "x\r\ny"}),
        # RFC 7578 4.6: browsers fill in a hidden _charset_ input; it is a field here.
        (body(part(b"_charset_", b"UTF-8"), part(b"a", b"")), {"_charset_": "UTF-8", "a": ""}),
    ]  # fmt: skip
    for data, _ in accepted:
        assert await post(session, server, data) == 204
    kept = await stored(api)
    assert len(kept) == len(accepted)
    assert all(fields in kept for _, fields in accepted)
