"""SMS segment counting, templates and signed unsubscribe tokens (pure)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from huitouke.errors import AuthError, InputError
from huitouke.messaging.sms import compose_sms, count_sms, estimate_cost, split_segments
from huitouke.messaging.templates import MessageTemplate, mask_phone, render, template_context
from huitouke.messaging.tokens import make_unsubscribe_token, verify_unsubscribe_token


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("Hello", "GSM-7", 5, 1),
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
        ("€" * 80, "GSM-7", 160, 1),  # extension characters count 2
        ("€" * 81, "GSM-7", 162, 2),
        ("[" * 77, "GSM-7", 154, 1),
        ("中" * 70, "UCS-2", 70, 1),  # any Chinese character: UCS-2, 70 per single SMS
        ("中" * 71, "UCS-2", 71, 2),  # then 67 per segment
        ("中" * 134, "UCS-2", 134, 2),
        ("中" * 135, "UCS-2", 135, 3),
        ("a" * 69 + "中", "UCS-2", 70, 1),
        ("😀" * 35, "UCS-2", 70, 1),  # outside the BMP: 2 units each
        ("😀" * 36, "UCS-2", 72, 2),
    ],
)
def test_segments(text: str, encoding: str, units: int, segments: int) -> None:
    c = count_sms(text)
    assert (c.encoding, c.units, c.segments) == (encoding, units, segments)
    assert len(split_segments(text)) == segments
    assert "".join(split_segments(text)) == text


def test_escape_pairs_and_surrogates_are_not_split() -> None:
    # 152 plain characters then a euro sign: the euro's 2 units do not fit in 153 → next part.
    parts = split_segments("a" * 152 + "€" + "b" * 10)
    assert parts[0] == "a" * 152 and parts[1].startswith("€")
    parts = split_segments("中" * 66 + "😀" + "中" * 10)
    assert parts[0] == "中" * 66 and parts[1].startswith("😀")


def test_signature_and_footer_are_counted() -> None:
    body = "亲,您常买的咖啡豆快喝完了吧?本周回购立减10元"
    full = compose_sms(body, sign_name="回头客咖啡", footer="回T退订", marketing=True)
    assert full == f"【回头客咖啡】{body} 回T退订"
    assert count_sms(full).units == len(body) + len("【回头客咖啡】") + len(" 回T退订")
    notice = compose_sms("您的订单已发货", sign_name="回头客咖啡", marketing=False)
    assert notice == "【回头客咖啡】您的订单已发货"
    # An English text with a Chinese signature travels as UCS-2.
    assert count_sms(compose_sms("Hi", sign_name="店")).encoding == "UCS-2"


def test_cost_estimate() -> None:
    assert estimate_cost(3, Decimal("0.045")) == Decimal("0.1350")
    assert estimate_cost([1, 2, 2], Decimal("0.05")) == Decimal("0.2500")


TEMPLATE = MessageTemplate.from_dict(
    {
        "name": "replenish",
        "channel": "sms",
        "kind": "marketing",
        "body": {
            "zh": "{{ customer.name }},您常买的{{ order.lines[0].name }}快用完了吧?{{ coupon.value|money }}券已到账,{{ coupon.expires_at|date }}前有效",
            "en": "{{ customer.name }}, low on {{ order['items'][0].name }}? A {{ coupon.value|money }} coupon is yours until {{ coupon.expires_at|date }}",
        },
    }
)


def _ctx() -> dict[str, object]:
    return template_context(
        {"customer_id": "c1", "name": "王芳", "phone": "13812345678"},
        order={"order_id": "o1", "items": [{"name": "耶加雪菲咖啡豆"}]},
        coupon={"code": "HTK-1", "value": Decimal("10"), "expires_at": "2026-12-01T00:00:00+08:00"},
        shop_name="回头客咖啡",
    )


def test_render_zh_and_en_with_sms_count() -> None:
    zh = render(TEMPLATE, _ctx(), "zh", sms_sign_name="回头客咖啡")
    assert zh.text.startswith("【回头客咖啡】王芳,您常买的耶加雪菲咖啡豆快用完了吧?¥10.00券已到账")
    assert zh.text.endswith("回T退订")
    assert zh.sms is not None and zh.sms.encoding == "UCS-2" and zh.sms.segments == 1
    en = render(TEMPLATE, _ctx(), "en")
    assert "CN¥10.00 coupon" in en.text and "Dec 1, 2026" in en.text
    assert en.to_payload()["sms_segments"] == en.sms.segments  # type: ignore[union-attr]


def test_missing_field_and_syntax_errors_name_the_template() -> None:
    bad = MessageTemplate.from_dict({"name": "t", "channel": "sms", "body": "{{ coupon.cod }}"})
    with pytest.raises(InputError) as err:
        render(bad, _ctx(), "zh")
    assert err.value.code == "template.missing_field" and "'t'" in err.value.message
    broken = MessageTemplate.from_dict({"name": "t2", "channel": "sms", "body": "{% if %}"})
    with pytest.raises(InputError) as err:
        render(broken, _ctx(), "zh")
    assert err.value.code == "template.syntax" and err.value.details["line"] == 1


def test_sandbox_refuses_python_internals() -> None:
    evil = MessageTemplate.from_dict(
        {
            "name": "evil",
            "channel": "email",
            "body": "{{ customer.__class__.__mro__[1].__subclasses__() }}",
        }
    )
    with pytest.raises(InputError) as err:
        render(evil, _ctx(), "zh")
    assert err.value.code in ("template.unsafe", "template.missing_field")


def test_email_html_is_autoescaped_and_phone_masked() -> None:
    tpl = MessageTemplate.from_dict(
        {
            "name": "mail",
            "channel": "email",
            "subject": {"zh": "给{{ customer.name }}的礼物"},
            "body": {"zh": "电话 {{ customer.phone_masked }}"},
            "html": {"zh": "<b>{{ customer.name }}</b>"},
        }
    )
    ctx = template_context({"customer_id": "c", "name": "<script>", "phone": "13812345678"})
    r = render(tpl, ctx, "zh")
    assert (
        r.html == "<b>&lt;script&gt;</b>"
        and r.text == "电话 138****5678"
        and r.subject == "给<script>的礼物"
    )
    assert mask_phone("13812345678") == "138****5678"


def test_unsubscribe_token_round_trip_and_tamper() -> None:
    tok = make_unsubscribe_token("客户-1", "email", "s3cret", message_id="m1")
    claim = verify_unsubscribe_token(tok, "s3cret")
    assert (claim.customer_id, claim.channel, claim.message_id) == ("客户-1", "email", "m1")
    with pytest.raises(AuthError):
        verify_unsubscribe_token(tok, "other-secret")
    for i in range(len(tok)):  # any altered character is refused
        forged = tok[:i] + ("A" if tok[i] != "A" else "B") + tok[i + 1 :]
        with pytest.raises(AuthError):
            verify_unsubscribe_token(forged, "s3cret")
    with pytest.raises(AuthError):
        verify_unsubscribe_token("garbage", "s3cret")
