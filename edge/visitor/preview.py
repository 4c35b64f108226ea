"""Preview access to staging: a shared password and signed, expiring preview links.

A preview link carries ``site.snapshot.expiry`` signed with HMAC-SHA256 under a
key that lives in ``data_dir/preview.key`` (made once, shared by every worker,
never in the configuration). Opening the link sets a cookie with the same token;
while it is valid the visitor sees that exact snapshot, even after staging moves
on. Comparisons are constant-time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

COOKIE = "edge_preview"
LINK_PATH = "/_edge/preview"
MAX_TTL_SECONDS = 30 * 86_400


@dataclass(frozen=True, slots=True)
class PreviewGrant:
    site: str
    snapshot: str
    expires: int


def load_key(data_dir: Path) -> bytes:
    """The signing key, created (0600) on first use; every worker reads the same."""
    path = data_dir / "preview.key"
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    with os.fdopen(fd, "wb") as fh:
        key = secrets.token_bytes(32)
        fh.write(key)
        fh.flush()
        os.fsync(fh.fileno())
    return key


class PreviewSigner:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, body: str) -> str:
        digest = hmac.new(self._key, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def sign(self, site: str, snapshot: str, ttl: int, now: float | None = None) -> str:
        expires = int((time.time() if now is None else now) + ttl)
        body = f"{site}.{snapshot}.{expires}"
        return f"{body}.{self._mac(body)}"

    def verify(self, token: str, site: str, now: float | None = None) -> PreviewGrant | None:
        """The grant of a valid, unexpired token for ``site``; ``None`` otherwise."""
        parts = token.split(".")
        if len(parts) != 4:
            return None
        body, mac = ".".join(parts[:3]), parts[3]
        if not hmac.compare_digest(self._mac(body), mac):
            return None
        token_site, snapshot, expires_s = parts[:3]
        if token_site != site or not expires_s.isdigit():
            return None
        expires = int(expires_s)
        if expires < (time.time() if now is None else now):
            return None
        return PreviewGrant(token_site, snapshot, expires)


def password_matches(authorization: str | None, password: str) -> bool:
    """HTTP Basic with any user name and ``password``, compared in constant time."""
    if not authorization:
        return False
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    _, _, given = decoded.partition(":")
    return hmac.compare_digest(given.encode(), password.encode())
