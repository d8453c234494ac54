"""SMS through Aliyun (阿里云短信, dysmsapi ``SendSms``, API version 2017-05-25).

Requests use Aliyun's classic RPC signature (SignatureVersion 1.0, HMAC-SHA1), as published
in the dysmsapi "签名机制" documentation:

1. every parameter except ``Signature``, sorted by name;
2. each name and value percent-encoded per RFC 3986 in UTF-8 (``A-Z a-z 0-9 - _ . ~`` kept,
   space as ``%20``, ``*`` as ``%2A``), joined as ``name=value`` with ``&`` — the
   canonicalised query string;
3. ``StringToSign = "GET" + "&" + percentEncode("/") + "&" + percentEncode(canonicalised)``;
4. ``Signature = Base64(HMAC-SHA1(AccessKeySecret + "&", StringToSign))``, sent as one more
   (percent-encoded) query parameter.

The documentation's worked example (AccessKeyId ``testId``, secret ``testSecret``,
``SendSms`` to 15300000001 …) signs to ``zJDF+Lrzhj/ThnlvIToysFRq6t4=``; the tests pin it.

Aliyun sends only approved templates: a message names its template with
``rendered["sms_template_code"]`` (or the channel default) and its variables with
``rendered["sms_template_params"]``; ``OutId`` carries the outbox ``message_id``, so status
reports and the provider's records tie back to the row. SendSms has no idempotency key, so
this channel is *at least once* across a crash (see :mod:`.base`); no in-channel retries on
timeouts, which could double-send, are made — the outbox retries with backoff instead.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from urllib.parse import quote

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

__all__ = [
    "AliyunSmsChannel",
    "aliyun_signature",
    "canonicalized_query",
    "percent_encode",
    "string_to_sign",
]

#: Error codes worth trying again later (flow control, provider trouble).
TRANSIENT_CODES = (
    "isv.BUSINESS_LIMIT_CONTROL",
    "isp.SYSTEM_ERROR",
    "Throttling",
    "ServiceUnavailable",
)


def percent_encode(value: str) -> str:
    """RFC 3986 percent-encoding as the POP signature wants it (``~`` kept, space ``%20``)."""
    return quote(str(value), safe="~")


def canonicalized_query(params: Mapping[str, str]) -> str:
    return "&".join(
        f"{percent_encode(k)}={percent_encode(v)}"
        for k, v in sorted(params.items())
        if k != "Signature"
    )


def string_to_sign(params: Mapping[str, str], method: str = "GET") -> str:
    return f"{method}&{percent_encode('/')}&{percent_encode(canonicalized_query(params))}"


def aliyun_signature(params: Mapping[str, str], access_key_secret: str, method: str = "GET") -> str:
    mac = hmac.new(
        f"{access_key_secret}&".encode(),
        string_to_sign(params, method).encode("utf-8"),
        hashlib.sha1,
    )
    return base64.b64encode(mac.digest()).decode("ascii")


class AliyunSmsChannel:
    name = "sms"
    delivery: Delivery = "at_least_once"

    def __init__(
        self,
        access_key_id: str,
        access_key_secret: str,
        *,
        sign_name: str,
        template_code: str = "",
        endpoint: str = "https://dysmsapi.aliyuncs.com/",
        region: str = "cn-hangzhou",
        client: HttpClient | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        nonce: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.sign_name = sign_name
        self.template_code = template_code
        self.endpoint = endpoint
        self.region = region
        self.client = client or make_client()
        self._own_client = client is None
        self.clock = clock
        self.nonce = nonce
        self.retry = RetryPolicy(retries=0)

    def params(self, message: OutgoingMessage) -> dict[str, str]:
        if not message.recipient:
            raise PermanentSendError(
                f"message {message.message_id} has no phone number", code="sms.no_phone"
            )
        code = str(message.rendered.get("sms_template_code") or self.template_code)
        if not code:
            raise PermanentSendError(
                "no Aliyun template code (set HUITOUKE_ALIYUN_SMS_TEMPLATE_CODE or the message's sms_template_code)",
                code="sms.no_template",
            )
        tparams = message.rendered.get("sms_template_params") or {"content": message.text}
        return {
            "AccessKeyId": self.access_key_id,
            "Action": "SendSms",
            "Format": "JSON",
            "OutId": message.message_id,
            "PhoneNumbers": message.recipient,
            "RegionId": self.region,
            "SignName": self.sign_name,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": self.nonce(),
            "SignatureVersion": "1.0",
            "TemplateCode": code,
            "TemplateParam": json.dumps(tparams, ensure_ascii=False, separators=(",", ":")),
            "Timestamp": self.clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": "2017-05-25",
        }

    def signed_url(self, params: Mapping[str, str]) -> str:
        sig = aliyun_signature(params, self.access_key_secret)
        return f"{self.endpoint}?Signature={percent_encode(sig)}&{canonicalized_query(params)}"

    def send(self, message: OutgoingMessage) -> SendResult:
        params = self.params(message)
        try:
            resp = post_with_retries(
                self.client, self.signed_url(params), retry=self.retry, method="GET"
            )
        except PermanentSendError as exc:
            raise PermanentSendError(
                f"Aliyun refused: {exc}", code=_code_from(str(exc), exc.code)
            ) from exc
        try:
            data = resp.json()
        except ValueError as exc:
            raise TransientSendError(
                f"Aliyun answered non-JSON: {resp.text[:200]}", code="aliyun.bad_response"
            ) from exc
        code = str(data.get("Code", ""))
        if code != "OK":
            cls = TransientSendError if code.startswith(TRANSIENT_CODES) else PermanentSendError
            raise cls(f"Aliyun {code}: {data.get('Message')}", code=f"aliyun.{code}")
        return SendResult(
            provider="aliyun",
            provider_message_id=str(data.get("BizId") or "") or None,
            detail={"request_id": data.get("RequestId"), "code": code},
            sent_at=datetime.now(UTC),
        )

    def close(self) -> None:
        if self._own_client:
            self.client.close()


def _code_from(text: str, default: str) -> str:
    try:
        body = text.split(": ", 1)[1]
        return f"aliyun.{json.loads(body)['Code']}"
    except (IndexError, ValueError, KeyError, TypeError):
        return default
