"""Webhooks: per-environment endpoints fed from a durable outbox.

How this works: an event (a form submission, a pointer move, a failed scheduled
publish) is turned into one outbox row per subscribed endpoint *of the
environment it happened in*, written in the same transaction as the change
itself, so an acknowledged change never loses its event and a staging event can
only ever be addressed to a staging endpoint. A delivery loop (one process of
an edge) leases due rows, POSTs them signed with HMAC-SHA256, and records the
outcome: delivered, retried later with exponential backoff, or given up after
:data:`MAX_ATTEMPTS`. Outbound requests never follow redirects and never reach
private, loopback or link-local addresses unless the configuration allows them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import msgspec

from edge.config import Settings
from edge.router import ENVS, Env
from edge.snapshots.model import OutboxEvent, OutboxItem, utc_now
from edge.snapshots.store import Store
from edge.timer import PokeableLoop

log = logging.getLogger("edge.webhooks")

MAX_ATTEMPTS = 10
MAX_BACKOFF_SECONDS = 3600.0
LEASE_SECONDS = 60.0
IDLE_SECONDS = 1.0  # how long the loop sleeps when the outbox is empty
SIGNATURE_HEADER = "X-Edge-Signature"
_encoder = msgspec.json.Encoder()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``t=<unix>,v1=<hex>``: HMAC-SHA256 over ``"<t>." + body``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def backoff(attempts: int) -> float:
    """Seconds before retry number ``attempts`` (1, 2, 4, ... capped)."""
    return float(min(2 ** max(attempts - 1, 0), MAX_BACKOFF_SECONDS))


class Webhooks:
    """Which endpoints hear which events, per (site, environment)."""

    def __init__(self, settings: Settings) -> None:
        self._hooks: dict[tuple[str, Env, str], list[tuple[str, str]]] = {}
        for site in settings.config.sites:
            for env in ENVS:
                for hook in getattr(site, env).webhooks:
                    for event in hook.events:
                        key = (site.id, env, event)
                        self._hooks.setdefault(key, []).append((hook.url, hook.secret_env))

    def events(self, site: str, env: Env, event: str, data: Mapping[str, Any]) -> list[OutboxEvent]:
        """Outbox rows for ``event`` in one environment (none if nobody listens)."""
        targets = self._hooks.get((site, env, event))
        if not targets:
            return []
        payload = _encoder.encode(
            {"event": event, "site": site, "env": env, "at": utc_now(), "data": data}
        )
        return [
            OutboxEvent(
                site=site, env=env, event=event, url=url, secret_env=secret, payload=payload
            )
            for url, secret in targets
        ]


class Deliverer(PokeableLoop):
    """Delivers due outbox rows; one per edge (the first worker runs it)."""

    def __init__(
        self,
        store: Store,
        session: aiohttp.ClientSession,
        *,
        check_url: Callable[[str], None] | None = None,
        environ: Mapping[str, str] = os.environ,
        timeout: float = 10.0,
        on_attempt: Callable[[OutboxItem, str, str | None], None] | None = None,
    ) -> None:
        """``on_attempt`` is told about every attempt: the item, ``"delivered"``,
        ``"retrying"`` or ``"given_up"``, and the error."""
        super().__init__(log)
        self._store = store
        self._session = session
        self._check_url = check_url
        self._environ = environ
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._on_attempt = on_attempt

    async def step(self) -> float:
        await self.deliver_due()
        due = await self._store.next_outbox_due()
        return IDLE_SECONDS if due is None else min(max(due - time.time(), 0.0), IDLE_SECONDS)

    async def deliver_due(self) -> int:
        items = await self._store.claim_outbox(now=time.time(), lease=LEASE_SECONDS, limit=20)
        if items:
            await asyncio.gather(*(self._deliver(item) for item in items))
        return len(items)

    async def _deliver(self, item: OutboxItem) -> None:
        error = await self._attempt(item)
        attempts = item.attempts + 1
        if error is None:
            await self._store.record_delivery(item.id, delivered=True, error=None, retry_at=None)
            log.info("webhook %s %s -> %s delivered", item.id, item.event, item.url)
            self._told(item, "delivered", None)
            return
        retry_at = None if attempts >= MAX_ATTEMPTS else time.time() + backoff(attempts)
        await self._store.record_delivery(item.id, delivered=False, error=error, retry_at=retry_at)
        self._told(item, "given_up" if retry_at is None else "retrying", error)
        log.warning("webhook %s %s -> %s failed (attempt %d): %s", item.id, item.event,
                    item.url, attempts, error)  # fmt: skip

    def _told(self, item: OutboxItem, result: str, error: str | None) -> None:
        if self._on_attempt is not None:
            self._on_attempt(item, result, error)

    async def _attempt(self, item: OutboxItem) -> str | None:
        secret = self._environ.get(item.secret_env)
        if not secret:
            return f"environment variable {item.secret_env} is not set"
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "X-Edge-Event": item.event,
            "X-Edge-Delivery": str(item.id),
            "X-Edge-Env": item.env,
            SIGNATURE_HEADER: signature(secret, timestamp, item.payload),
        }
        try:
            if self._check_url is not None:
                self._check_url(item.url)
            async with self._session.post(
                item.url,
                data=item.payload,
                headers=headers,
                allow_redirects=False,
                timeout=self._timeout,
            ) as resp:
                await resp.read()
                if 200 <= resp.status < 300:
                    return None
                return f"HTTP {resp.status}"
        except TimeoutError:
            return "timed out"
        except Exception as exc:  # a refused target, DNS, connection errors
            return f"{type(exc).__name__}: {exc}"[:300]
