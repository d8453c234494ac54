"""The connectors' shared vocabulary: kinds, inbox statuses, what a mapping yields, and the
errors of the context. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from huitouke.connectors import messages as _messages  # noqa: F401  (registers texts)
from huitouke.core.orders import OrderStatus
from huitouke.errors import AuthError, HuitoukeError, InputError, NotFoundError
from huitouke.i18n import t

__all__ = [
    "INBOX_STATUSES",
    "KINDS",
    "MappedOrder",
    "PlatformError",
    "Skip",
    "Unmappable",
    "bad_signature",
    "in_clear",
    "not_found",
    "refund_status",
]

#: the platforms a connector can link, in the order they were built
KINDS: tuple[str, ...] = ("shopify", "woocommerce", "youzan", "taobao")
KINDS += ("douyin", "pinduoduo", "wechat_shop", "jd")
#: an inbox row is ``pending`` until applied; ``applied`` once recorded (or found older
#: than what is recorded: then ``reason`` says so); ``ignored`` when the platform state is
#: not an order state we count (unpaid, draft — ``reason`` says which); ``failed`` when it
#: could not be mapped or recorded (``reason``), until retried
INBOX_STATUSES = ("pending", "applied", "ignored", "failed")


class Unmappable(InputError):
    """A platform object that cannot become an order event (the reason says why)."""

    default_code = "connector.unmappable"

    def __init__(self, reason: str, reason_zh: str | None = None) -> None:
        super().__init__(
            t("connectors.unmappable", "en", reason=reason),
            code="connector.unmappable",
            message_zh=t("connectors.unmappable", "zh", reason=reason_zh or reason),
            details={"reason": reason},
        )
        self.reason = reason


class Skip(Exception):
    """A platform object that is no order of ours (yet): an unpaid or draft order."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PlatformError(HuitoukeError):
    """The platform answered an error the connector does not retry (or retried in vain)."""

    http_status = 502
    exit_code = 9
    default_code = "connector.platform_error"


def not_found(name: str) -> NotFoundError:
    return NotFoundError(
        t("connectors.not_found", "en", name=name),
        code="connector.not_found",
        message_zh=t("connectors.not_found", "zh", name=name),
        details={"connector": name},
    )


def bad_signature(name: str) -> AuthError:
    return AuthError(
        t("connectors.bad_signature", "en", name=name),
        code="connector.bad_signature",
        message_zh=t("connectors.bad_signature", "zh", name=name),
        details={"connector": name},
    )


@dataclass(frozen=True)
class MappedOrder:
    """A platform order as an order event's plain values (``app.orders.order_event`` takes
    them), with the platform's own update time and the buyer's contacts."""

    order_id: str
    customer_id: str
    ordered_at: datetime
    updated_at: datetime
    amount: Decimal
    currency: str
    status: str
    refunded_amount: Decimal
    lines: list[dict[str, Any]] = field(default_factory=list)
    email: str | None = None
    phone: str | None = None
    #: the buyer's platform union id (WeChat UnionID …), when the platform gives it
    union_id: str | None = None
    #: the buyer's name, when the platform gives it in clear
    name: str | None = None

    def event(self, source: str) -> dict[str, Any]:
        # contacts go to the customer's profile as well as to the matching keys: a masked or
        # encrypted value (which a mapping should not hand over) is left out here too
        buyer = {k: v for k, v in (("phone", in_clear(self.phone)),
                                   ("email", in_clear(self.email)),
                                   ("union_id", self.union_id),
                                   ("name", in_clear(self.name))) if v}  # fmt: skip
        return {
            "source": source,
            "order_id": self.order_id,
            "customer_id": self.customer_id,
            "ordered_at": self.ordered_at,
            "amount": self.amount,
            "currency": self.currency,
            "status": self.status,
            "refunded_amount": self.refunded_amount,
            "lines": self.lines,
            # the matching keys of one customer across platforms (huitouke.identity)
            "buyer": buyer or None,
        }


def in_clear(value: str | None) -> str | None:
    """A contact value as the buyer wrote it, else ``None``: blank, masked (``138****8000``,
    ``王**``) or a platform's ciphertext (Youzan ``$…$``, Douyin ``$$…$$`` and ``##…##``,
    Taobao ``~…~``) is no contact to keep."""
    if value is None:
        return None
    v = value.strip()
    if not v or "*" in v:
        return None
    if len(v) > 2 and v[0] == v[-1] and v[0] in "$#~":
        return None
    return v


def refund_status(cancelled: bool, amount: Decimal, refunded: Decimal) -> tuple[str, Decimal]:
    """The order status and refunded amount of a platform order: refunds are capped at the
    order's amount (a platform may report more — shipping refunded, rounding — but an order
    never gives back more than it took); cancelled wins."""
    refunded = min(max(refunded, Decimal(0)), amount)
    if cancelled:
        return OrderStatus.CANCELLED.value, refunded
    if amount > 0 and refunded >= amount:
        return OrderStatus.REFUNDED.value, amount
    if refunded > 0:
        return OrderStatus.PARTIALLY_REFUNDED.value, refunded
    return OrderStatus.PAID.value, Decimal(0)
