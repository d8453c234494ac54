"""The file / console channel for dry runs: each message becomes one JSON line."""

from __future__ import annotations

import json
import os
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from huitouke.messaging.channels.base import Delivery, OutgoingMessage, SendResult

__all__ = ["FileChannel"]


class FileChannel:
    """Append messages as JSON lines to a file (``"-"``: standard output).

    Lines are flushed and fsync'ed one batch at a time by the OS; a crash between writing a
    line and marking the row sent can leave a second line for the same ``message_id`` —
    readers de-duplicate by it (at least once).
    """

    delivery: Delivery = "at_least_once"

    def __init__(self, path: str | Path, *, name: str = "file", fsync: bool = False) -> None:
        self.name = name
        self.path = str(path)
        self.fsync = fsync
        self._lock = threading.Lock()
        self._fh: TextIO | None = None

    def _handle(self) -> TextIO:
        if self.path == "-":
            return sys.stdout
        if self._fh is None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (kept open across sends)
        return self._fh

    def send(self, message: OutgoingMessage) -> SendResult:
        line = json.dumps(
            {
                "message_id": message.message_id,
                "customer_id": message.customer_id,
                "channel": message.channel,
                "kind": message.kind,
                "recipient": message.recipient,
                "journey_id": message.journey_id,
                "step_id": message.step_id,
                "rendered": message.rendered,
                "at": datetime.now(UTC).isoformat(),
            },
            ensure_ascii=False,
            default=str,
        )
        with self._lock:
            fh = self._handle()
            fh.write(line + "\n")
            fh.flush()
            if self.fsync and fh is not sys.stdout:
                os.fsync(fh.fileno())
        return SendResult(
            provider="file", provider_message_id=message.message_id, sent_at=datetime.now(UTC)
        )

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
