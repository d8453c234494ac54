"""Private domain on WeCom: the callback use case and the follow-ups WeCom needs in time.

The add-contact callback must be answered within 5 seconds and its welcome code is valid
for 20, so the work is split:

1. :func:`receive_callback` verifies and decrypts the body (401-worthy when it is not
   WeCom's), records the event once (a redelivery changes nothing), then applies it in its
   own unit of work — link the contact to a customer (:func:`huitouke.wecom.service.
   link_contact`), record consent for the ``wecom_contact`` channel through the one consent
   use case, sync tags — and commits; a failure is kept on the event with its reason
   (``huitouke wecom events --failed``, :func:`retry_event`).
2. :func:`run_followups` (after the answer is sent) sends the welcome message with the
   survey link and mirrors the code's tags in WeCom, and records how that went.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from huitouke.app.consent import set_consents
from huitouke.core.sealed import open_sealed, seal
from huitouke.errors import ConfigError, HuitoukeError, NotFoundError
from huitouke.identity.keys import identity_secret
from huitouke.messaging.channels.base import ChannelError
from huitouke.messaging.channels.wecom_api import WeComClient
from huitouke.settings import Settings
from huitouke.store.db import Store
from huitouke.wecom import service as wecom
from huitouke.wecom.crypto import WeComCrypto, WeComCryptoError
from huitouke.wecom.tables import wecom_contacts, wecom_events

__all__ = [
    "CallbackOutcome",
    "receive_callback",
    "retry_event",
    "run_followups",
    "survey_contact",
    "survey_link",
    "verify_url",
    "wecom_client",
    "wecom_crypto",
]

SURVEY_PURPOSE = "wecom-survey"
_ADD = {"add_external_contact", "add_half_external_contact"}


def _not_configured(names: list[str]) -> ConfigError:
    return ConfigError(
        f"WeCom is not configured: set {', '.join(names)}",
        code="settings.channel_missing",
        message_zh=f"企业微信未配置:请设置 {', '.join(names)}",
        details={"settings": names},
    )


def wecom_crypto(settings: Settings) -> WeComCrypto:
    token = settings.wecom_callback_token.get_secret_value()
    key = settings.wecom_encoding_aes_key.get_secret_value()
    missing = [
        n for n, v in (("HUITOUKE_WECOM_CORP_ID", settings.wecom_corp_id),
                       ("HUITOUKE_WECOM_CALLBACK_TOKEN", token),
                       ("HUITOUKE_WECOM_ENCODING_AES_KEY", key)) if not v
    ]  # fmt: skip
    if missing:
        raise _not_configured(missing)
    return WeComCrypto(token=token, encoding_aes_key=key, receive_id=settings.wecom_corp_id)


def wecom_client(settings: Settings) -> WeComClient:
    secret = settings.wecom_contact_secret.get_secret_value()
    missing = [
        n for n, v in (("HUITOUKE_WECOM_CORP_ID", settings.wecom_corp_id),
                       ("HUITOUKE_WECOM_CONTACT_SECRET", secret)) if not v
    ]  # fmt: skip
    if missing:
        raise _not_configured(missing)
    return WeComClient(settings.wecom_api_base_url, settings.wecom_corp_id, secret)


def verify_url(
    settings: Settings, msg_signature: str, timestamp: str, nonce: str, echostr: str
) -> str:
    """The decrypted ``echostr`` WeCom's URL check expects back; raises
    :class:`WeComCryptoError` when the request is not WeCom's."""
    return wecom_crypto(settings).open(msg_signature, timestamp, nonce, echostr)


@dataclass
class CallbackOutcome:
    """What a callback did: ``duplicate``, ``ignored``, ``applied`` or ``failed``."""

    status: str
    event: wecom.Event | None = None
    event_id: int | None = None
    customer_id: str | None = None
    linked: wecom.Linked | None = None
    reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _encrypted_part(body: bytes) -> str:
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise WeComCryptoError("xml") from None
    encrypted = (root.findtext("Encrypt") or "").strip()
    if not encrypted:
        raise WeComCryptoError("xml")
    return encrypted


def receive_callback(
    store: Store,
    settings: Settings,
    client: WeComClient,
    *,
    body: bytes,
    msg_signature: str,
    timestamp: str,
    nonce: str,
    now: datetime,
) -> CallbackOutcome:
    """Verify, record once, apply (see the module). Raises :class:`WeComCryptoError` when
    the body is not WeCom's — nothing is stored then."""
    crypto = wecom_crypto(settings)
    plain = crypto.open(msg_signature, timestamp, nonce, _encrypted_part(body))
    event = wecom.parse_event(plain)
    if event.event == "change_external_chat":
        return _receive_chat(store, settings, client, wecom.parse_chat_event(plain), now=now)
    if event.event != "change_external_contact" or not event.external_userid:
        return CallbackOutcome("ignored", event)
    with store.begin() as conn:
        event_id, new, status = wecom.record_event(conn, event, now=now)
    if not new and status != "received":
        # applied, ignored or failed before: a redelivery changes nothing (a failed one is
        # retried on purpose, `huitouke wecom retry`)
        return CallbackOutcome("duplicate", event, event_id)
    # new — or received before by a process that stopped before applying it
    return _apply(store, settings, client, event, event_id, now=now)


def _apply(
    store: Store,
    settings: Settings,
    client: WeComClient,
    event: wecom.Event,
    event_id: int,
    *,
    now: datetime,
) -> CallbackOutcome:
    try:
        contact = (
            client.get_external_contact(event.external_userid)
            if event.change_type in _ADD or event.change_type == "edit_external_contact"
            else {}
        )
        with store.begin() as conn:
            linked = None
            customer_id: str | None = None
            if event.change_type in _ADD:
                linked = wecom.link_contact(
                    conn, contact, event,
                    secret=identity_secret(settings.secret_key.get_secret_value()),
                    region=settings.phone_region, now=now,
                )  # fmt: skip
                customer_id = linked.customer_id
                # the customer added the staff member: their own choice to be reached there
                set_consents(conn, {customer_id: {wecom.CHANNEL: True}}, source="wecom", at=now)
            elif event.change_type in ("del_external_contact", "del_follow_user"):
                customer_id = wecom.mark_removed(conn, event, now=now)
                if customer_id is not None:
                    # the customer deleted the staff member: their choice; the staff member
                    # deleting them: no longer reachable, but not the customer's choice
                    set_consents(
                        conn, {customer_id: {wecom.CHANNEL: False}}, source="wecom", at=now,
                        explicit=event.change_type == "del_external_contact",
                    )  # fmt: skip
            elif event.change_type == "edit_external_contact":
                customer_id = wecom.sync_tags(conn, contact, event, now=now)
            status = "applied" if customer_id is not None else "ignored"
            wecom.set_event_status(conn, event_id, status, None)
        return CallbackOutcome(status, event, event_id, customer_id, linked)
    except (HuitoukeError, ChannelError) as exc:
        reason = f"{getattr(exc, 'code', 'error')}: {exc}"
        with store.begin() as conn:
            wecom.set_event_status(conn, event_id, "failed", reason[:1000])
        return CallbackOutcome("failed", event, event_id, reason=reason)


def _receive_chat(
    store: Store, settings: Settings, client: WeComClient, chat: wecom.ChatEvent, *, now: datetime
) -> CallbackOutcome:
    """A customer-group event: members joining (``update`` / ``add_member``) are recorded
    with the group's member list (``groupchat/get``); other group changes are ignored."""
    event = chat.as_event()
    if (chat.change_type, chat.update_detail) != ("update", "add_member"):
        return CallbackOutcome("ignored", event)
    with store.begin() as conn:
        event_id, new, status = wecom.record_event(conn, event, now=now)
    if not new and status != "received":
        return CallbackOutcome("duplicate", event, event_id)
    return _apply_chat(store, settings, client, chat, event_id, now=now)


def _apply_chat(
    store: Store,
    settings: Settings,
    client: WeComClient,
    chat: wecom.ChatEvent,
    event_id: int,
    *,
    now: datetime,
) -> CallbackOutcome:
    event = chat.as_event()
    try:
        group = client.group_chat(chat.chat_id)
        with store.begin() as conn:
            joins = wecom.record_group_joins(
                conn, chat, group, event_id,
                secret=identity_secret(settings.secret_key.get_secret_value()), now=now,
            )  # fmt: skip
            status = "applied" if joins else "ignored"
            wecom.set_event_status(conn, event_id, status, None)
        linked = sorted({j["customer_id"] for j in joins if j["customer_id"]})
        return CallbackOutcome(
            status, event, event_id, linked[0] if linked else None,
            extra={"joins": [{k: j[k] for k in ("chat_id", "external_userid", "join_scene",
                                                 "code", "customer_id")} for j in joins]},
        )  # fmt: skip
    except (HuitoukeError, ChannelError) as exc:
        reason = f"{getattr(exc, 'code', 'error')}: {exc}"
        with store.begin() as conn:
            wecom.set_event_status(conn, event_id, "failed", reason[:1000])
        return CallbackOutcome("failed", event, event_id, reason=reason)


def survey_link(settings: Settings, external_userid: str) -> str:
    token = seal(settings.secret_key.get_secret_value(), SURVEY_PURPOSE, external_userid.encode())
    return f"{settings.public_base_url.rstrip('/')}/w/{token}"


def survey_contact(settings: Settings, token: str) -> str:
    """The external contact a survey link was made for; :class:`NotFoundError` otherwise."""
    raw = open_sealed(settings.secret_key.get_secret_value(), SURVEY_PURPOSE, token)
    if raw is None:
        raise NotFoundError(
            "this survey link is not known", code="wecom.unknown_contact",
            message_zh="问卷链接无效", details={},
        )  # fmt: skip
    return raw.decode("utf-8")


def run_followups(
    store: Store, settings: Settings, client: WeComClient, outcome: CallbackOutcome, *, lang: str
) -> None:
    """After an add: the welcome message (with the survey link when the code has a survey)
    and the code's tags in WeCom; the result is recorded on the contact."""
    if outcome.status != "applied" or outcome.linked is None or outcome.event is None:
        return
    event, linked = outcome.event, outcome.linked
    status, error = "none", None
    try:
        if event.welcome_code and linked.welcome:
            zh = lang.startswith("zh")
            text = linked.welcome["zh" if zh else "en"]
            links: list[dict[str, str]] = []
            if linked.welcome.get("survey"):
                links.append(
                    {"title": "问卷" if zh else "A short survey",
                     "url": survey_link(settings, event.external_userid)}
                )  # fmt: skip
            if linked.welcome.get("group_qr"):
                links.append(
                    {"title": "加入售后群" if zh else "Join the after-sales group",
                     "url": linked.welcome["group_qr"]}
                )  # fmt: skip
            client.send_welcome_msg(event.welcome_code, text, links)
            status = "sent"
        if linked.tags:
            wecom.apply_wecom_tags(client, event.user_id, event.external_userid, linked.tags)
    except ChannelError as exc:
        status, error = "failed", f"{exc.code}: {exc}"[:1000]
    with store.begin() as conn:
        conn.execute(
            update(wecom_contacts)
            .where(wecom_contacts.c.external_userid == event.external_userid)
            .values(welcome=status, welcome_error=error)
        )


def retry_event(
    store: Store, settings: Settings, client: WeComClient, event_id: int, *, now: datetime
) -> CallbackOutcome:
    """Apply a failed event again (its welcome code has expired: no welcome message)."""
    with store.connect() as conn:
        row = (
            conn.execute(select(wecom_events).where(wecom_events.c.event_id == event_id))
            .mappings()
            .first()
        )
    if row is None:
        raise NotFoundError(
            f"no WeCom event {event_id}", code="wecom.unknown_event",
            message_zh=f"没有编号为 {event_id} 的企业微信事件", details={"event_id": event_id},
        )  # fmt: skip
    if row["event"] == "change_external_chat":
        change, _, detail = str(row["change_type"]).partition(":")
        chat = wecom.ChatEvent(
            chat_id=row["user_id"], change_type=change, update_detail=detail,
            create_time=int(row["create_time"]),
        )  # fmt: skip
        return _apply_chat(store, settings, client, chat, event_id, now=now)
    event = wecom.Event(
        event=row["event"], change_type=row["change_type"], user_id=row["user_id"],
        external_userid=row["external_userid"], create_time=int(row["create_time"]),
        state=row["state"],
    )  # fmt: skip
    return _apply(store, settings, client, event, event_id, now=now)


def follow_user_of(conn: Any, external_userid: str) -> str:
    """The staff member who added the contact."""
    row = conn.execute(
        select(wecom_contacts.c.follow_user).where(
            wecom_contacts.c.external_userid == external_userid
        )
    ).first()
    return str(row.follow_user) if row else ""


def mirror_tags(
    client: WeComClient, follow_user: str, external_userid: str, tags: list[str]
) -> None:
    """Survey tags mirrored on the contact in WeCom, after the answer page was sent. Best
    effort: a failure is not retried (the answers and tags are kept here regardless)."""
    try:
        wecom.apply_wecom_tags(client, follow_user, external_userid, tags)
    except ChannelError:
        return
