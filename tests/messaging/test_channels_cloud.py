"""Aliyun and Tencent Cloud SMS, WeCom and DingTalk robots: signatures pinned to the providers'
published examples, and requests checked by a loopback server that re-computes each
signature independently from the published specs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import pytest
from msg_support import Request, Sink, add_customers
from sqlalchemy import select

from huitouke.messaging.channels.aliyun import AliyunSmsChannel, aliyun_signature, string_to_sign
from huitouke.messaging.channels.base import OutgoingMessage, PermanentSendError, TransientSendError
from huitouke.messaging.channels.http import RetryPolicy
from huitouke.messaging.channels.robots import DingTalkRobotChannel, WeComRobotChannel
from huitouke.messaging.channels.tencent import TencentSmsChannel, canonical_request, tc3_signature
from huitouke.messaging.dispatcher import Dispatcher
from huitouke.messaging.outbox import OutboxMessage, enqueue
from huitouke.messaging.rules import ContactPolicy
from huitouke.messaging.tables import outbox
from huitouke.store.db import Store

NOON = datetime(2026, 5, 6, 4, 0, tzinfo=UTC)

# -- published examples -------------------------------------------------------------------------
# Aliyun SMS "签名机制" worked example (SendSms, AccessKeySecret "testSecret").
ALIYUN_DOC_PARAMS = {
    "AccessKeyId": "testId",
    "Action": "SendSms",
    "Format": "XML",
    "OutId": "123",
    "PhoneNumbers": "15300000001",
    "RegionId": "cn-hangzhou",
    "SignName": "阿里云短信测试专用",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
    "SignatureVersion": "1.0",
    "TemplateCode": "SMS_71390007",
    "TemplateParam": '{"customer":"test"}',
    "Timestamp": "2017-07-12T02:42:19Z",
    "Version": "2017-05-25",
}


def test_aliyun_signature_matches_the_published_sendsms_example() -> None:
    assert string_to_sign(ALIYUN_DOC_PARAMS).startswith(
        "GET&%2F&AccessKeyId%3DtestId%26Action%3DSendSms%26Format%3DXML%26OutId%3D123"
        "%26PhoneNumbers%3D15300000001%26RegionId%3Dcn-hangzhou%26SignName%3D%25E9%2598%25BF"
    )
    assert aliyun_signature(ALIYUN_DOC_PARAMS, "testSecret") == "zJDF+Lrzhj/ThnlvIToysFRq6t4="


def test_aliyun_signature_matches_the_published_rpc_example() -> None:
    # Aliyun's RPC signature documentation example (DescribeRegions, secret "testsecret").
    params = {
        "Format": "XML",
        "AccessKeyId": "testid",
        "Action": "DescribeRegions",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
        "SignatureVersion": "1.0",
        "Version": "2014-05-26",
        "Timestamp": "2016-02-23T12:46:24Z",
    }
    assert aliyun_signature(params, "testsecret") == "OLeaidS1JvxuMvnyHOwuJ+uX5qY="


def test_tc3_signature_matches_the_published_example() -> None:
    # Tencent Cloud "签名方法 v3" worked example (CVM DescribeInstances at 1551113065).
    payload = json.dumps(
        {"Limit": 1, "Filters": [{"Values": ["未命名"], "Name": "instance-name"}]}
    ).encode()
    headers = {"content-type": "application/json; charset=utf-8", "host": "cvm.tencentcloudapi.com"}
    canon = canonical_request("POST", "/", "", headers, ["content-type", "host"], payload)
    assert canon.endswith("35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064")
    sig, to_sign = tc3_signature("Gu5t9xGARNpq86cd98joQYCN3*******", "cvm", 1551113065, canon)
    assert to_sign == (
        "TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\n"
        "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
    )
    assert sig == "2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c"


# -- servers that verify like the providers do ----------------------------------------------------
def aliyun_server(secret: str, sink: Sink, reply: dict[str, str] | None = None) -> None:
    def handle(req: Request) -> tuple[int, dict[str, str], bytes]:
        query = urlsplit(req.path).query
        params = dict(parse_qsl(query, keep_blank_values=True))
        given = params.pop("Signature")

        def enc(s: str) -> str:
            return quote(s, safe="-_.~")

        canon = "&".join(f"{enc(k)}={enc(v)}" for k, v in sorted(params.items()))
        sts = "GET&" + enc("/") + "&" + enc(canon)
        expected = base64.b64encode(
            hmac.new((secret + "&").encode(), sts.encode(), hashlib.sha1).digest()
        ).decode()
        if not hmac.compare_digest(expected, given):
            return (
                400,
                {"Content-Type": "application/json"},
                b'{"Code":"SignatureDoesNotMatch","Message":"bad"}',
            )
        datetime.strptime(params["Timestamp"], "%Y-%m-%dT%H:%M:%SZ")
        body = reply or {
            "Code": "OK",
            "Message": "OK",
            "BizId": "900619746936498440^0",
            "RequestId": "r-1",
        }
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()

    sink.handler = handle


def test_aliyun_sms_end_to_end_through_the_outbox(store: Store, sink: Sink) -> None:
    aliyun_server("ali-secret", sink)
    add_customers(store, [{"customer_id": "c1", "phone": "13800000001", "consent": {"sms": True}}])
    m = OutboxMessage(
        journey_id="replenish",
        customer_id="c1",
        step_id="remind",
        occurrence="2026-05-06",
        channel="sms",
        recipient="13800000001",
        rendered={
            "text": "【回头客】咖啡豆快喝完了吧? 回T退订",
            "sms_template_code": "SMS_123",
            "sms_template_params": {"name": "王芳", "coupon": "10元"},
        },
    )
    with store.begin() as conn:
        enqueue(conn, [m], now=NOON)
    ch = AliyunSmsChannel(
        "ak-id", "ali-secret", sign_name="回头客", endpoint=sink.url.replace("/hook", "/")
    )
    stats = Dispatcher(
        store, {"sms": ch}, lambda: NOON, policy=ContactPolicy(default_zone="Asia/Shanghai")
    ).drain()
    ch.close()
    assert stats.sent == 1
    params = dict(parse_qsl(urlsplit(sink.requests[0].path).query))
    assert params["Action"] == "SendSms" and params["OutId"] == m.message_id
    assert params["SignName"] == "回头客" and json.loads(params["TemplateParam"]) == {
        "name": "王芳",
        "coupon": "10元",
    }
    with store.connect() as conn:
        assert conn.execute(select(outbox.c.provider_message_id)).scalar() == "900619746936498440^0"


def test_aliyun_errors_are_classified(sink: Sink) -> None:
    msg = OutgoingMessage(
        message_id="m1",
        customer_id="c",
        channel="sms",
        kind="marketing",
        recipient="138",
        rendered={"text": "hi", "sms_template_code": "SMS_1"},
    )
    aliyun_server("s", sink, {"Code": "isv.BUSINESS_LIMIT_CONTROL", "Message": "触发流控"})
    ch = AliyunSmsChannel("id", "s", sign_name="店", endpoint=sink.url)
    with pytest.raises(TransientSendError):
        ch.send(msg)
    aliyun_server("s", sink, {"Code": "isv.MOBILE_NUMBER_ILLEGAL", "Message": "bad number"})
    with pytest.raises(PermanentSendError) as err:
        ch.send(msg)
    assert err.value.code == "aliyun.isv.MOBILE_NUMBER_ILLEGAL"
    wrong = AliyunSmsChannel("id", "wrong-secret", sign_name="店", endpoint=sink.url)
    with pytest.raises(PermanentSendError) as err:
        wrong.send(msg)
    assert err.value.code == "aliyun.SignatureDoesNotMatch"


def tencent_server(secret_id: str, secret_key: str, sink: Sink, error: str | None = None) -> None:
    def handle(req: Request) -> tuple[int, dict[str, str], bytes]:
        auth = req.headers["authorization"]
        algo, rest = auth.split(" ", 1)
        fields = dict(part.strip().split("=", 1) for part in rest.split(","))
        cred_id, date, service, term = fields["Credential"].split("/")
        signed = fields["SignedHeaders"].split(";")
        ts = int(req.headers["x-tc-timestamp"])
        assert algo == "TC3-HMAC-SHA256" and cred_id == secret_id and term == "tc3_request"
        assert (
            date == datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")
            and abs(time.time() - ts) < 300
        )
        assert {"content-type", "host"} <= set(signed)
        vals = {
            h: (req.headers[h].lower() if h == "x-tc-action" else req.headers[h]) for h in signed
        }
        canon = (
            "POST\n/\n\n"
            + "".join(f"{h}:{vals[h]}\n" for h in signed)
            + "\n"
            + ";".join(signed)
            + "\n"
            + hashlib.sha256(req.body).hexdigest()
        )
        sts = f"TC3-HMAC-SHA256\n{ts}\n{date}/{service}/tc3_request\n{hashlib.sha256(canon.encode()).hexdigest()}"

        def h(key: bytes, msg: str) -> bytes:
            return hmac.new(key, msg.encode(), hashlib.sha256).digest()

        key = h(h(h(("TC3" + secret_key).encode(), date), service), "tc3_request")
        if hmac.new(key, sts.encode(), hashlib.sha256).hexdigest() != fields["Signature"]:
            out = {
                "Response": {
                    "Error": {"Code": "AuthFailure.SignatureFailure", "Message": "bad"},
                    "RequestId": "r",
                }
            }
            return 200, {"Content-Type": "application/json"}, json.dumps(out).encode()
        doc = json.loads(req.body)
        if error:
            status = {"Code": error, "Message": "nope"}
        else:
            status = {
                "SerialNo": "5000:104",
                "PhoneNumber": doc["PhoneNumberSet"][0],
                "Fee": 1,
                "Code": "Ok",
            }
        out = {
            "Response": {
                "SendStatusSet": [{**status, "SessionContext": doc["SessionContext"]}],
                "RequestId": "r-2",
            }
        }
        return 200, {"Content-Type": "application/json"}, json.dumps(out).encode()

    sink.handler = handle


def test_tencent_sms_signed_request_verified_by_the_server(sink: Sink) -> None:
    tencent_server("AKID-test", "tc-secret", sink)
    ch = TencentSmsChannel(
        "AKID-test",
        "tc-secret",
        app_id="1400000001",
        sign_name="回头客",
        template_id="449739",
        endpoint=sink.url,
    )
    msg = OutgoingMessage(
        message_id="m-1",
        customer_id="c",
        channel="sms",
        kind="marketing",
        recipient="13800000001",
        rendered={"text": "hi", "sms_template_params": {"name": "王芳", "days": "3"}},
    )
    res = ch.send(msg)
    assert res.provider_message_id == "5000:104"
    body = sink.requests[0].json()
    assert body["PhoneNumberSet"] == ["+8613800000001"] and body["TemplateParamSet"] == [
        "王芳",
        "3",
    ]
    assert (
        body["SessionContext"] == "m-1" and sink.requests[0].headers["x-tc-version"] == "2021-01-11"
    )
    bad = TencentSmsChannel(
        "AKID-test", "wrong", app_id="1", sign_name="s", template_id="1", endpoint=sink.url
    )
    with pytest.raises(PermanentSendError) as err:
        bad.send(msg)
    assert err.value.code == "tencent.AuthFailure.SignatureFailure"
    tencent_server("AKID-test", "tc-secret", sink, error="LimitExceeded.PhoneNumberDailyLimit")
    with pytest.raises(TransientSendError):
        ch.send(msg)


def test_wecom_robot_format(sink: Sink) -> None:
    def handle(req: Request) -> tuple[int, dict[str, str], bytes]:
        assert dict(parse_qsl(urlsplit(req.path).query)) == {"key": "wk"}
        return 200, {"Content-Type": "application/json"}, b'{"errcode":0,"errmsg":"ok"}'

    sink.handler = handle
    ch = WeComRobotChannel(sink.url + "?key=wk")
    msg = OutgoingMessage(
        message_id="m",
        customer_id="c",
        channel="wecom",
        kind="transactional",
        recipient=None,
        rendered={"text": "今日回访名单:12 位顾客"},
        payload={"mentioned_mobile_list": ["13800000001"]},
    )
    ch.send(msg)
    assert sink.requests[-1].json() == {
        "msgtype": "text",
        "text": {"content": "今日回访名单:12 位顾客", "mentioned_mobile_list": ["13800000001"]},
    }
    ch.send(OutgoingMessage(**{**msg.__dict__, "rendered": {"markdown": "# 回访\n> 12 位"}}))
    assert sink.requests[-1].json() == {
        "msgtype": "markdown",
        "markdown": {"content": "# 回访\n> 12 位"},
    }
    sink.handler = lambda req: (200, {}, b'{"errcode":45009,"errmsg":"api freq out of limit"}')
    with pytest.raises(TransientSendError):
        ch.send(msg)
    with pytest.raises(PermanentSendError):
        ch.send(OutgoingMessage(**{**msg.__dict__, "rendered": {"text": "字" * 700}}))


def test_dingtalk_robot_signed_url_verified_by_the_server(sink: Sink) -> None:
    secret = "SEC0123456789abcdef"

    def handle(req: Request) -> tuple[int, dict[str, str], bytes]:
        q = dict(parse_qsl(urlsplit(req.path).query))
        ts = q["timestamp"]
        expected = base64.b64encode(
            hmac.new(secret.encode(), f"{ts}\n{secret}".encode(), hashlib.sha256).digest()
        ).decode()
        ok = q["access_token"] == "tok" and hmac.compare_digest(expected, q["sign"])
        ok = ok and abs(int(ts) / 1000 - time.time()) < 3600
        # the raw query keeps the url-encoded base64 (+ / = escaped)
        assert (
            "sign=" + quote(expected, safe="") in urlsplit(req.path).query
            or unquote(q["sign"]) == q["sign"]
        )
        body = (
            b'{"errcode":0,"errmsg":"ok"}'
            if ok
            else b'{"errcode":310000,"errmsg":"sign not match"}'
        )
        return 200, {"Content-Type": "application/json"}, body

    sink.handler = handle
    msg = OutgoingMessage(
        message_id="m",
        customer_id="c",
        channel="dingtalk",
        kind="transactional",
        recipient=None,
        rendered={"text": "今日回访名单"},
        payload={"at_mobiles": ["13800000001"]},
    )
    DingTalkRobotChannel(sink.url + "?access_token=tok", secret).send(msg)
    assert sink.requests[-1].json() == {
        "msgtype": "text",
        "text": {"content": "今日回访名单"},
        "at": {"atMobiles": ["13800000001"], "isAtAll": False},
    }
    with pytest.raises(PermanentSendError) as err:
        DingTalkRobotChannel(sink.url + "?access_token=tok", "SECwrong", retry=RetryPolicy(0)).send(
            msg
        )
    assert err.value.code == "dingtalk.310000"
