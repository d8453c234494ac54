"""Package-insert codes (包裹营销): one unique code per card, claimed once by a customer.

Codes are 10 characters of Crockford base32 (no I, L, O, U: nothing to misread on paper)
from ``secrets`` — about 50 bits, so guessing a valid one is hopeless. Claiming a code
records the customer and, with a loyalty program, issues the campaign's coupon to them
(idempotent by the code), which ties the campaign's redemptions to it.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from huitouke.errors import ConflictError, NotFoundError
from huitouke.measurement.tables import campaign_codes

__all__ = ["claim_code", "create_codes", "new_code"]

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_code(length: int = 10) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def create_codes(conn: Connection, campaign_id: str, count: int, now: datetime) -> list[str]:
    """``count`` new unique codes for ``campaign_id``, stored before anything is printed."""
    codes: set[str] = set()
    while len(codes) < count:
        codes.add(new_code())
    taken: set[str] = set()
    lst = sorted(codes)
    for i in range(0, len(lst), 500):
        taken.update(
            r[0]
            for r in conn.execute(
                select(campaign_codes.c.code).where(campaign_codes.c.code.in_(lst[i : i + 500]))
            )
        )
    fresh = [c for c in lst if c not in taken]
    while len(fresh) < count:  # astronomically rare; keeps the count exact
        c = new_code()
        if c not in taken and c not in fresh:
            fresh.append(c)
    conn.execute(
        campaign_codes.insert(),
        [{"code": c, "campaign_id": campaign_id, "created_at": now} for c in fresh],
    )
    return fresh


def claim_code(
    conn: Connection,
    code: str,
    customer_id: str,
    at: datetime,
    *,
    loyalty: Any = None,
    coupon_template: str | None = None,
) -> dict[str, Any]:
    """Claim ``code`` for ``customer_id``; a second claim by the same customer is a no-op."""
    norm = code.strip().upper()
    row = (
        conn.execute(select(campaign_codes).where(campaign_codes.c.code == norm)).mappings().first()
    )
    if row is None:
        raise NotFoundError(
            f"no insert code {norm!r}",
            code="insert_code.not_found",
            message_zh=f"没有卡片码 {norm!r}",
        )
    if row["claimed_by"] is not None:
        if row["claimed_by"] == customer_id:
            return dict(row)
        raise ConflictError(
            f"insert code {norm!r} was already claimed",
            code="insert_code.used",
            message_zh=f"卡片码 {norm!r} 已被领取",
        )
    coupon_code = None
    if loyalty is not None and coupon_template:
        coupon = loyalty.issue_coupon(
            conn, coupon_template, customer_id, idempotency_key=f"insert:{norm}"
        )
        coupon_code = coupon["code"]
    conn.execute(
        update(campaign_codes)
        .where(campaign_codes.c.code == norm, campaign_codes.c.claimed_by.is_(None))
        .values(claimed_by=customer_id, claimed_at=at, coupon_code=coupon_code)
    )
    return dict(
        conn.execute(select(campaign_codes).where(campaign_codes.c.code == norm)).mappings().one()
    )
