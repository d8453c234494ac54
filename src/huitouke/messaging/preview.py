"""Preview a template for one customer from the store (the customer and their last order)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from huitouke.errors import NotFoundError
from huitouke.messaging.sms import estimate_cost
from huitouke.messaging.templates import MessageTemplate, Rendered, render, template_context
from huitouke.messaging.tokens import make_unsubscribe_token, unsubscribe_url
from huitouke.settings import Settings
from huitouke.store.tables import customers, order_lines, orders

__all__ = ["customer_template_context", "preview"]


def customer_template_context(
    conn: Connection,
    customer_id: str,
    settings: Settings,
    *,
    channel: str = "sms",
    coupon: Mapping[str, Any] | None = None,
    recommendations: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    row = conn.execute(select(customers).where(customers.c.customer_id == customer_id)).first()
    if row is None:
        raise NotFoundError(
            f"no customer {customer_id!r}",
            code="customer.not_found",
            message_zh=f"没有顾客 {customer_id!r}",
        )
    last = conn.execute(
        select(orders)
        .where(orders.c.customer_id == customer_id)
        .order_by(orders.c.ordered_at.desc())
        .limit(1)
    ).first()
    order = None
    if last is not None:
        items = [
            {
                "sku": li.sku,
                "name": li.product_name,
                "category": li.category,
                "quantity": li.quantity,
            }
            for li in conn.execute(
                select(order_lines)
                .where(order_lines.c.source == last.source, order_lines.c.order_id == last.order_id)
                .order_by(order_lines.c.line_no)
            )
        ]
        order = {
            "order_id": last.order_id,
            "ordered_at": last.ordered_at.astimezone(settings.zone),
            "amount": last.amount,
            "currency": last.currency,
            "items": items,
        }
    token = make_unsubscribe_token(customer_id, channel, settings.secret_key.get_secret_value())
    return template_context(
        dict(row._mapping),
        order=order,
        coupon=coupon,
        recommendations=recommendations,
        shop_name=settings.sms_sign_name,
        unsubscribe_url=unsubscribe_url(settings.public_base_url, token),
    )


def preview(
    conn: Connection,
    template: MessageTemplate,
    customer_id: str,
    settings: Settings,
    *,
    lang: str | None = None,
    coupon: Mapping[str, Any] | None = None,
    recommendations: Sequence[Mapping[str, Any]] = (),
) -> tuple[Rendered, dict[str, Any]]:
    """The rendered message for one customer and, for SMS, its segments and cost."""
    ctx = customer_template_context(
        conn,
        customer_id,
        settings,
        channel=template.channel,
        coupon=coupon,
        recommendations=recommendations,
    )
    rendered = render(
        template,
        ctx,
        lang or settings.lang,
        sms_sign_name=settings.sms_sign_name,
        sms_footer=settings.sms_footer,
        sms_footer_en=settings.sms_footer_en,
    )
    info: dict[str, Any] = {"customer_id": customer_id, **rendered.to_payload()}
    if rendered.sms is not None:
        info["sms"] = rendered.sms.to_dict()
        info["cost"] = str(
            estimate_cost(rendered.sms.segments, Decimal(settings.sms_price_per_segment))
        )
        info["currency"] = settings.currency
    return rendered, info
