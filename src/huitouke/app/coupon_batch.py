"""Coupons issued in batch: a coupon template and a list of customer ids (typed, pasted or
a CSV file), checked before anything is issued, then issued idempotently.

The list is input like any other: every line is checked and each problem is named by its
line — an id that is not a customer of the store (neither in ``customers`` nor a loyalty
member), the same id twice, a customer who already holds the template's
``max_per_customer``, an id that cannot be one. Nothing is issued while one problem is left.

Issuing is the coupon issue use case (:meth:`LoyaltyService.issue_coupon`) once per
customer, in one unit of work, with the key ``<batch key>:<customer id>``: a batch sent
twice (a double click, a retried request) issues each coupon once, and the second answer
says how many were replayed.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, select

from huitouke.errors import InputError
from huitouke.loyalty import tables as lt
from huitouke.loyalty.coupons import issued_counts
from huitouke.loyalty.service import LoyaltyService
from huitouke.store.tables import customers

__all__ = [
    "MAX_BATCH",
    "BatchCheck",
    "Problem",
    "check_coupon_batch",
    "issue_coupon_batch",
    "known_customers",
    "parse_customer_list",
]

#: the most customers one batch may name
MAX_BATCH = 10_000
#: what a customer id may be (the REST API's identifiers): 1–128 characters, no control one
_ID = re.compile(r"^[^\x00-\x1f\x7f]{1,128}$")
_HEADERS = ("customer_id", "customer", "id", "顾客", "顾客id", "顾客编号")


@dataclass(frozen=True)
class Problem:
    """One line that cannot be issued: ``kind`` is ``unknown``, ``duplicate`` (``first``:
    the line it first appeared on), ``limit_reached`` or ``invalid``."""

    line: int
    customer_id: str
    kind: str
    first: int | None = None


@dataclass
class BatchCheck:
    template: str
    customers: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and bool(self.customers)


def parse_customer_list(text: str) -> list[tuple[int, str]]:
    """``(line number, customer id)`` for each non-empty line: one id per line, or a CSV
    file (comma, tab or semicolon) whose header names a ``customer_id`` column (else its
    first column is read). Line numbers count from 1, as an editor shows them."""
    text = text.lstrip("\ufeff")
    lines = text.splitlines()
    sample = next((ln for ln in lines if ln.strip()), "")
    delimiter = next((d for d in (",", "\t", ";") if d in sample), None)
    out: list[tuple[int, str]] = []
    column = 0
    start = 0
    if delimiter is not None:
        rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter))
        first = next((i for i, r in enumerate(rows) if any(c.strip() for c in r)), None)
        if first is not None:
            header = [c.strip().lower() for c in rows[first]]
            named = next((header.index(h) for h in _HEADERS if h in header), None)
            if named is not None:
                column, start = named, first + 1
        for i, row in enumerate(rows):
            if i < start or not any(c.strip() for c in row):
                continue
            out.append((i + 1, row[column].strip() if column < len(row) else ""))
        return out
    for i, ln in enumerate(lines):
        value = ln.strip().strip('"').strip()
        if not value or (i == 0 and value.lower() in _HEADERS):
            continue
        out.append((i + 1, value))
    return out


def known_customers(conn: Connection, ids: Sequence[str]) -> set[str]:
    """Those of ``ids`` the store knows: a customer (``customers``) or a loyalty member."""
    found: set[str] = set()
    m = lt.members.c
    for i in range(0, len(ids), 500):
        chunk = list(ids[i : i + 500])
        found.update(
            r[0]
            for r in conn.execute(
                select(customers.c.customer_id).where(customers.c.customer_id.in_(chunk))
            )
        )
        found.update(
            r[0] for r in conn.execute(select(m.customer_id).where(m.customer_id.in_(chunk)))
        )
    return found


def _issued_by_batch(conn: Connection, batch_key: str, ids: Sequence[str]) -> set[str]:
    o = lt.operations.c
    keys = {f"issue:{batch_key}:{cid}": cid for cid in ids}
    found: set[str] = set()
    items = list(keys)
    for i in range(0, len(items), 500):
        chunk = items[i : i + 500]
        found.update(keys[r[0]] for r in conn.execute(select(o.op_key).where(o.op_key.in_(chunk))))
    return found


def check_coupon_batch(
    svc: LoyaltyService, conn: Connection, template_id: str, entries: Sequence[tuple[int, str]]
) -> BatchCheck:
    """Check a batch before issuing (read-only): the template exists
    (``coupon.template_not_found``), the list is not empty nor longer than
    :data:`MAX_BATCH` (``input.invalid``), and every line names a customer who may receive
    one more coupon of the template; the problems come back by line."""
    template = svc.program.template(template_id)
    if not entries:
        raise InputError(
            "customers: the list is empty",
            code="input.invalid",
            message_zh="customers:名单为空",
            details={"field": "customers"},
        )
    if len(entries) > MAX_BATCH:
        raise InputError(
            f"customers: at most {MAX_BATCH} customers per batch, not {len(entries)}",
            code="input.invalid",
            message_zh=f"customers:每批最多 {MAX_BATCH} 位顾客,当前 {len(entries)} 位",
            details={"field": "customers", "max": MAX_BATCH, "given": len(entries)},
        )
    check = BatchCheck(template=template.id)
    seen: dict[str, int] = {}
    for line, cid in entries:
        if not _ID.match(cid):
            check.problems.append(Problem(line, cid[:140], "invalid"))
        elif cid in seen:
            check.problems.append(Problem(line, cid, "duplicate", seen[cid]))
        else:
            seen[cid] = line
            check.customers.append(cid)
    known = known_customers(conn, check.customers)
    counts = (
        issued_counts(conn, template.id, check.customers)
        if template.max_per_customer is not None
        else {}
    )
    for cid in check.customers:
        if cid not in known:
            check.problems.append(Problem(seen[cid], cid, "unknown"))
        elif (
            template.max_per_customer is not None
            and counts.get(cid, 0) >= template.max_per_customer
        ):
            check.problems.append(Problem(seen[cid], cid, "limit_reached"))
    check.problems.sort(key=lambda p: p.line)
    return check


def issue_coupon_batch(
    svc: LoyaltyService,
    conn: Connection,
    template_id: str,
    entries: Sequence[tuple[int, str]],
    *,
    batch_key: str,
) -> dict[str, Any]:
    """Check the batch again and issue one coupon of ``template_id`` to each customer, in
    the caller's unit of work. A batch with a problem issues nothing (``input.invalid``,
    ``details.problems`` by line). Idempotent by ``batch_key``: the same batch again issues
    nothing new (``replayed`` counts those issued before)."""
    check = check_coupon_batch(svc, conn, template_id, entries)
    # a customer at the template's limit because this very batch issued to them is a replay
    at_limit = [p for p in check.problems if p.kind == "limit_reached"]
    mine = _issued_by_batch(conn, batch_key, [p.customer_id for p in at_limit])
    problems = [p for p in check.problems if p.customer_id not in mine or p.kind != "limit_reached"]
    if problems:
        raise InputError(
            f"customers: {len(problems)} line(s) cannot be issued",
            code="input.invalid",
            message_zh=f"customers:有 {len(problems)} 行无法发放",
            details={
                "field": "customers",
                "problems": [p.__dict__ for p in problems],
            },
        )
    issued: list[dict[str, Any]] = []
    replayed = 0
    for cid in check.customers:
        result = svc.issue_coupon(conn, template_id, cid, idempotency_key=f"{batch_key}:{cid}")
        if result.get("replayed"):
            replayed += 1
        else:
            issued.append({"customer_id": cid, "code": result["code"]})
    return {
        "template": check.template,
        "customers": len(check.customers),
        "issued": len(issued),
        "replayed": replayed,
        "coupons": issued,
    }
