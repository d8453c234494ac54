"""A real `huitouke serve` process on 127.0.0.1 and a free port (for concurrency and crash
tests)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    database_url: str
    log_path: Path
    port: int = field(default_factory=free_port)
    workers: int = 1
    env: dict[str, str] = field(default_factory=dict)
    log_level: str = "warning"
    access_log: bool = False
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> LiveServer:
        env = {
            **os.environ,
            "HUITOUKE_DATABASE_URL": self.database_url,
            "HUITOUKE_LANG": "en",
            # the service alone; tests of the scheduler inside serve switch it on
            "HUITOUKE_SCHEDULER": "off",
            **self.env,
        }
        cmd = [
            sys.executable, "-m", "huitouke", "serve",
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers),
            "--access-log" if self.access_log else "--no-access-log",
            "--log-level", self.log_level,
        ]  # fmt: skip
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.proc.returncode}: {self.log_path.read_text()[-2000:]}"
                )
            try:
                if httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"server did not start: {self.log_path.read_text()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, no flushing — a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
