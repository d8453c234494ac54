"""What every request handler shares: settings, the store, the clock."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from huitouke.service.apikeys import ApiKey
from huitouke.settings import Settings
from huitouke.store.db import Store

__all__ = ["KeyCache", "ServiceContext", "system_clock"]


def system_clock() -> datetime:
    return datetime.now(UTC)


class KeyCache:
    """Verified API keys, trusted for ``ttl`` seconds (``HUITOUKE_API_KEY_CACHE_SECONDS``).

    Spares every request a round trip to the store for the same key. Entries are keyed by
    the key's SHA-256 (the key text is not kept); revoking a key through the API evicts it
    at once; a revocation elsewhere (another worker, the CLI) takes effect within ``ttl``.
    """

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[float, ApiKey]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _id(presented: str) -> str:
        return hashlib.sha256(presented.encode("utf-8", "surrogatepass")).hexdigest()

    def get(self, presented: str) -> ApiKey | None:
        if self.ttl <= 0:
            return None
        hit = self._entries.get(self._id(presented))
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, presented: str, key: ApiKey) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            if len(self._entries) > 10_000:  # bounded: forget everything rather than grow
                self._entries.clear()
            self._entries[self._id(presented)] = (time.monotonic() + self.ttl, key)

    def evict(self, key_id: str) -> None:
        with self._lock:
            for h, (_, k) in list(self._entries.items()):
                if k.key_id == key_id:
                    del self._entries[h]


@dataclass
class ServiceContext:
    settings: Settings
    store: Store
    #: Time is an input: tests and replays pass a fixed clock.
    clock: Callable[[], datetime] = system_clock
    #: Per-process caches owned by routers (e.g. the loyalty program), keyed by name.
    cache: dict[str, Any] = field(default_factory=dict)
    keys: KeyCache = field(default_factory=lambda: KeyCache(0))
