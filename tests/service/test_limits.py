"""Request bodies: a size limit checked before the body is read, and authentication before
a byte of it is read — through ``create_app()`` and against a real ``huitouke serve`` (raw
sockets, so the test controls what is sent: headers that announce 300 MB, then nothing)."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from huitouke.messaging.bootstrap import inbound_token
from huitouke.service import create_app
from huitouke.settings import Settings
from huitouke.store.db import Store

from .conftest import Keys, make_keys
from .live import LiveServer

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

MIB = 1024 * 1024


def _json_of(size: int) -> bytes:
    """A JSON object of about ``size`` bytes."""
    return json.dumps({"order_id": "x", "pad": "p" * size}).encode()


@pytest.fixture
def guarded(settings: Settings, store: Store) -> Iterator[tuple[TestClient, Keys]]:
    keys = make_keys(store)
    with TestClient(create_app(settings, store), raise_server_exceptions=False) as c:
        yield c, keys


def test_oversize_body_is_413_with_a_stable_code(guarded: tuple[TestClient, Keys]) -> None:
    c, keys = guarded
    body = _json_of(3 * MIB)
    r = c.post(
        "/v1/orders",
        content=body,
        headers=keys.h("operator", **{"Content-Type": "application/json"}),
    )
    assert r.status_code == 413
    err = r.json()["error"]
    assert err["code"] == "request.too_large" and err["details"] == {"limit_bytes": 2 * MIB}
    zh = c.post(
        "/v1/orders",
        content=body,
        headers=keys.h("operator", **{"Accept-Language": "zh"}),
    )
    assert zh.status_code == 413 and "请求体过大" in zh.json()["error"]["message"]


def test_a_streamed_body_is_cut_off_at_the_limit(guarded: tuple[TestClient, Keys]) -> None:
    c, keys = guarded

    def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
        yield b'{"pad": "'
        for _ in range(40):
            yield b"p" * 65536
        yield b'"}'

    r = c.post("/v1/orders", content=chunks(), headers=keys.h("operator"))
    assert r.status_code == 413 and r.json()["error"]["code"] == "request.too_large"


def test_batch_endpoint_takes_its_batch_maximum(guarded: tuple[TestClient, Keys]) -> None:
    c, keys = guarded
    # 3 MiB is over the general limit but within 1,000 events × 8 KiB: read, then judged
    r = c.post("/v1/orders/batch", content=_json_of(3 * MIB), headers=keys.h("operator"))
    assert r.status_code == 422, r.text
    big = c.post("/v1/orders/batch", content=_json_of(9 * MIB), headers=keys.h("operator"))
    assert big.status_code == 413
    assert big.json()["error"]["details"] == {"limit_bytes": 1000 * 8192}


def test_authentication_comes_before_the_body(guarded: tuple[TestClient, Keys]) -> None:
    c, keys = guarded
    body = _json_of(3 * MIB)
    assert c.post("/v1/orders", content=body).json()["error"]["code"] == "auth.missing_key"
    wrong = c.post("/v1/orders", content=body, headers={"Authorization": "Bearer htk_x_y"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "auth.invalid_key"
    # the providers' callbacks: the inbound token, checked before the body
    cb = c.post("/v1/inbound/sms?token=wrong", content=body)
    assert cb.status_code == 401 and cb.json()["error"]["code"] == "auth.bad_inbound_token"
    # a small body with a good key goes through as before
    ok = c.post("/v1/orders", json={"order_id": "o1"}, headers=keys.h("operator"))
    assert ok.status_code == 422 and ok.json()["error"]["code"] == "input.invalid"


# -- a real server ------------------------------------------------------------------------


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _response(sock: socket.socket, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    n = int(headers.get("content-length", "0"))
    while len(rest) < n:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return int(lines[0].split()[1]), headers, rest


def _announce(port: int, path: str, length: int, extra: str = "") -> socket.socket:
    """Headers announcing ``length`` bytes of body, and 1 KiB of it — no more."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(
        (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n{extra}\r\n"
        ).encode()
        + b"{" * 1024
    )
    return sock


def _stream(port: int, path: str, extra: str, total: int) -> tuple[int, bytes, int]:
    """Send up to ``total`` bytes in 64 KiB chunks; stop when the server answers.
    Returns (status, body, bytes sent)."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(
        (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Transfer-Encoding: chunked\r\n{extra}\r\n"
        ).encode()
    )
    chunk = b"10000\r\n" + b"p" * 65536 + b"\r\n"
    sent = 0
    try:
        while sent < total:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 65536
        status, _, body = _response(sock)
        return status, body, sent
    finally:
        sock.close()


@pytest.mark.slow
def test_a_real_serve_rejects_big_bodies_unread_and_stays_responsive(
    store_url: str, store: Store, tmp_path: Path
) -> None:
    keys = make_keys(store)
    server = LiveServer(store_url, tmp_path / "server.log").start()
    assert server.proc is not None
    pid, port = server.proc.pid, server.port
    auth = f"Authorization: Bearer {keys.operator}\r\n"
    try:
        rss_before = _rss_kib(pid)
        # 300 MB announced, 1 KiB sent: the answer comes without the rest
        for extra, status, code in [
            ("", 401, "auth.missing_key"),
            (auth, 413, "request.too_large"),
        ]:
            sock = _announce(port, "/v1/orders", 300_000_000, extra)
            try:
                got, headers, body = _response(sock)
            finally:
                sock.close()
            assert got == status and json.loads(body)["error"]["code"] == code
            assert headers.get("connection") == "close"
        token = inbound_token(Settings())
        sock = _announce(port, "/v1/inbound/sms?token=wrong", 300_000_000)
        try:
            assert _response(sock)[0] == 401
        finally:
            sock.close()
        assert inbound_token(Settings()) == token

        # bodies streamed without a length, by several clients at once, while /health is
        # polled: each is cut off near the limit, and /health keeps answering at once
        latencies: list[float] = []
        statuses: list[int] = []
        stop = threading.Event()

        def poll() -> None:
            with httpx.Client(base_url=server.base_url, timeout=30) as http:
                while not stop.is_set() or len(latencies) < 20:
                    t0 = time.perf_counter()
                    statuses.append(http.get("/health").status_code)
                    latencies.append(time.perf_counter() - t0)
                    time.sleep(0.02)

        poller = threading.Thread(target=poll)
        poller.start()
        results: list[tuple[int, bytes, int]] = []
        try:
            threads = [
                threading.Thread(
                    target=lambda extra=extra: results.append(
                        _stream(port, "/v1/orders", extra, 300 * MIB)
                    )
                )
                for extra in [auth, auth, auth, ""]
            ]
            for th in threads:
                th.start()
            for th in threads:
                th.join(120)
        finally:
            stop.set()
            poller.join(60)
        assert sorted(r[0] for r in results) == [401, 413, 413, 413]
        for _status, body, sent in results:
            assert json.loads(body)["error"]["code"] in ("request.too_large", "auth.missing_key")
            assert sent < 64 * MIB  # cut off, not read to the end (socket buffers aside)
        assert set(statuses) == {200} and len(latencies) >= 20
        assert max(latencies) < 1.0, max(latencies)
        grown_mib = (_rss_kib(pid) - rss_before) / 1024
        assert grown_mib < 64, f"server grew by {grown_mib:.0f} MiB"
        with httpx.Client(base_url=server.base_url, timeout=30) as http:
            r = http.post("/v1/orders", json={"order_id": "o1"}, headers=keys.h("operator"))
            assert r.status_code == 422  # the server still serves normal requests
    finally:
        server.stop()


# -- what is decided before the body: raw ASGI, so the test sees every read of the body ----


def _asgi_call(
    app: object, method: str, path: str, headers: dict[str, str], body: bytes
) -> tuple[int, bytes, int]:
    """Call the ASGI app once; returns (status, response body, times the body was read)."""
    import anyio

    reads = 0
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    raw_path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": raw_path,
        "raw_path": raw_path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 1234),
        "server": ("test", 80),
    }
    assert callable(app)
    anyio.run(app, scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    out = b"".join(
        m.get("body", b"")  # type: ignore[misc]
        for m in sent
        if m["type"] == "http.response.body"
    )
    return int(start["status"]), out, reads  # type: ignore[call-overload]


def test_a_read_key_is_refused_before_a_write_endpoint_reads_the_body(
    settings: Settings, store: Store
) -> None:
    keys = make_keys(store)
    app = create_app(settings, store)
    small = json.dumps({"order_id": "o1"}).encode()
    for path, body in [
        ("/v1/orders", small),
        ("/v1/orders/batch", small),
        ("/v1/journeys", small),
        ("/v1/orders", _json_of(3 * MIB)),  # over the limit too: the scope is judged first
    ]:
        headers = keys.h("read", **{"Content-Length": str(len(body))})
        status, out, reads = _asgi_call(app, "POST", path, headers, body)
        assert status == 403, (path, out)
        assert json.loads(out)["error"]["code"] == "auth.forbidden"
        assert reads == 0, f"{path}: the body was read before the scope was checked"
    # a key of the endpoint's scope: the body is read and judged as before
    status, out, reads = _asgi_call(
        app, "POST", "/v1/orders", keys.h("operator", **{"Content-Length": str(len(small))}), small
    )
    assert status == 422 and reads >= 1
    # through the HTTP client too: a read key's big body is 403, not 413
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post("/v1/orders", content=_json_of(3 * MIB), headers=keys.h("read"))
        assert r.status_code == 403 and r.json()["error"]["code"] == "auth.forbidden"
        ok = c.get("/v1/customers/nobody", headers=keys.h("read"))
        assert ok.status_code == 404  # reads stay open to read keys


def test_unsubscribe_checks_its_token_before_the_body(settings: Settings, store: Store) -> None:
    from huitouke.messaging.tokens import make_unsubscribe_token

    app = create_app(settings, store)
    form = b"List-Unsubscribe=One-Click"
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Content-Length": str(len(form)),
    }
    for token in ["not-a-token", "x" * 200]:
        status, out, reads = _asgi_call(app, "POST", f"/u/{token}", headers, form)
        assert 400 <= status < 500, out
        assert reads == 0, "the body was read before the token was verified"
    forged = make_unsubscribe_token("c1", "email", "another-secret")
    status, _, reads = _asgi_call(app, "POST", f"/u/{forged}", headers, form)
    assert 400 <= status < 500 and reads == 0
