"""What comes back from providers: SMS replies ("T" to unsubscribe) and delivery reports.

Payload shapes understood (as the providers publish them):

- Aliyun SMS up-link (``SmsUp``): a JSON list of ``{"phone_number", "content", "send_time",
  "sign_name", "dest_code", "sequence_id"}``; delivery reports (``SmsReport``): a list of
  ``{"phone_number", "success", "err_code", "err_msg", "biz_id", "out_id", "report_time"}``.
- Tencent Cloud reply callback: ``{"mobile", "nationcode", "text", "sign", "time"}`` (or a
  list of them); status callback: a list of ``{"mobile", "report_status": "SUCCESS"|"FAIL",
  "errmsg", "description", "sid", "user_receive_time"}``.
- Anything else: ``{"phone"|"from", "text"|"content"}`` for replies and
  ``{"message_id"|"provider_message_id", "status": "delivered"|"failed"}`` for receipts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, insert, or_, select, update

from huitouke.messaging.consent import customer_by_phone, load_customer_contexts, unsubscribe
from huitouke.messaging.tables import delivery_receipts, outbox
from huitouke.messaging.templates import mask_phone

__all__ = [
    "UNSUBSCRIBE_WORDS",
    "InboundSms",
    "Receipt",
    "handle_inbound_sms",
    "is_unsubscribe",
    "parse_inbound_sms",
    "parse_receipts",
    "record_receipts",
]

#: Replies that mean "stop": the seed's 回T退订 (T, TD), the Chinese word, and English STOP.
UNSUBSCRIBE_WORDS = frozenset({"T", "TD", "退订", "STOP", "UNSUBSCRIBE"})
_STRIP = re.compile(r"[\s\.,!?。,!?;;::'\"“”‘’]+")


def is_unsubscribe(text: str) -> bool:
    return _STRIP.sub("", text or "").upper() in UNSUBSCRIBE_WORDS


@dataclass(frozen=True)
class InboundSms:
    phone: str
    text: str


@dataclass(frozen=True)
class Receipt:
    status: str  # delivered | failed | unknown
    message_id: str | None = None
    provider_message_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def _items(payload: Any) -> list[dict[str, Any]]:
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, dict)]
    if isinstance(payload, dict):
        return [payload]
    return []


def parse_inbound_sms(payload: Any) -> list[InboundSms]:
    out = []
    for item in _items(payload):
        phone = (
            item.get("phone_number") or item.get("mobile") or item.get("phone") or item.get("from")
        )
        text = item.get("content") if "content" in item else item.get("text")
        if phone is None or text is None:
            continue
        phone = str(phone)
        if item.get("nationcode") and str(item["nationcode"]) != "86":
            phone = f"+{item['nationcode']}{phone}"
        out.append(InboundSms(phone=phone, text=str(text)))
    return out


def handle_inbound_sms(
    conn: Connection, messages: Iterable[InboundSms], *, now: datetime
) -> list[dict[str, Any]]:
    """Unsubscribe every customer with the sender's number who replied T/TD/退订 (SMS only)."""
    results = []
    for sms in messages:
        entry: dict[str, Any] = {
            "phone": mask_phone(sms.phone),
            "unsubscribe": is_unsubscribe(sms.text),
        }
        if entry["unsubscribe"]:
            ids = customer_by_phone(conn, sms.phone)
            contexts = load_customer_contexts(conn, ids)
            for cid in ids:
                if contexts[cid].is_unsubscribed("sms"):
                    continue  # already out: a repeated "T" changes nothing
                unsubscribe(
                    conn, cid, "sms", source="sms_reply", at=now, detail={"text": sms.text[:40]}
                )
            entry["customers"] = len(ids)
        results.append(entry)
    return results


def parse_receipts(provider: str, payload: Any) -> list[Receipt]:
    out = []
    for item in _items(payload):
        if provider == "aliyun":
            ok = item.get("success")
            ok = ok if isinstance(ok, bool) else str(ok).lower() == "true"
            out.append(
                Receipt(
                    status="delivered" if ok else "failed",
                    message_id=item.get("out_id") or None,
                    provider_message_id=str(item["biz_id"]) if item.get("biz_id") else None,
                    detail={
                        k: item.get(k) for k in ("err_code", "err_msg", "report_time", "sms_size")
                    },
                )
            )
        elif provider == "tencent":
            st = str(item.get("report_status", "")).upper()
            out.append(
                Receipt(
                    status="delivered"
                    if st == "SUCCESS"
                    else "failed"
                    if st == "FAIL"
                    else "unknown",
                    provider_message_id=str(item["sid"]) if item.get("sid") else None,
                    detail={k: item.get(k) for k in ("errmsg", "description", "user_receive_time")},
                )
            )
        else:
            st = str(item.get("status", "unknown")).lower()
            out.append(
                Receipt(
                    status=st if st in ("delivered", "failed") else "unknown",
                    message_id=item.get("message_id"),
                    provider_message_id=item.get("provider_message_id"),
                    detail={
                        k: v
                        for k, v in item.items()
                        if k not in ("message_id", "provider_message_id")
                    },
                )
            )
    return out


def record_receipts(
    conn: Connection, channel: str, provider: str, receipts: Iterable[Receipt], *, now: datetime
) -> dict[str, int]:
    """Store each receipt; tie it to its outbox row by message id or provider id."""
    matched = unmatched = 0
    for r in receipts:
        cond = []
        if r.message_id:
            cond.append(outbox.c.message_id == r.message_id)
        if r.provider_message_id:
            cond.append(outbox.c.provider_message_id == r.provider_message_id)
        row = (
            conn.execute(select(outbox.c.message_id).where(or_(*cond)).limit(1)).first()
            if cond
            else None
        )
        mid = row[0] if row else None
        conn.execute(
            insert(delivery_receipts).values(
                message_id=mid,
                channel=channel,
                provider=provider,
                provider_message_id=r.provider_message_id,
                status=r.status,
                detail={k: v for k, v in r.detail.items() if v is not None},
                received_at=now,
            )
        )
        if mid is None:
            unmatched += 1
            continue
        matched += 1
        if r.status == "delivered":
            conn.execute(
                update(outbox)
                .where(outbox.c.message_id == mid, outbox.c.delivered_at.is_(None))
                .values(delivered_at=now.astimezone(UTC))
            )
    return {"matched": matched, "unmatched": unmatched}
