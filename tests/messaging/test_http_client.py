"""The channels' HTTP client against real loopback sockets: answers, retries and the error codes."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from typing import ClassVar

import pytest

from huitouke.messaging.channels.base import PermanentSendError, TransientSendError
from huitouke.messaging.channels.http import RetryPolicy, make_client, post_with_retries


def _no_sleep() -> RetryPolicy:
    return RetryPolicy(retries=2, sleep=lambda _s: None)


class _Handler(http.server.BaseHTTPRequestHandler):
    answers: ClassVar[list[tuple[int, dict[str, str], bytes]]] = []
    seen: ClassVar[list[tuple[str, bytes, str | None]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).seen.append((self.path, body, self.headers.get("X-Sig")))
        status, headers, out = type(self).answers.pop(0)
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("H", (_Handler,), {"answers": [], "seen": []})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", handler
    finally:
        srv.shutdown()
        srv.server_close()


def test_retries_5xx_then_returns_the_answer_with_fresh_signatures(server) -> None:
    url, h = server
    h.answers += [
        (503, {"Retry-After": "0"}, b"busy"),
        (200, {"Content-Type": "application/json"}, b'{"id": "p-1"}'),
    ]
    calls = iter(["s1", "s2"])
    client = make_client(5.0, 4)
    try:
        resp = post_with_retries(
            client,
            url + "/hook",
            content='{"x":"中文"}'.encode(),
            headers={"Content-Type": "application/json"},
            retry=_no_sleep(),
            sign=lambda: {"X-Sig": next(calls)},
        )
    finally:
        client.close()
    assert resp.status_code == 200
    assert resp.json() == {"id": "p-1"}
    assert resp.headers.get("content-type") == "application/json"  # case-insensitive
    assert [s[2] for s in h.seen] == ["s1", "s2"]
    assert h.seen[0][1] == '{"x":"中文"}'.encode()


def test_4xx_is_permanent_and_names_the_status(server) -> None:
    url, h = server
    h.answers.append((401, {}, b"bad signature"))
    client = make_client(5.0, 4)
    try:
        with pytest.raises(PermanentSendError) as err:
            post_with_retries(client, url, content=b"{}", retry=_no_sleep())
    finally:
        client.close()
    assert err.value.code == "http.401" and "bad signature" in str(err.value)


def test_redirects_are_not_followed(server) -> None:
    url, h = server
    h.answers.append((302, {"Location": "http://127.0.0.1:1/elsewhere"}, b""))
    client = make_client(5.0, 4)
    try:
        with pytest.raises(PermanentSendError) as err:
            post_with_retries(client, url, content=b"{}", retry=_no_sleep())
    finally:
        client.close()
    assert err.value.code == "http.302"


def test_refused_connection_is_transient_http_connect() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    client = make_client(2.0, 2)
    try:
        with pytest.raises(TransientSendError) as err:
            post_with_retries(client, f"http://127.0.0.1:{port}/", content=b"{}", retry=_no_sleep())
    finally:
        client.close()
    assert err.value.code == "http.connect"


def test_a_silent_server_is_a_timeout() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)  # accepts connections, never answers
        client = make_client(0.3, 2)
        try:
            with pytest.raises(TransientSendError) as err:
                post_with_retries(
                    client,
                    f"http://127.0.0.1:{s.getsockname()[1]}/",
                    content=b"{}",
                    retry=_no_sleep(),
                )
        finally:
            client.close()
    assert err.value.code == "http.timeout"
