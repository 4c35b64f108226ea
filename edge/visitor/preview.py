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

from edge.errors import ConfigError

COOKIE = "edge_preview"
LINK_PATH = "/_edge/preview"
MAX_TTL_SECONDS = 30 * 86_400


@dataclass(frozen=True, slots=True)
class PreviewGrant:
    site: str
    snapshot: str
    expires: int


KEY_BYTES = 32


def load_key(data_dir: Path) -> bytes:
    """The signing key, made once (0600); every worker reads the same one.

    The key is written to a private temporary file and linked into place, so a
    process never reads a half-written key; anything but exactly
    :data:`KEY_BYTES` bytes is refused (an empty key would let anyone sign).
    """
    path = data_dir / "preview.key"
    data_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        tmp = data_dir / f".preview.key.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_bytes(KEY_BYTES))
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, path)  # fails if another process won: use theirs
            except FileExistsError:
                pass
        finally:
            tmp.unlink(missing_ok=True)
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise ConfigError(f"{path}: not a preview key ({len(key)} bytes); delete it to make one")
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
