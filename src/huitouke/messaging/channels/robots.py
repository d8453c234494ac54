"""Group robots: WeCom (企业微信群机器人) and DingTalk (钉钉自定义机器人).

These post to the merchant's own staff groups (call-back lists, daily summaries), so the
outbox rows are ``audience="staff"``. Wire formats as the two platforms publish them:

- WeCom: ``POST …/cgi-bin/webhook/send?key=KEY`` with ``{"msgtype": "text", "text":
  {"content": …, "mentioned_mobile_list": […]}}`` or ``{"msgtype": "markdown", "markdown":
  {"content": …}}``; the reply is ``{"errcode": 0, "errmsg": "ok"}``. Text is limited to
  2,048 bytes and markdown to 4,096 bytes (UTF-8).
- DingTalk: ``POST …/robot/send?access_token=TOKEN[&timestamp=T&sign=S]`` with ``{"msgtype":
  "text", "text": {"content": …}, "at": {"atMobiles": […], "isAtAll": false}}`` or
  ``{"msgtype": "markdown", "markdown": {"title": …, "text": …}}``. With a signing secret,
  ``T`` is the time in milliseconds and ``S = urlencode(base64(HMAC-SHA256(key=secret,
  msg=T + "\\n" + secret)))``; the platform rejects a timestamp more than an hour off.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

from huitouke.messaging.channels.base import (
    Delivery,
    OutgoingMessage,
    PermanentSendError,
    SendResult,
    TransientSendError,
)
from huitouke.messaging.channels.http import (
    HttpClient,
    RetryPolicy,
    make_client,
    post_with_retries,
)

__all__ = ["DingTalkRobotChannel", "WeComRobotChannel", "dingtalk_sign"]


def _post_json(
    client: HttpClient, url: str, doc: dict[str, Any], retry: RetryPolicy
) -> dict[str, Any]:
    body = json.dumps(doc, ensure_ascii=False).encode("utf-8")
    resp = post_with_retries(
        client,
        url,
        content=body,
        headers={"Content-Type": "application/json; charset=utf-8"},
        retry=retry,
    )
    try:
        data = resp.json()
    except ValueError as exc:
        raise TransientSendError(
            f"robot answered non-JSON: {resp.text[:200]}", code="robot.bad_response"
        ) from exc
    return data if isinstance(data, dict) else {}


class WeComRobotChannel:
    name = "wecom"
    delivery: Delivery = "at_least_once"
    #: errcodes that mean "later": -1 system busy, 45009 frequency limit.
    TRANSIENT = (-1, 45009)

    def __init__(
        self, url: str, *, client: HttpClient | None = None, retry: RetryPolicy | None = None
    ) -> None:
        self.url = url
        self.client = client or make_client()
        self._own_client = client is None
        self.retry = retry or RetryPolicy()

    def document(self, message: OutgoingMessage) -> dict[str, Any]:
        md = message.rendered.get("markdown")
        if md:
            content = str(md)
            if len(content.encode("utf-8")) > 4096:
                raise PermanentSendError(
                    "WeCom markdown is limited to 4096 bytes", code="wecom.too_long"
                )
            return {"msgtype": "markdown", "markdown": {"content": content}}
        content = message.text
        if len(content.encode("utf-8")) > 2048:
            raise PermanentSendError("WeCom text is limited to 2048 bytes", code="wecom.too_long")
        text: dict[str, Any] = {"content": content}
        mentions = message.payload.get("mentioned_mobile_list")
        if mentions:
            text["mentioned_mobile_list"] = [str(m) for m in mentions]
        return {"msgtype": "text", "text": text}

    def send(self, message: OutgoingMessage) -> SendResult:
        data = _post_json(self.client, self.url, self.document(message), self.retry)
        code = int(data.get("errcode", -1))
        if code != 0:
            cls = TransientSendError if code in self.TRANSIENT else PermanentSendError
            raise cls(f"WeCom errcode {code}: {data.get('errmsg')}", code=f"wecom.{code}")
        return SendResult(
            provider="wecom", detail={"errmsg": data.get("errmsg")}, sent_at=datetime.now(UTC)
        )

    def close(self) -> None:
        if self._own_client:
            self.client.close()


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """The url-encoded ``sign`` parameter of a DingTalk robot request."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256)
    return quote_plus(base64.b64encode(mac.digest()))


class DingTalkRobotChannel:
    name = "dingtalk"
    delivery: Delivery = "at_least_once"
    #: 130101: sending too fast; -1: system busy.
    TRANSIENT = (-1, 130101)

    def __init__(
        self,
        url: str,
        secret: str = "",
        *,
        client: HttpClient | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self.secret = secret
        self.client = client or make_client()
        self._own_client = client is None
        self.retry = retry or RetryPolicy()
        self.clock = clock

    def signed_url(self) -> str:
        if not self.secret:
            return self.url
        ts = int(self.clock() * 1000)
        sep = "&" if "?" in self.url else "?"
        return f"{self.url}{sep}timestamp={ts}&sign={dingtalk_sign(self.secret, ts)}"

    def document(self, message: OutgoingMessage) -> dict[str, Any]:
        at = {
            "atMobiles": [str(m) for m in message.payload.get("at_mobiles", [])],
            "isAtAll": bool(message.payload.get("at_all", False)),
        }
        md = message.rendered.get("markdown")
        if md:
            title = str(message.rendered.get("subject") or message.text[:20] or "huitouke")
            return {"msgtype": "markdown", "markdown": {"title": title, "text": str(md)}, "at": at}
        return {"msgtype": "text", "text": {"content": message.text}, "at": at}

    def send(self, message: OutgoingMessage) -> SendResult:
        data = _post_json(self.client, self.signed_url(), self.document(message), self.retry)
        code = int(data.get("errcode", -1))
        if code != 0:
            cls = TransientSendError if code in self.TRANSIENT else PermanentSendError
            raise cls(f"DingTalk errcode {code}: {data.get('errmsg')}", code=f"dingtalk.{code}")
        return SendResult(
            provider="dingtalk", detail={"errmsg": data.get("errmsg")}, sent_at=datetime.now(UTC)
        )

    def close(self) -> None:
        if self._own_client:
            self.client.close()
