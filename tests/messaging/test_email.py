"""Email through a real SMTP server (aiosmtpd on loopback), end to end through the outbox."""

from __future__ import annotations

from datetime import UTC, datetime
from email.header import decode_header, make_header
from pathlib import Path
from typing import Any

from msg_support import SmtpCapture, add_customers
from sqlalchemy import select

from huitouke.messaging.channels.base import OutgoingMessage
from huitouke.messaging.channels.smtp import SmtpChannel
from huitouke.messaging.dispatcher import Dispatcher
from huitouke.messaging.outbox import OutboxMessage, enqueue
from huitouke.messaging.rules import ContactPolicy
from huitouke.messaging.tables import delivery_receipts, outbox
from huitouke.messaging.tokens import verify_unsubscribe_token
from huitouke.store.db import Store

NOON = datetime(2026, 5, 6, 4, 0, tzinfo=UTC)
SECRET = "test-secret-key"


def channel(smtp: SmtpCapture) -> SmtpChannel:
    return SmtpChannel(
        smtp.host,
        smtp.port,
        from_addr="回头客咖啡 <shop@huitouke.test>",
        secret=SECRET,
        public_base_url="https://shop.example/",
    )


def test_email_arrives_with_unsubscribe_headers(store: Store, smtp_server: SmtpCapture) -> None:
    add_customers(
        store, [{"customer_id": "c1", "email": "wang@example.cn", "consent": {"email": True}}]
    )
    m = OutboxMessage(
        journey_id="winback",
        customer_id="c1",
        step_id="care",
        occurrence="2026-05",
        channel="email",
        recipient="wang@example.cn",
        rendered={
            "lang": "zh",
            "subject": "好久不见,送您一张券",
            "text": "王芳您好,好久不见。",
            "html": "<p>王芳您好,<b>好久不见</b>。</p>",
        },
    )
    with store.begin() as conn:
        enqueue(conn, [m], now=NOON)
    ch = channel(smtp_server)
    stats = Dispatcher(
        store, {"email": ch}, lambda: NOON, policy=ContactPolicy(default_zone="Asia/Shanghai")
    ).drain()
    ch.close()
    assert stats.sent == 1
    assert len(smtp_server.messages) == 1
    mail = smtp_server.messages[0]
    assert smtp_server.envelopes[0].rcpt_tos == ["wang@example.cn"]
    assert mail["Message-ID"] == f"<{m.message_id}@huitouke.test>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = mail["List-Unsubscribe"].strip("<>")
    assert link.startswith("https://shop.example/u/")
    claim = verify_unsubscribe_token(link.rsplit("/", 1)[1], SECRET)
    assert (claim.customer_id, claim.channel, claim.message_id) == ("c1", "email", m.message_id)
    # Non-ASCII headers travel as RFC 2047 encoded words.
    assert str(make_header(decode_header(mail["Subject"]))) == "好久不见,送您一张券"
    assert "回头客咖啡" in str(make_header(decode_header(mail["From"])))
    assert mail.get_content_type() == "multipart/alternative"
    parts = {
        p.get_content_type(): p.get_payload(decode=True).decode(p.get_content_charset())
        for p in mail.get_payload()
    }
    assert "好久不见" in parts["text/plain"] and link in parts["text/plain"]
    assert "<b>好久不见</b>" in parts["text/html"] and link in parts["text/html"]
    with store.connect() as conn:
        row = conn.execute(select(outbox)).one()
        receipt = conn.execute(select(delivery_receipts)).one()
    assert row.status == "sent" and row.provider_message_id == mail["Message-ID"]
    assert receipt.provider == "smtp" and receipt.status == "accepted"


def test_connection_is_reused_and_refusals_classified(smtp_server: SmtpCapture) -> None:
    ch = channel(smtp_server)
    for i in range(3):
        ch.send(
            OutgoingMessage(
                message_id=f"m{i}",
                customer_id="c",
                channel="email",
                kind="transactional",
                recipient="a@example.com",
                rendered={"text": "您的订单已发货", "lang": "zh"},
            )
        )
    assert len(ch._all) == 1 and len(smtp_server.messages) == 3
    # A transactional mail carries no unsubscribe footer in its text, but still the header.
    assert "退订" not in smtp_server.messages[0].get_payload()[0].get_payload(decode=True).decode()
    ch.close()


def test_unreachable_server_is_transient() -> None:
    import pytest
    from msg_support import free_port

    from huitouke.messaging.channels.base import PermanentSendError, TransientSendError

    ch = SmtpChannel(
        "127.0.0.1",
        free_port(),
        from_addr="a@b.c",
        secret="s",
        public_base_url="http://x",
        timeout=2,
    )
    msg = OutgoingMessage(
        message_id="m",
        customer_id="c",
        channel="email",
        kind="marketing",
        recipient="x@y.z",
        rendered={"text": "hi"},
    )
    with pytest.raises(TransientSendError):
        ch.send(msg)
    with pytest.raises(PermanentSendError):
        ch.send(
            OutgoingMessage(
                message_id="m",
                customer_id="c",
                channel="email",
                kind="marketing",
                recipient=None,
                rendered={"text": "hi"},
            )
        )


def test_starttls_and_login(tmp_path: Path) -> None:
    """STARTTLS upgrade and AUTH against a real aiosmtpd server with a throw-away certificate."""
    import shutil
    import ssl
    import subprocess

    import pytest
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult
    from msg_support import free_port

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(str(cert), str(key))
    got: list[Any] = []
    tls_seen: list[bool] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            tls_seen.append(session.ssl is not None)
            got.append(envelope)
            return "250 OK"

    def authenticator(
        server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = auth_data.login == b"shop" and auth_data.password == b"pw"
        return AuthResult(success=ok)

    port = free_port()
    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=port,
        tls_context=server_ctx,
        require_starttls=True,
        authenticator=authenticator,
        auth_require_tls=True,
    )
    controller.start()
    try:
        client_ctx = ssl.create_default_context(cafile=str(cert))
        ch = SmtpChannel(
            "127.0.0.1",
            port,
            from_addr="shop@huitouke.test",
            secret=SECRET,
            public_base_url="https://shop.example",
            username="shop",
            password="pw",
            starttls=True,
            ssl_context=client_ctx,
        )
        ch.send(
            OutgoingMessage(
                message_id="m-tls",
                customer_id="c",
                channel="email",
                kind="transactional",
                recipient="a@example.com",
                rendered={"text": "您的订单已发货", "lang": "zh"},
            )
        )
        ch.close()
        assert tls_seen == [True] and got[0].rcpt_tos == ["a@example.com"]
        from huitouke.messaging.channels.base import PermanentSendError

        plain = SmtpChannel(
            "127.0.0.1",
            port,
            from_addr="shop@huitouke.test",
            secret=SECRET,
            public_base_url="https://shop.example",
            starttls=False,
            timeout=5,
        )
        # The server insists on STARTTLS: a plain-text client is refused, permanently.
        with pytest.raises(PermanentSendError) as err:
            plain.send(
                OutgoingMessage(
                    message_id="m2",
                    customer_id="c",
                    channel="email",
                    kind="transactional",
                    recipient="a@example.com",
                    rendered={"text": "x"},
                )
            )
        assert err.value.code == "smtp.530"
    finally:
        controller.stop()
