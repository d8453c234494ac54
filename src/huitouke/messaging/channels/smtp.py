"""Email over SMTP (smtplib), HTML + text, with one-click unsubscribe.

Each message is a ``multipart/alternative`` (text, then HTML) with a ``Message-ID`` made of
the outbox ``message_id`` (``<message_id@sender-domain>``), ``List-Unsubscribe`` carrying the
signed unsubscribe link and ``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 8058),
so mail clients show an unsubscribe button that works with one POST.

Exactly-once over SMTP: once the server has answered ``250`` to ``DATA`` the message is
accepted, and nothing in SMTP lets a client ask "did you already take this one?". If the
worker dies after that ``250`` and before the outbox row is marked sent, the two honest
choices are to send again (*at least once*: a duplicate with the same ``Message-ID``, which
many mail stores and clients fold together) or to never send again (*at most once*: the row
goes to dead letters as ``crash.unknown`` for a person to check). The default is at least
once; ``delivery="at_most_once"`` or the setting ``HUITOUKE_AT_MOST_ONCE_CHANNELS=email``
switches. The window is bounded by the dispatcher: at most ``concurrency + mark_every``
messages are answered or on the wire without being recorded.
"""

from __future__ import annotations

import contextlib
import html as htmllib
import smtplib
import ssl
import threading
from datetime import UTC, datetime
from email import policy as email_policy
from email.message import EmailMessage
from email.utils import formatdate

from huitouke.messaging.channels.base import (
    Delivery,
    OutgoingMessage,
    PermanentSendError,
    SendResult,
    TransientSendError,
)
from huitouke.messaging.tokens import make_unsubscribe_token, unsubscribe_url

__all__ = ["SmtpChannel"]

_POLICY = email_policy.SMTP.clone(max_line_length=998)

_FOOTER = {
    "zh": "不想再收到这类邮件?退订:{url}",
    "en": "Don't want these emails? Unsubscribe: {url}",
}


class SmtpChannel:
    """Send through one SMTP server; one connection per sending thread, reused."""

    name = "email"

    def __init__(
        self,
        host: str,
        port: int = 587,
        *,
        from_addr: str,
        secret: str,
        public_base_url: str,
        username: str = "",
        password: str = "",
        starttls: bool = False,
        use_ssl: bool = False,
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        delivery: Delivery = "at_least_once",
    ) -> None:
        self.host = host
        self.port = port
        self.from_addr = from_addr
        self.secret = secret
        self.public_base_url = public_base_url
        self.username = username
        self.password = password
        self.starttls = starttls
        self.use_ssl = use_ssl
        self.timeout = timeout
        self.ssl_context = ssl_context or ssl.create_default_context()
        self.delivery: Delivery = delivery
        self._local = threading.local()
        self._all: list[smtplib.SMTP] = []
        self._lock = threading.Lock()
        self.domain = from_addr.rsplit("@", 1)[-1].strip(">") or "huitouke.local"

    # -- wire format ---------------------------------------------------------------------
    def message_id_header(self, message_id: str) -> str:
        return f"<{message_id}@{self.domain}>"

    def build(self, message: OutgoingMessage) -> EmailMessage:
        if not message.recipient or "@" not in message.recipient:
            raise PermanentSendError(
                f"message {message.message_id} has no email address", code="email.no_address"
            )
        lang = str(message.rendered.get("lang", "zh"))
        token = make_unsubscribe_token(
            message.customer_id, "email", self.secret, message_id=message.message_id
        )
        unsub = unsubscribe_url(self.public_base_url, token)
        text = str(message.rendered.get("text", ""))
        html = message.rendered.get("html")
        subject = str(
            message.rendered.get("subject") or (text.splitlines()[0][:60] if text else "")
        )
        footer = _FOOTER.get(lang, _FOOTER["en"]).format(url=unsub)
        if message.kind == "marketing" and unsub not in text:
            text = f"{text}\n\n--\n{footer}"
        if html is None:
            html = (
                "<p>"
                + htmllib.escape(str(message.rendered.get("text", ""))).replace("\n", "<br>")
                + "</p>"
            )
        html = str(html)
        if message.kind == "marketing" and unsub not in html:
            link = f'<a href="{htmllib.escape(unsub)}">{htmllib.escape(unsub)}</a>'
            html += (
                '<hr><p style="font-size:12px;color:#888">'
                + htmllib.escape(footer).replace(htmllib.escape(unsub), link)
                + "</p>"
            )

        # Long header lines are allowed (RFC 5322: 998): a folded or RFC 2047-encoded
        # List-Unsubscribe URL would not be a URL any more.
        mail = EmailMessage(policy=_POLICY)
        mail["From"] = self.from_addr
        mail["To"] = message.recipient
        mail["Subject"] = subject
        mail["Date"] = formatdate(localtime=False, usegmt=True)
        mail["Message-ID"] = self.message_id_header(message.message_id)
        mail["List-Unsubscribe"] = f"<{unsub}>"
        mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        mail["X-Huitouke-Message-Id"] = message.message_id
        mail["Content-Language"] = "zh-CN" if lang == "zh" else "en"
        mail.set_content(text)
        mail.add_alternative(html, subtype="html")
        return mail

    # -- connection ----------------------------------------------------------------------
    def _connect(self) -> smtplib.SMTP:
        try:
            conn: smtplib.SMTP
            if self.use_ssl:
                conn = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout, context=self.ssl_context
                )
            else:
                conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            conn.ehlo()
            if self.starttls and not self.use_ssl:
                conn.starttls(context=self.ssl_context)
                conn.ehlo()
            if self.username:
                conn.login(self.username, self.password)
        except smtplib.SMTPAuthenticationError as exc:
            raise PermanentSendError(
                f"SMTP login refused: {exc}", code=f"smtp.{exc.smtp_code}"
            ) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientSendError(
                f"cannot reach SMTP server {self.host}:{self.port}: {exc}", code="smtp.connect"
            ) from exc
        with self._lock:
            self._all.append(conn)
        return conn

    def _conn(self) -> smtplib.SMTP:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.close()

    def send(self, message: OutgoingMessage) -> SendResult:
        mail = self.build(message)
        for attempt in (1, 2):
            conn = self._conn()
            try:
                refused = conn.send_message(mail)
            except smtplib.SMTPServerDisconnected as exc:
                # A pooled connection the server closed: reconnect once, before DATA was sent.
                self._drop()
                if attempt == 2:
                    raise TransientSendError(
                        f"SMTP server disconnected: {exc}", code="smtp.disconnected"
                    ) from exc
                continue
            except smtplib.SMTPRecipientsRefused as exc:
                codes = [code for code, _ in exc.recipients.values()]
                cls = (
                    PermanentSendError
                    if codes and all(c >= 500 for c in codes)
                    else TransientSendError
                )
                raise cls(
                    f"recipient refused: {exc.recipients}",
                    code=f"smtp.{codes[0] if codes else 'refused'}",
                ) from exc
            except smtplib.SMTPResponseException as exc:
                self._drop()
                cls = PermanentSendError if exc.smtp_code >= 500 else TransientSendError
                raise cls(
                    f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", code=f"smtp.{exc.smtp_code}"
                ) from exc
            except (OSError, smtplib.SMTPException) as exc:
                self._drop()
                raise TransientSendError(f"SMTP error: {exc}", code="smtp.error") from exc
            if refused:
                raise PermanentSendError(f"recipient refused: {refused}", code="smtp.refused")
            return SendResult(
                provider="smtp",
                provider_message_id=str(mail["Message-ID"]),
                detail={"smtp": "250 accepted", "to": message.recipient},
                sent_at=datetime.now(UTC),
            )
        raise TransientSendError("SMTP send failed", code="smtp.error")  # pragma: no cover

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            try:
                conn.quit()
            except (OSError, smtplib.SMTPException):
                with contextlib.suppress(OSError):
                    conn.close()
