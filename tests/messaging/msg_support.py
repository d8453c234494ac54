"""Real local servers for the messaging tests: an HTTP sink on loopback and an SMTP server.

Imported by the messaging tests (``from msg_support import ...``); the fixtures are
re-exported by this directory's conftest."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import insert

from huitouke.store.db import Store
from huitouke.store.tables import customers

WEBHOOK_SECRET = "whsec-test-0123456789"


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Sink:
    """What the loopback server saw; ``handler`` decides each reply (status, headers, body)."""

    url: str
    requests: list[Request] = field(default_factory=list)
    arrivals: Counter[str] = field(default_factory=Counter)
    accepted: dict[str, int] = field(default_factory=dict)
    bad_signatures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    handler: Callable[[Request], tuple[int, dict[str, str], bytes]] | None = None

    def delivered_ids(self) -> set[str]:
        return set(self.accepted)


def verify_signature_independently(secret: str, header: str, body: bytes) -> bool:
    """The receiver's check, written from the documented scheme (not the library's code)."""
    fields = dict(part.split("=", 1) for part in header.split(","))
    expected = hmac.new(
        secret.encode(), fields["t"].encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(expected, fields["v1"])


def _serve(sink: Sink) -> tuple[ThreadingHTTPServer, threading.Thread]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _handle(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
            if len(body) < n:
                # The client died mid-body (the kill tests do that on purpose): like any
                # HTTP server, treat the truncated request as never received.
                self.close_connection = True
                return
            req = Request(
                self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
            )
            if sink.handler is not None:
                status, headers, out = sink.handler(req)
            else:
                status, headers, out = _default_webhook(sink, req)
            with sink.lock:
                sink.requests.append(req)
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_POST = _handle
        do_GET = _handle

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a client killed mid-request (the kill tests do that on purpose)

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


def _default_webhook(sink: Sink, req: Request) -> tuple[int, dict[str, str], bytes]:
    """A receiver that checks the signature and de-duplicates by Idempotency-Key."""
    sig = req.headers.get("x-huitouke-signature", "")
    if not sig or not verify_signature_independently(WEBHOOK_SECRET, sig, req.body):
        with sink.lock:
            sink.bad_signatures += 1
        return 401, {}, b"bad signature"
    key = req.headers["idempotency-key"]
    with sink.lock:
        sink.arrivals[key] += 1
        sink.accepted.setdefault(key, len(sink.accepted) + 1)
        rid = sink.accepted[key]
    return 200, {"Content-Type": "application/json"}, json.dumps({"id": f"rcv-{rid}"}).encode()


@pytest.fixture
def sink() -> Iterator[Sink]:
    holder: dict[str, Any] = {}
    s = Sink(url="")
    server, thread = _serve(s)
    s.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    holder["server"] = server
    try:
        yield s
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SmtpCapture:
    host: str
    port: int
    messages: list[Any] = field(default_factory=list)
    envelopes: list[Any] = field(default_factory=list)


@pytest.fixture
def smtp_server() -> Iterator[SmtpCapture]:
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message as MessageHandler

    capture = SmtpCapture(host="127.0.0.1", port=0)

    class Handler(MessageHandler):
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            capture.envelopes.append(envelope)
            return await super().handle_DATA(server, session, envelope)

        def handle_message(self, message: Any) -> None:
            capture.messages.append(message)

    capture.port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=capture.port)
    controller.start()
    try:
        yield capture
    finally:
        controller.stop()


def add_customers(store: Store, rows: list[dict[str, Any]]) -> None:
    now = datetime.now(UTC)
    full = []
    for r in rows:
        row = {
            "customer_id": r["customer_id"],
            "name": r.get("name"),
            "phone": r.get("phone"),
            "email": r.get("email"),
            "birthday": None,
            "tags": [],
            "attributes": {},
            "consent": r.get("consent", {}),
            "timezone": r.get("timezone"),
            "created_at": now,
            "updated_at": now,
        }
        full.append(row)
    with store.begin() as conn:
        for i in range(0, len(full), 1000):
            conn.execute(insert(customers), full[i : i + 1000])
