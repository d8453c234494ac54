"""What every request handler shares: settings, the store, the clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from huitouke.settings import Settings
from huitouke.store.db import Store

__all__ = ["ServiceContext", "system_clock"]


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class ServiceContext:
    settings: Settings
    store: Store
    #: Time is an input: tests and replays pass a fixed clock.
    clock: Callable[[], datetime] = system_clock
    #: Per-process caches owned by routers (e.g. the loyalty program), keyed by name.
    cache: dict[str, Any] = field(default_factory=dict)
