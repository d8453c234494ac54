"""Request and response models of the REST API.

Money travels as a **decimal string** in responses (``"199.9000"``: exact, never a binary
float) and is accepted as a decimal string or a JSON number in requests. Instants are ISO
8601 with an offset; a naive instant is refused (422) because the service cannot guess
the zone it was written in.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

__all__ = [
    "ID_PATTERN",
    "ConsentIn",
    "CustomerOut",
    "CustomerProfileIn",
    "Identifier",
    "Instant",
    "MoneyIn",
    "OrderIn",
    "OrderLineIn",
    "Text",
]

#: Identifiers (order, customer, sku, coupon code): printable, no control characters.
ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"
_MIN_INSTANT = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_INSTANT = datetime(2200, 1, 1, tzinfo=UTC)


def _encodable(value: str) -> str:
    # Lone surrogates cannot be stored by any backend; refuse them as input errors.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("text must be valid Unicode (no lone surrogates)") from exc
    if "\x00" in value:
        raise ValueError("text must not contain NUL characters")
    return value


def _instant_in_range(value: datetime) -> datetime:
    try:
        utc = value.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise ValueError("instant out of range") from exc
    if not _MIN_INSTANT <= utc < _MAX_INSTANT:
        raise ValueError("instant must be between 1970-01-01 and 2200-01-01")
    return value


Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=ID_PATTERN),
    AfterValidator(_encodable),
]
Text = Annotated[str, StringConstraints(max_length=500), AfterValidator(_encodable)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
MoneyIn = Annotated[
    Decimal,
    Field(ge=0, max_digits=18, decimal_places=4, examples=["199.90"]),
]
Instant = Annotated[AwareDatetime, AfterValidator(_instant_in_range)]
OrderStatusIn = Literal["paid", "partially_refunded", "refunded", "cancelled"]


class OrderLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: Identifier
    product_name: Text | None = None
    category: (
        Annotated[str, StringConstraints(max_length=200), AfterValidator(_encodable)] | None
    ) = None
    quantity: int = Field(ge=0, le=1_000_000_000)
    unit_price: MoneyIn | None = None


class BuyerIn(BaseModel):
    """What the event knows about its buyer: the matching keys of one customer across
    platforms (docs/identity.md), stored only hashed; phone and e-mail also fill the
    customer's profile, as does the name (which is no matching key)."""

    model_config = ConfigDict(extra="forbid")

    phone: Annotated[str, StringConstraints(max_length=40), AfterValidator(_encodable)] | None = (
        None
    )
    email: Annotated[str, StringConstraints(max_length=320), AfterValidator(_encodable)] | None = (
        None
    )
    union_id: (
        Annotated[str, StringConstraints(max_length=128), AfterValidator(_encodable)] | None
    ) = Field(None, description="A platform union id (WeChat UnionID …).")
    name: Annotated[str, StringConstraints(max_length=200), AfterValidator(_encodable)] | None = (
        Field(None, description="The buyer's name: fills the profile, no matching key.")
    )


class OrderIn(BaseModel):
    """An order event. Posting the same ``order_id`` (of the same ``source``) again is a
    replay (nothing changes) unless the status moved forward (paid → partially_refunded →
    refunded / cancelled)."""

    model_config = ConfigDict(extra="forbid")

    source: str | None = Field(
        None,
        max_length=64,
        description="The namespace of the order id: the shop, platform or channel it comes "
        "from (1–32 of a-z, 0-9, _ and -, e.g. taobao, shopify). The same id under two "
        "sources is two orders. Default: default (every order recorded without a source).",
    )
    order_id: Identifier
    customer_id: Identifier
    ordered_at: Instant = Field(
        description="ISO 8601 with an offset, e.g. 2026-11-23T10:15:00+08:00"
    )
    amount: MoneyIn
    currency: Currency | None = Field(
        None, description="ISO 4217; defaults to the merchant's currency (HUITOUKE_CURRENCY)."
    )
    status: OrderStatusIn = "paid"
    refunded_amount: MoneyIn | None = Field(
        None,
        description="Defaults to the whole amount for status=refunded and to 0 otherwise.",
    )
    channel: (
        Annotated[str, StringConstraints(max_length=100), AfterValidator(_encodable)] | None
    ) = None
    lines: list[OrderLineIn] | None = Field(None, max_length=1000)
    buyer: BuyerIn | None = None

    @model_validator(mode="after")
    def _refund_consistent(self) -> OrderIn:
        refunded = self.refunded_amount
        if refunded is None:
            refunded = self.amount if self.status == "refunded" else Decimal(0)
            self.refunded_amount = refunded
        if refunded > self.amount:
            raise ValueError(f"refunded_amount ({refunded}) must not exceed amount ({self.amount})")
        if self.status == "partially_refunded" and not (0 < refunded < self.amount):
            raise ValueError("status partially_refunded needs 0 < refunded_amount < amount")
        return self


def _valid_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}") from exc
    return value


ChannelName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
AttrKey = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_encodable)]
AttrValue = (
    Annotated[str, StringConstraints(max_length=1000), AfterValidator(_encodable)]
    | Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
    | Annotated[float, Field(allow_inf_nan=False)]
    | bool
    | None
)


class ConsentIn(BaseModel):
    """Consent per channel, e.g. ``{"sms": true, "email": false}`` (merged into the profile)."""

    model_config = ConfigDict(extra="forbid")

    consent: dict[ChannelName, bool] = Field(max_length=32)


class CustomerProfileIn(BaseModel):
    """A customer's profile; ``PUT`` replaces it whole (fields left out become empty)."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(max_length=200), AfterValidator(_encodable)] | None = (
        None
    )
    phone: (
        Annotated[str, StringConstraints(max_length=40, pattern=r"^\+?[0-9][0-9 \-]{2,38}$")] | None
    ) = None
    email: (
        Annotated[
            str,
            StringConstraints(
                max_length=320, pattern=r"^[^@\s\x00-\x1f]+@[^@\s\x00-\x1f]+\.[^@\s\x00-\x1f]+$"
            ),
        ]
        | None
    ) = None
    birthday: date | None = None
    tags: list[
        Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_encodable)]
    ] = Field(default_factory=list, max_length=100)
    attributes: dict[AttrKey, AttrValue] = Field(default_factory=dict, max_length=100)
    consent: dict[ChannelName, bool] = Field(default_factory=dict, max_length=32)
    timezone: (
        Annotated[str, StringConstraints(max_length=64), AfterValidator(_valid_zone)] | None
    ) = None


class CustomerOut(BaseModel):
    customer_id: str
    name: str | None
    phone: str | None
    email: str | None
    birthday: date | None
    tags: list[str]
    attributes: dict[str, Any]
    consent: dict[str, bool]
    timezone: str | None
    created_at: datetime
    updated_at: datetime
    masked: bool = Field(description="True when personal fields are masked (read-scope keys).")
