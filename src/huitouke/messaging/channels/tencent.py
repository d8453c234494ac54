"""SMS through Tencent Cloud (腾讯云短信 ``SendSms``, API version 2021-01-11).

Requests are signed with TC3-HMAC-SHA256 as published in Tencent Cloud's "签名方法 v3":

1. ``CanonicalRequest = Method \\n URI \\n Query \\n CanonicalHeaders \\n SignedHeaders \\n
   hex(SHA256(payload))`` with lower-case header names (here ``content-type``, ``host`` and
   ``x-tc-action``, the action's value lower-cased too);
2. ``StringToSign = "TC3-HMAC-SHA256" \\n timestamp \\n date/service/tc3_request \\n
   hex(SHA256(CanonicalRequest))`` (``date`` is the UTC date of the timestamp);
3. ``SecretDate = HMAC("TC3" + SecretKey, date)``, ``SecretService = HMAC(SecretDate,
   service)``, ``SecretSigning = HMAC(SecretService, "tc3_request")``, ``Signature =
   hex(HMAC(SecretSigning, StringToSign))`` — all HMAC-SHA256;
4. ``Authorization: TC3-HMAC-SHA256 Credential=SecretId/scope, SignedHeaders=…, Signature=…``.

The documentation's worked example (``DescribeInstances`` at 1551113065) signs to
``2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c``; the tests pin it.

The template is ``rendered["sms_template_id"]`` (or the channel default) with the ordered
``rendered["sms_template_params"]``; ``SessionContext`` carries the outbox ``message_id`` and
the ``SerialNo`` of the reply is kept as the provider message id (status callbacks use it).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from urllib.parse import urlsplit

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

__all__ = ["TencentSmsChannel", "canonical_request", "tc3_authorization", "tc3_signature"]

ALGORITHM = "TC3-HMAC-SHA256"
TRANSIENT_PREFIXES = (
    "RequestLimitExceeded",
    "InternalError",
    "LimitExceeded",
    "ResourceUnavailable",
)


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def canonical_request(
    method: str,
    uri: str,
    query: str,
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    payload: bytes,
) -> str:
    canon = "".join(f"{h}:{headers[h].strip()}\n" for h in signed_headers)
    return "\n".join([method, uri, query, canon, ";".join(signed_headers), _sha256_hex(payload)])


def tc3_signature(secret_key: str, service: str, timestamp: int, canonical: str) -> tuple[str, str]:
    """(signature hex, string to sign) for a canonical request."""
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    scope = f"{date}/{service}/tc3_request"
    to_sign = "\n".join([ALGORITHM, str(timestamp), scope, _sha256_hex(canonical.encode("utf-8"))])
    k = _hmac(_hmac(_hmac(f"TC3{secret_key}".encode(), date), service), "tc3_request")
    return hmac.new(k, to_sign.encode("utf-8"), hashlib.sha256).hexdigest(), to_sign


def tc3_authorization(
    secret_id: str,
    secret_key: str,
    service: str,
    timestamp: int,
    canonical: str,
    signed_headers: Sequence[str],
) -> str:
    sig, _ = tc3_signature(secret_key, service, timestamp, canonical)
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    return (
        f"{ALGORITHM} Credential={secret_id}/{date}/{service}/tc3_request, "
        f"SignedHeaders={';'.join(signed_headers)}, Signature={sig}"
    )


def e164(phone: str) -> str:
    digits = phone.strip().replace(" ", "").replace("-", "")
    if digits.startswith("+"):
        return digits
    if digits.startswith("00"):
        return "+" + digits[2:]
    if len(digits) == 11 and digits.startswith("1"):
        return "+86" + digits
    return "+" + digits


class TencentSmsChannel:
    name = "sms"
    delivery: Delivery = "at_least_once"
    service = "sms"
    action = "SendSms"
    version = "2021-01-11"

    def __init__(
        self,
        secret_id: str,
        secret_key: str,
        *,
        app_id: str,
        sign_name: str,
        template_id: str = "",
        endpoint: str = "https://sms.tencentcloudapi.com/",
        region: str = "ap-guangzhou",
        client: HttpClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.secret_id = secret_id
        self.secret_key = secret_key
        self.app_id = app_id
        self.sign_name = sign_name
        self.template_id = template_id
        self.endpoint = endpoint
        self.host = urlsplit(endpoint).netloc
        self.region = region
        self.client = client or make_client()
        self._own_client = client is None
        self.clock = clock
        self.retry = RetryPolicy(retries=0)

    def payload(self, message: OutgoingMessage) -> dict[str, object]:
        if not message.recipient:
            raise PermanentSendError(
                f"message {message.message_id} has no phone number", code="sms.no_phone"
            )
        tid = str(message.rendered.get("sms_template_id") or self.template_id)
        if not tid:
            raise PermanentSendError(
                "no Tencent template id (set HUITOUKE_TENCENT_SMS_TEMPLATE_ID or the message's sms_template_id)",
                code="sms.no_template",
            )
        params = message.rendered.get("sms_template_params")
        if params is None:
            values = [message.text]
        elif isinstance(params, Mapping):
            values = [str(v) for v in params.values()]
        else:
            values = [str(v) for v in params]
        return {
            "PhoneNumberSet": [e164(message.recipient)],
            "SmsSdkAppId": self.app_id,
            "SignName": self.sign_name,
            "TemplateId": tid,
            "TemplateParamSet": values,
            "SessionContext": message.message_id,
        }

    def headers(self, body: bytes, timestamp: int) -> dict[str, str]:
        hdrs = {
            "content-type": "application/json; charset=utf-8",
            "host": self.host,
            "x-tc-action": self.action.lower(),
        }
        signed = ["content-type", "host", "x-tc-action"]
        canon = canonical_request("POST", "/", "", hdrs, signed, body)
        return {
            "Authorization": tc3_authorization(
                self.secret_id, self.secret_key, self.service, timestamp, canon, signed
            ),
            "Content-Type": hdrs["content-type"],
            "Host": self.host,
            "X-TC-Action": self.action,
            "X-TC-Timestamp": str(timestamp),
            "X-TC-Version": self.version,
            "X-TC-Region": self.region,
        }

    def send(self, message: OutgoingMessage) -> SendResult:
        body = json.dumps(self.payload(message), ensure_ascii=False, separators=(",", ":")).encode(
            "utf-8"
        )
        resp = post_with_retries(
            self.client,
            self.endpoint,
            content=body,
            retry=self.retry,
            sign=lambda: self.headers(body, int(self.clock())),
        )
        try:
            data = resp.json()["Response"]
        except (ValueError, KeyError, TypeError) as exc:
            raise TransientSendError(
                f"Tencent answered unexpectedly: {resp.text[:200]}", code="tencent.bad_response"
            ) from exc
        if "Error" in data:
            code = str(data["Error"].get("Code", ""))
            cls = TransientSendError if code.startswith(TRANSIENT_PREFIXES) else PermanentSendError
            raise cls(f"Tencent {code}: {data['Error'].get('Message')}", code=f"tencent.{code}")
        statuses = data.get("SendStatusSet") or []
        if not statuses:
            raise TransientSendError("Tencent returned no send status", code="tencent.no_status")
        st = statuses[0]
        code = str(st.get("Code", ""))
        if code != "Ok":
            cls = TransientSendError if code.startswith(TRANSIENT_PREFIXES) else PermanentSendError
            raise cls(f"Tencent {code}: {st.get('Message')}", code=f"tencent.{code}")
        return SendResult(
            provider="tencent",
            provider_message_id=str(st.get("SerialNo") or "") or None,
            detail={"request_id": data.get("RequestId"), "fee": st.get("Fee")},
            sent_at=datetime.now(UTC),
        )

    def close(self) -> None:
        if self._own_client:
            self.client.close()
