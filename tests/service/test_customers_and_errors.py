"""Customer profiles, consent, masking for read keys, error bodies and languages."""

from __future__ import annotations

import logging

import pytest

from huitouke.service.lang import negotiate_lang
from huitouke.service.masking import mask_email, mask_name, mask_phone, mask_text

from .conftest import Keys

PROFILE = {
    "name": "张三",
    "phone": "13812345678",
    "email": "zhangsan@example.com",
    "birthday": "1990-05-01",
    "tags": ["vip"],
    "attributes": {"size": "L"},
    "consent": {"sms": True, "email": False},
    "timezone": "Asia/Shanghai",
}


def test_profile_put_get_and_consent(client, keys: Keys) -> None:
    r = client.put("/v1/customers/c1", json=PROFILE, headers=keys.h("operator"))
    assert r.status_code == 201, r.text
    assert r.json()["phone"] == "13812345678" and r.json()["masked"] is False
    again = client.put("/v1/customers/c1", json=PROFILE, headers=keys.h("operator"))
    assert again.status_code == 200
    assert again.json()["updated_at"] == r.json()["updated_at"]  # nothing changed

    r = client.put(
        "/v1/customers/c1/consent",
        json={"consent": {"email": True, "wechat": True}},
        headers=keys.h("operator"),
    )
    assert r.json()["consent"] == {"sms": True, "email": True, "wechat": True}

    full = client.get("/v1/customers/c1", headers=keys.h("operator")).json()
    assert (full["name"], full["phone"], full["email"]) == (
        "张三",
        "13812345678",
        "zhangsan@example.com",
    )

    masked = client.get("/v1/customers/c1", headers=keys.h("read")).json()
    assert masked["masked"] is True
    assert (masked["name"], masked["phone"], masked["email"]) == (
        "张*",
        "138****5678",
        "z*******@example.com",
    )
    assert masked["consent"] == full["consent"] and masked["tags"] == ["vip"]


def test_unknown_customer_is_404_with_code(client, keys: Keys) -> None:
    r = client.get("/v1/customers/nobody", headers=keys.h("read"))
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "customer.not_found"
    r = client.put(
        "/v1/customers/nobody/consent", json={"consent": {"sms": False}}, headers=keys.h("operator")
    )
    assert r.status_code == 404


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # validation precedes the store
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"phone": "call me"}, "phone"),
        ({"birthday": "1990-13-01"}, "birthday"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"consent": {"SMS!": True}}, "consent.SMS!.[key]"),
        ({"nickname": "x"}, "nickname"),
    ],
)
def test_validation_errors_are_422_naming_the_field(client, keys: Keys, body, field: str) -> None:
    r = client.put("/v1/customers/c1", json=body, headers=keys.h("operator"))
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "input.invalid"
    fields = [f["field"] for f in err["details"]["fields"]]
    assert field in fields, fields
    assert field.split(".")[0] in err["message"]
    assert all(f["reason"] for f in err["details"]["fields"])


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_malformed_json_is_422(client, keys: Keys) -> None:
    r = client.put(
        "/v1/customers/c1",
        content=b"{not json",
        headers=keys.h("operator", **{"Content-Type": "application/json"}),
    )
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "input.invalid"


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_language_follows_accept_language(client, keys: Keys) -> None:
    zh = client.get(
        "/v1/customers/nobody", headers=keys.h("read", **{"Accept-Language": "zh-CN,zh;q=0.9"})
    )
    en = client.get("/v1/customers/nobody", headers=keys.h("read", **{"Accept-Language": "en-US"}))
    assert "顾客" in zh.json()["error"]["message"]
    assert "customer" in en.json()["error"]["message"]
    assert zh.json()["error"]["code"] == en.json()["error"]["code"]
    r = client.get("/v1/nowhere", headers={"Accept-Language": "zh"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "http.not_found"
    r = client.delete("/v1/customers/c1", headers=keys.h("admin"))
    assert r.status_code == 405 and r.json()["error"]["code"] == "http.method_not_allowed"


@pytest.mark.parametrize(
    ("header", "lang"),
    [
        (None, "zh"),
        ("en", "en"),
        ("fr, en;q=0.5", "en"),
        ("en;q=0.3, zh-TW;q=0.8", "zh"),
        ("de", "zh"),
        ("en;q=0", "zh"),
    ],
)
def test_negotiate_lang(header, lang: str) -> None:
    assert negotiate_lang(header, "zh") == lang


def test_masking_rules() -> None:
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("+86 138 1234 5678") == "+86 138 **** 5678"
    assert mask_name("张三") == "张*"
    assert mask_name("欧阳娜娜") == "欧***"
    assert mask_name("John Smith") == "J*** S****"
    assert mask_email("li@x.cn") == "l*@x.cn"
    text = mask_text(
        'saved name=张三丰 phone=13812345678 {"email": "a.b@c.com"} order 202401011234567'
    )
    assert "张三丰" not in text and "13812345678" not in text and "a.b@c.com" not in text
    assert "202401011234567" in text  # long order ids are not phone numbers


def test_logs_never_show_phones_or_names(
    client, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    client.put("/v1/customers/13812345678", json=PROFILE, headers=keys.h("operator"))
    client.get("/v1/customers/13812345678", headers=keys.h("read"))
    logging.getLogger("huitouke.service").info(
        "profile saved: name=%s phone=%s", "张三", "13912345678"
    )
    logging.getLogger("huitouke.service").warning(
        "customer %s", {"name": "李四", "phone": "13712345678"}
    )
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "/v1/customers/138****5678" in text  # the access log line, masked
    assert "name=张*" in text
    for secret in ("13812345678", "13912345678", "13712345678", "张三", "李四"):
        assert secret not in text, text
