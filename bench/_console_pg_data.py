"""A large synthetic shop written straight into a PostgreSQL store with COPY, for the
console's load benchmark (bench_console_pg.py).

Why not ``huitouke import``: the import use case reads a file, validates every row and
records each order through the order events (loyalty effects, consent), one batch per
file — the right path for a merchant, and measured on its own in the import benchmarks.
Ten million orders through it would take hours on a two-core machine; what this benchmark
measures is the console reading a store of that size, which only needs the stored rows to
be what an import stores (the same tables, columns, constraints and indexes — the schema
comes from the store's own migrations; the rows satisfy its CHECKs).

The shape follows the real data sets in the shared data directory, not uniform noise:

- orders per customer: 40 % buy once (CDNOW 50 %, Online Retail 34 %); the repeat buyers'
  further orders are heavy-tailed (log-normal), scaled so the shop averages the requested
  orders per customer (CDNOW averages 3, Online Retail 4.3; this shop is a bigger one);
- days between a customer's orders: log-normal with log-mean 3.3 and log-sd 1.3 (CDNOW
  3.45 / 1.44, Online Retail 3.20 / 1.23: a median gap of about four weeks);
- order amounts: log-normal with log-mean 4.6 and log-sd 0.9 in CNY (the CDNOW log-sd 0.73
  and Online Retail 1.07 around a shop-sized median of about 100 yuan);
- first orders spread over four years with growth (more new customers later);
- statuses: 95 % paid, 2.5 % refunded, 1.5 % partially refunded, 1 % cancelled;
- customer ids are 8-digit numbers, phones Chinese mobile numbers, a third with e-mail,
  names from common Chinese surnames and given names (a tenth in pinyin).
"""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘")
GIVEN = list("伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥玲芬燕彬")
PINYIN = ["wang", "li", "zhang", "liu", "chen", "yang", "huang", "zhao", "wu", "zhou"]
START = datetime(2022, 12, 1, tzinfo=UTC)
END = datetime(2026, 11, 30, tzinfo=UTC)


def _counts(rng: np.random.Generator, customers: int, orders: int) -> np.ndarray:
    """Orders per customer: 40 % one, the rest 1 + a log-normal tail; total exactly
    ``orders`` (the tail is rescaled, then the rounding difference spread at random)."""
    one = rng.random(customers) < 0.40
    tail = rng.lognormal(2.0, 1.1, customers)
    tail[one] = 0.0
    extra = orders - customers
    tail *= extra / tail.sum()
    counts = 1 + np.floor(tail).astype(np.int64)
    short = orders - int(counts.sum())
    repeaters = np.flatnonzero(~one)
    if short > 0:
        np.add.at(counts, rng.choice(repeaters, short), 1)
    return counts


def generate(
    conninfo: str, *, customers: int, orders: int, seed: int = 20261206, log: Any = print
) -> dict[str, float]:
    """Write ``customers`` and exactly ``orders`` rows into the migrated store at
    ``conninfo`` (a libpq string); returns the seconds each step took."""
    import psycopg

    rng = np.random.default_rng(seed)
    took: dict[str, float] = {}
    t0 = time.perf_counter()
    counts = _counts(rng, customers, orders)
    span = (END - START).total_seconds()
    # first orders: growth over the span (density rising linearly from 1 to 3)
    u = rng.random(customers)
    first = span * (np.sqrt(1 + 8 * u) - 1) / 2
    first = np.clip(first, 0, span * 0.98)
    ids = np.arange(1, customers + 1)
    now = datetime.now(UTC).replace(tzinfo=None)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute("SET synchronous_commit = off")
        # customers -------------------------------------------------------------------------
        cid = pa.array(np.char.zfill(ids.astype(str), 8))
        sur = rng.integers(0, len(SURNAMES), customers)
        g1 = rng.integers(0, len(GIVEN), customers)
        g2 = rng.integers(0, len(GIVEN), customers)
        latin = rng.random(customers) < 0.10
        names = [
            (f"{PINYIN[s % len(PINYIN)]} {GIVEN[a]}" if lat else SURNAMES[s] + GIVEN[a] + GIVEN[b])
            for s, a, b, lat in zip(sur, g1, g2, latin, strict=True)
        ]
        prefixes = np.array(["138", "139", "135", "136", "137", "150", "151", "186", "188", "199"])
        phones = np.char.add(
            prefixes[rng.integers(0, len(prefixes), customers)],
            np.char.zfill(rng.integers(0, 100_000_000, customers).astype(str), 8),
        )
        has_mail = rng.random(customers) < 0.33
        domains = np.array(["qq.com", "163.com", "126.com", "gmail.com", "outlook.com"])
        mails = np.char.add(
            np.char.add(np.array([PINYIN[s % len(PINYIN)] for s in sur]), ids.astype(str)),
            np.char.add("@", domains[rng.integers(0, len(domains), customers)]),
        )
        created = pa.array(
            np.datetime64(START.replace(tzinfo=None), "us")
            + (first * 1e6).astype("timedelta64[us]")
        )
        table = pa.table(
            {
                "customer_id": cid,
                "name": pa.array(names),
                "phone": pa.array(phones),
                "email": pa.array(np.where(has_mail, mails, None)),
                "tags": pa.array(["[]"] * customers),
                "attributes": pa.array(["{}"] * customers),
                "consent": pa.array(["{}"] * customers),
                "created_at": created,
                "updated_at": pa.array([now] * customers, pa.timestamp("us")),
            }
        )
        _copy(conn, "customers", table)
        took["customers_s"] = time.perf_counter() - t0
        log(f"customers: {customers:,} in {took['customers_s']:.0f} s")
        # orders ----------------------------------------------------------------------------
        t1 = time.perf_counter()
        conn.execute("DROP INDEX ix_orders_customer_ordered")
        conn.execute("DROP INDEX ix_orders_ordered_at")
        owner = np.repeat(np.arange(customers), counts)
        gaps = rng.lognormal(3.3, 1.3, orders) * 86400.0
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        gaps[starts] = 0.0
        offs = np.cumsum(gaps)
        offs -= np.repeat(offs[starts], counts)
        # a customer's later orders that would fall past the end wrap back into the span
        # (ordered, after their first): keeps the exact count without a pile-up at the end
        at = first[owner] + offs
        room = span - first[owner]
        over = at > span
        at[over] = first[owner][over] + np.mod(offs[over], np.maximum(room[over], 86400.0))
        at += rng.random(orders) * 3600.0
        at = np.minimum(at, span)
        chunk = 2_000_000
        statuses = np.array(["paid", "refunded", "partially_refunded", "cancelled"])
        for lo in range(0, orders, chunk):
            hi = min(orders, lo + chunk)
            n = hi - lo
            amount = np.round(rng.lognormal(4.6, 0.9, n), 2)
            st = statuses[
                np.searchsorted(
                    np.cumsum([0.95, 0.025, 0.015, 0.01]), rng.random(n), side="right"
                ).clip(0, 3)
            ]
            refunded = np.where(
                st == "refunded",
                amount,
                np.where(
                    st == "partially_refunded", np.round(amount * rng.random(n) * 0.9, 2), 0.0
                ),
            )
            part = pa.table(
                {
                    "order_id": pa.array(np.char.zfill(np.arange(lo + 1, hi + 1).astype(str), 10)),
                    "customer_id": pc.take(cid, pa.array(owner[lo:hi])),
                    "ordered_at": pa.array(
                        np.datetime64(START.replace(tzinfo=None), "us")
                        + (at[lo:hi] * 1e6).astype("timedelta64[us]")
                    ),
                    "amount": pa.array(amount),
                    "currency": pa.array(np.full(n, "CNY")),
                    "status": pa.array(st),
                    "refunded_amount": pa.array(refunded),
                    "channel": pa.array(np.full(n, "tmall")),
                    "updated_at": pa.array([now] * n, pa.timestamp("us")),
                    "source": pa.array(np.full(n, "default")),
                }
            )
            _copy(conn, "orders", part)
            log(f"orders: {hi:,} / {orders:,} ({time.perf_counter() - t1:.0f} s)")
        took["orders_copy_s"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        conn.execute("CREATE INDEX ix_orders_customer_ordered ON orders (customer_id, ordered_at)")
        conn.execute("CREATE INDEX ix_orders_ordered_at ON orders (ordered_at)")
        took["orders_index_s"] = time.perf_counter() - t2
        log(f"orders indexed in {took['orders_index_s']:.0f} s")
    return took


def _copy(conn: Any, name: str, table: pa.Table) -> None:
    buf = io.BytesIO()
    pacsv.write_csv(
        table,
        buf,
        pacsv.WriteOptions(include_header=False, quoting_style="needed"),
    )
    cols = ", ".join(table.column_names)
    with conn.cursor() as cur, cur.copy(f"COPY {name} ({cols}) FROM STDIN (FORMAT csv)") as cp:
        view = buf.getbuffer()
        for i in range(0, len(view), 1 << 22):
            cp.write(view[i : i + (1 << 22)])


def generate_loyalty(
    conninfo: str, *, members: int, seed: int = 20261207, log: Any = print
) -> dict[str, float]:
    """A loyalty ledger for the first ``members`` customers of the store, in the shapes the
    loyalty use cases write (bench_console_loyalty.py's ``seed``, at scale and with COPY):
    each member a tier of the example shop program (or none), a points account with one
    earning entry; every fifth stored value (paid, released bonus, pending bonus, one top-up
    entry each); two coupons each, one in three redeemed. The program itself is saved by
    the caller (the store's own ``save_program``)."""
    import psycopg

    rng = np.random.default_rng(seed)
    took: dict[str, float] = {}
    t0 = time.perf_counter()
    now = datetime.now(UTC).replace(tzinfo=None)
    cid = np.char.zfill(np.arange(1, members + 1).astype(str), 8)
    at = np.datetime64(now, "us") - (rng.random(members) * 120 * 86400e6).astype("timedelta64[us]")
    tiers = np.array(["v1", "v1", "v2", "v3", ""])[rng.integers(0, 5, members)]
    stored = rng.random(members) < 0.2
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        _copy(
            conn,
            "loyalty_members",
            pa.table(
                {
                    "customer_id": pa.array(cid),
                    "tier": pa.array(np.where(tiers == "", None, tiers)),
                    "preferences": pa.array(["{}"] * members),
                    "paid_orders": pa.array(np.ones(members, np.int64)),
                    "created_at": pa.array(at),
                    "updated_at": pa.array(at),
                }
            ),
        )
        # accounts: points for everyone, then the three stored-value balances of every fifth
        sv = np.flatnonzero(stored)
        owner = np.concatenate([np.arange(members), np.repeat(sv, 3)])
        asset = np.concatenate(
            [np.full(members, "points"), np.tile(["stored_paid", "stored_bonus",
                                                 "stored_bonus_pending"], len(sv))]
        )  # fmt: skip
        balance = np.concatenate(
            [rng.integers(1, 3000, members).astype(float), np.tile([200.0, 20.0, 180.0], len(sv))]
        )
        n_acc = len(owner)
        acc_id = np.arange(1, n_acc + 1)
        _copy(
            conn,
            "loyalty_accounts",
            pa.table(
                {
                    "account_id": pa.array(acc_id),
                    "customer_id": pa.array(cid[owner]),
                    "asset": pa.array(asset),
                    "balance": pa.array(balance),
                    "updated_at": pa.array(at[owner]),
                }
            ),
        )
        conn.execute(
            f"SELECT setval(pg_get_serial_sequence('loyalty_accounts', 'account_id'), {n_acc})"
        )
        _copy(
            conn,
            "loyalty_entries",
            pa.table(
                {
                    "entry_id": pa.array(acc_id),
                    "idempotency_key": pa.array(np.char.add("seed:", acc_id.astype(str))),
                    "account_id": pa.array(acc_id),
                    "delta": pa.array(balance),
                    "balance_before": pa.array(np.zeros(n_acc)),
                    "balance_after": pa.array(balance),
                    "kind": pa.array(np.where(asset == "points", "earn", "topup")),
                    "created_at": pa.array(at[owner]),
                }
            ),
        )
        conn.execute(
            f"SELECT setval(pg_get_serial_sequence('loyalty_entries', 'entry_id'), {n_acc})"
        )
        took["accounts_s"] = time.perf_counter() - t0
        log(f"loyalty members and accounts: {members:,} / {n_acc:,} ({took['accounts_s']:.0f} s)")
        # coupons: two per member, one in three redeemed the day after issue
        holder = np.repeat(np.arange(members), 2)
        k = np.tile(["0", "1"], members)
        n = len(holder)
        issued = at[holder]
        redeemed = rng.random(n) < 1 / 3
        code = np.char.add(cid[holder], k)
        _copy(
            conn,
            "loyalty_coupons",
            pa.table(
                {
                    "code": pa.array(code),
                    "template_id": pa.array(np.full(n, "fixed20")),
                    "kind": pa.array(np.full(n, "fixed")),
                    "holder_id": pa.array(cid[holder]),
                    "issued_to": pa.array(cid[holder]),
                    "status": pa.array(np.where(redeemed, "redeemed", "issued")),
                    "value": pa.array(np.full(n, 20.0)),
                    "currency": pa.array(np.full(n, "CNY")),
                    "valid_from": pa.array(issued),
                    "valid_until": pa.array(issued + np.timedelta64(60 * 86400, "s")),
                    "issued_at": pa.array(issued),
                    "source": pa.array(np.full(n, "manual")),
                    "transfers": pa.array(np.zeros(n, np.int64)),
                    "issue_key": pa.array(np.char.add("seed:", code)),
                    "redeemed_at": pa.array(
                        np.where(
                            redeemed, issued + np.timedelta64(86400, "s"), np.datetime64("NaT")
                        ),
                        from_pandas=True,
                    ),
                    "redemption_id": pa.array(np.where(redeemed, np.char.add("r:", code), None)),
                }
            ),
        )
        took["coupons_s"] = time.perf_counter() - t0 - took["accounts_s"]
        log(f"loyalty coupons: {n:,} ({took['coupons_s']:.0f} s)")
    return took


def generate_journeys(
    conninfo: str, *, customers: int, assigned: int, seed: int = 20261208, log: Any = print
) -> dict[str, float]:
    """A win-back campaign's record, as ``journeys run`` and the dispatcher write it:
    ``assigned`` customers drawn from the store's ``customers`` assigned to the built-in
    journey ``winback_high`` over the data's last 60 days (10 % held out), and one sent SMS
    in the outbox for each treated customer — what the journeys list and a journey's
    results read (holdout uplift over the orders of every assigned customer)."""
    import psycopg

    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    pick = np.sort(rng.choice(customers, assigned, replace=False)) + 1
    cid = np.char.zfill(pick.astype(str), 8)
    end = np.datetime64(END.replace(tzinfo=None), "us")
    at = end - (rng.random(assigned) * 60 * 86400e6).astype("timedelta64[us]")
    holdout = rng.random(assigned) < 0.10
    day = at.astype("datetime64[D]")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        _copy(
            conn,
            "journey_assignments",
            pa.table(
                {
                    "journey_id": pa.array(np.full(assigned, "winback_high")),
                    "customer_id": pa.array(cid),
                    "occurrence": pa.array(day.astype(str)),
                    "group": pa.array(np.where(holdout, "holdout", "treatment")),
                    "anchor_date": pa.array(day),
                    "assigned_on": pa.array(day),
                    "assigned_at": pa.array(at),
                }
            ).rename_columns(
                ["journey_id", "customer_id", "occurrence", '"group"', "anchor_date",
                 "assigned_on", "assigned_at"]
            ),
        )  # fmt: skip
        treated = np.flatnonzero(~holdout)
        n = len(treated)
        sent = at[treated] + np.timedelta64(60, "s")
        mid = np.char.add("00000000-0000-4000-8000-", np.char.zfill(np.arange(n).astype(str), 12))
        _copy(
            conn,
            "outbox",
            pa.table(
                {
                    "message_id": pa.array(mid),
                    "dedupe_key": pa.array(np.char.add("bench:", np.arange(n).astype(str))),
                    "journey_id": pa.array(np.full(n, "winback_high")),
                    "step_id": pa.array(np.full(n, "sms")),
                    "occurrence": pa.array(day[treated].astype(str)),
                    "customer_id": pa.array(cid[treated]),
                    "channel": pa.array(np.full(n, "sms")),
                    "kind": pa.array(np.full(n, "marketing")),
                    "audience": pa.array(np.full(n, "customer")),
                    "priority": pa.array(np.full(n, 5, np.int64)),
                    "payload": pa.array(["{}"] * n),
                    "rendered": pa.array(["{}"] * n),
                    "segments": pa.array(np.ones(n, np.int64)),
                    "planned_at": pa.array(at[treated]),
                    "not_before": pa.array(at[treated]),
                    "suppress_if_ordered": pa.array(np.zeros(n, bool)),
                    "status": pa.array(np.full(n, "sent")),
                    "attempts": pa.array(np.ones(n, np.int64)),
                    "created_at": pa.array(at[treated]),
                    "updated_at": pa.array(sent),
                    "sent_at": pa.array(sent),
                }
            ),
        )
    took = {"journeys_s": time.perf_counter() - t0}
    log(f"journey assignments: {assigned:,}, sent messages: {n:,} ({took['journeys_s']:.0f} s)")
    return took
