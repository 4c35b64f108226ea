"""What the visitor side serves from: one :class:`Services` per process."""

from __future__ import annotations

from dataclasses import InitVar, dataclass, field
from typing import TYPE_CHECKING

import aiohttp

from edge.cache import ByteLRU, CacheKey
from edge.integrations.webhooks import Webhooks
from edge.snapshots.live import LivePointers, SnapshotLoader
from edge.snapshots.reserve import DiskReserve
from edge.snapshots.store import Store
from edge.visitor.analytics import PageViewCounter
from edge.visitor.formguard import FormGuard
from edge.visitor.preview import PreviewSigner
from edge.visitor.repcache import STREAM_THRESHOLD_BYTES, RepresentationCache
from edge.visitor.representation import Representation
from edge.visitor.upstream import UpstreamTable

if TYPE_CHECKING:
    from edge.observability.observer import Observer


@dataclass(slots=True)
class Services:
    """What both visitor listeners (plain and HTTPS) serve from."""

    live: LivePointers
    loader: SnapshotLoader
    store: Store
    cache: ByteLRU[CacheKey, Representation]
    views: PageViewCounter = field(default_factory=PageViewCounter)
    webhooks: Webhooks | None = None
    upstreams: UpstreamTable | None = None
    session: aiohttp.ClientSession | None = None
    signer: PreviewSigner | None = None
    observer: Observer | None = None
    forms_guard: FormGuard | None = None  # abuse limits of form posts (issue 19)
    reserve: DiskReserve | None = None  # free disk kept for operators (issue 19)
    # Files above this are sent from their blob file (server.stream_threshold_bytes).
    stream_threshold: int = STREAM_THRESHOLD_BYTES
    # Given when it is built first (edge.server: the live pointers warm it before a swap).
    representations: InitVar[RepresentationCache | None] = None
    content: RepresentationCache = field(init=False)

    def __post_init__(self, representations: RepresentationCache | None) -> None:
        if representations is None:
            representations = RepresentationCache(
                self.cache, self.store, stream_threshold=self.stream_threshold
            )
        self.content = representations
