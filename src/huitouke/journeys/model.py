"""The journey model: trigger, audience, steps, holdout and active window.

A journey is plain data (pydantic models, no database or HTTP). It is written in YAML
(see :mod:`huitouke.journeys.loader`) or sent to the API as JSON; both go through
:func:`Journey.model_validate`, so the same rules and the same error locations apply.

Timing (BRIEF "What the merchant does with it"): each journey has an *anchor* per customer
and occurrence — the day the trigger refers to (the expected next-order date, a birthday,
a holiday, a promotion date, the day an order shipped, the period of a schedule). The
first step happens ``trigger.offset_days`` after the anchor (negative = before); each
``wait`` step pushes the following steps later. Steps are therefore due on fixed days
relative to the anchor, which is what makes evaluation stateless and vectorised.
"""

from __future__ import annotations

import re
from datetime import date, time
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from huitouke.analytics import segments as _segments
from huitouke.journeys.calendar import HOLIDAYS
from huitouke.journeys.text import LocalizedText
from huitouke.messaging import rules as _messaging_rules

__all__ = [
    "CHANNELS",
    "LAYERS",
    "AttributeCondition",
    "Audience",
    "BranchStep",
    "CouponStep",
    "Journey",
    "LocalizedText",
    "MessageTemplate",
    "SendStep",
    "Step",
    "Trigger",
    "WaitStep",
    "step_schedule",
]

# The vocabularies of the analytics and messaging contexts: one definition, so a journey
# can never name a segment the analytics do not produce or a channel messaging lacks.
CHANNELS = _messaging_rules.CHANNELS
LAYERS = _segments.LAYERS
LIFECYCLES = _segments.LIFECYCLE_STAGES
RFM_SEGMENTS = _segments.RFM_SEGMENTS
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")


def _one_of(v: list[str] | None, known: tuple[str, ...], what: str) -> list[str] | None:
    for s in v or []:
        if s not in known:
            raise ValueError(f"unknown {what} {s!r}; known: {', '.join(known)}")
    return v


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MessageBody(_Strict):
    subject: str | None = None
    body: str = Field(min_length=1)


class MessageTemplate(_Strict):
    """A message in both languages; bodies are Jinja2 templates rendered by messaging."""

    zh: MessageBody
    en: MessageBody


# --- trigger ------------------------------------------------------------------------------
class Trigger(_Strict):
    """When a journey starts for a customer.

    ``type``:
      * ``schedule`` — every evaluation day; ``every`` (day/week/month) is the occurrence, so
        a customer gets a schedule journey at most once per period;
      * ``event`` — an order event (``order_paid``, ``order_shipped``, ``order_delivered``,
        ``order_completed``); the occurrence is the order;
      * ``date`` — a date column of the customer (``field``: next_expected_date,
        first_order_date, last_order_date, points_expiring_on);
      * ``birthday`` — the customer's birthday this year (29 Feb → 28 Feb in common years);
      * ``holiday`` — holidays of the calendar (:mod:`huitouke.journeys.calendar`);
      * ``promotion`` — promotion dates of the merchant (``promotions`` ids, or ``big_only``).
    """

    type: Literal["schedule", "event", "date", "birthday", "holiday", "promotion"]
    every: Literal["day", "week", "month"] | None = None
    event: Literal["order_paid", "order_shipped", "order_delivered", "order_completed"] | None = (
        None
    )
    field: (
        Literal["next_expected_date", "first_order_date", "last_order_date", "points_expiring_on"]
        | None
    ) = None
    holidays: list[str] | None = None
    promotions: list[str] | None = None
    big_only: bool = False
    offset_days: int = Field(0, ge=-366, le=366)
    at: time = time(10, 0)

    @model_validator(mode="after")
    def _fields_for_type(self) -> Trigger:
        need = {"schedule": "every", "event": "event", "date": "field", "holiday": "holidays"}
        key = need.get(self.type)
        if key is not None and getattr(self, key) in (None, []):
            raise ValueError(f"a {self.type} trigger needs '{key}'")
        if self.type == "holiday":
            unknown = [h for h in self.holidays or [] if h not in HOLIDAYS]
            if unknown:
                raise ValueError(
                    f"unknown holiday {unknown[0]!r}; known: {', '.join(sorted(HOLIDAYS))}"
                )
        return self


# --- audience -----------------------------------------------------------------------------
AttributeOp = Literal["eq", "ne", "lt", "le", "gt", "ge", "in", "set", "unset"]
_ATTR_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class AttributeCondition(_Strict):
    """A condition on a custom profile attribute (画像属性): ``key`` compared by ``op`` with
    ``value``. ``set``/``unset``: the customer has (not) a value; ``in``: one of a list;
    the others compare one value — a number with a number attribute, ``YYYY-MM-DD`` with a
    date attribute, text with text and choice attributes. A customer without a value (or
    with one of another type) matches only ``unset`` and ``ne``."""

    key: str
    op: AttributeOp = "eq"
    value: str | float | list[str | float] | None = None

    @field_validator("key")
    @classmethod
    def _key(cls, v: str) -> str:
        if not _ATTR_KEY.match(v):
            raise ValueError(f"attribute key {v!r}: a lower-case letter, then a-z, 0-9 or _")
        return v

    @model_validator(mode="after")
    def _value_for_op(self) -> AttributeCondition:
        if self.op in ("set", "unset"):
            if self.value is not None:
                raise ValueError(f"op {self.op!r} takes no value")
        elif self.op == "in":
            if not isinstance(self.value, list) or not self.value:
                raise ValueError("op 'in' needs a non-empty list of values")
        elif self.value is None or isinstance(self.value, list):
            raise ValueError(f"op {self.op!r} needs one value")
        return self


class Audience(_Strict):
    """Segment filters, all of which must hold (AND). Every field is optional.

    Columns are those of the customers frame (see :mod:`huitouke.journeys.frame`).
    """

    layers: list[str] | None = None
    rfm_segments: list[str] | None = None
    lifecycles: list[str] | None = None
    orders_min: int | None = Field(None, ge=0)
    orders_max: int | None = Field(None, ge=0)
    bought_within_days: int | None = Field(None, ge=1)
    not_bought_within_days: int | None = Field(None, ge=1)
    p_alive_min: float | None = Field(None, ge=0, le=1)
    p_alive_max: float | None = Field(None, ge=0, le=1)
    points_expiring_within_days: int | None = Field(None, ge=0)
    near_next_tier_ratio: float | None = Field(None, gt=0, le=1)
    stamps_to_reward_max: int | None = Field(None, ge=1)
    has_birthday: bool | None = None
    tags_any: list[str] | None = None
    #: every one of these tags (标签), added in the console, CLI or REST, or imported
    tags_all: list[str] | None = None
    #: none of these tags
    tags_none: list[str] | None = None
    #: conditions on custom profile attributes, all of which must hold
    attributes: list[AttributeCondition] | None = None

    @field_validator("rfm_segments")
    @classmethod
    def _known_segments(cls, v: list[str] | None) -> list[str] | None:
        return _one_of(v, RFM_SEGMENTS, "RFM segment")

    @field_validator("layers")
    @classmethod
    def _known_layers(cls, v: list[str] | None) -> list[str] | None:
        return _one_of(v, LAYERS, "layer")

    @field_validator("lifecycles")
    @classmethod
    def _known_lifecycles(cls, v: list[str] | None) -> list[str] | None:
        return _one_of(v, LIFECYCLES, "lifecycle stage")

    @model_validator(mode="after")
    def _bounds(self) -> Audience:
        if (
            self.orders_min is not None
            and self.orders_max is not None
            and self.orders_min > self.orders_max
        ):
            raise ValueError("orders_min is greater than orders_max")
        if (
            self.p_alive_min is not None
            and self.p_alive_max is not None
            and self.p_alive_min > self.p_alive_max
        ):
            raise ValueError("p_alive_min is greater than p_alive_max")
        return self


# --- steps --------------------------------------------------------------------------------
class SendStep(_Strict):
    """Send ``template`` on ``channel``. ``kind`` decides which contact rules apply:
    transactional care (shipping notices) goes before marketing and is not capped."""

    type: Literal["send"]
    id: str | None = None
    channel: str
    template: str
    kind: Literal["marketing", "transactional"] = "marketing"
    related_products: int = Field(0, ge=0, le=10)
    coupon_template: str | None = None
    expires_after_hours: int = Field(48, ge=1, le=24 * 30)
    #: where the tracked link (``{{ link }}``) leads; default: the shop's public address
    link: str | None = Field(None, max_length=1500)

    @field_validator("channel")
    @classmethod
    def _known_channel(cls, v: str) -> str:
        if v not in CHANNELS:
            raise ValueError(f"unknown channel {v!r}; known: {', '.join(CHANNELS)}")
        return v


class CouponStep(_Strict):
    """Issue a coupon of the loyalty template ``coupon_template``."""

    type: Literal["coupon"]
    id: str | None = None
    coupon_template: str = Field(min_length=1)


class WaitStep(_Strict):
    type: Literal["wait"]
    id: str | None = None
    days: int = Field(ge=1, le=366)


class BranchStep(_Strict):
    """Branch on whether the customer ordered since the anchor.

    ``if_ordered`` / ``if_not_ordered``: ``exit`` ends the journey for this occurrence,
    ``continue`` goes on with the next step. The usual "unless they ordered" is the default.
    """

    type: Literal["branch"]
    id: str | None = None
    condition: Literal["ordered_since"] = "ordered_since"
    if_ordered: Literal["exit", "continue"] = "exit"
    if_not_ordered: Literal["exit", "continue"] = "continue"


Step = Annotated[SendStep | CouponStep | WaitStep | BranchStep, Field(discriminator="type")]


class ActiveWindow(_Strict):
    start: date | None = None
    end: date | None = None

    @model_validator(mode="after")
    def _ordered(self) -> ActiveWindow:
        if self.start and self.end and self.start > self.end:
            raise ValueError("active.start is after active.end")
        return self

    def contains(self, day: date) -> bool:
        return (self.start is None or self.start <= day) and (self.end is None or day <= self.end)


class Journey(_Strict):
    """One reminder journey. ``id`` is a stable slug used in dedupe keys and holdout hashes."""

    id: str
    name: LocalizedText
    description: LocalizedText | None = None
    enabled: bool = True
    trigger: Trigger
    audience: Audience = Audience()
    steps: list[Step] = Field(min_length=1)
    templates: dict[str, MessageTemplate] = Field(default_factory=dict)
    holdout: float = Field(0.1, ge=0.0, le=0.9)
    active: ActiveWindow = ActiveWindow()
    catch_up_days: int = Field(0, ge=0, le=30)
    priority: int = Field(100, ge=0, le=1000)
    #: issue the journey's coupons also to customers none of its send channels may reach
    #: (no consent, unsubscribed); by default they are skipped as ``coupon_unreachable``
    coupons_for_unreachable: bool = False

    @field_validator("id")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not _SLUG.match(v):
            raise ValueError(
                "id must be 1–64 characters of a-z, 0-9, '_' or '-', starting with a letter or digit"
            )
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Journey:
        ids: set[str] = set()
        for i, step in enumerate(self.steps):
            sid = step.id or f"{step.type}{i + 1}"
            if sid in ids:
                raise ValueError(f"steps[{i}].id: duplicate step id {sid!r}")
            ids.add(sid)
            if isinstance(step, SendStep) and step.template not in self.templates:
                raise ValueError(
                    f"steps[{i}].template: template {step.template!r} is not defined under 'templates'"
                )
            if isinstance(step, WaitStep) and self.trigger.type == "schedule":
                raise ValueError(
                    f"steps[{i}].type: a schedule journey cannot wait (each period starts afresh)"
                )
        if not any(isinstance(s, SendStep | CouponStep) for s in self.steps):
            raise ValueError("steps: a journey needs at least one send or coupon step")
        return self

    def step_id(self, index: int) -> str:
        step = self.steps[index]
        return step.id or f"{step.type}{index + 1}"

    @property
    def is_marketing(self) -> bool:
        return any(isinstance(s, SendStep) and s.kind == "marketing" for s in self.steps)


def step_schedule(journey: Journey) -> list[tuple[int, int, list[int]]]:
    """For each action step (send/coupon): ``(step index, day offset from the anchor,
    indexes of the branch steps before it)``.

    The offset is ``trigger.offset_days`` plus all waits before the step.
    """
    out: list[tuple[int, int, list[int]]] = []
    offset = journey.trigger.offset_days
    branches: list[int] = []
    for i, step in enumerate(journey.steps):
        if isinstance(step, WaitStep):
            offset += step.days
        elif isinstance(step, BranchStep):
            branches.append(i)
        else:
            out.append((i, offset, list(branches)))
    return out
