"""Related products (关联推荐): association rules from baskets and from sequences.

Two kinds of rule ``A → B``, both counted with sparse matrix products (no pair loops):

- ``basket`` — A and B in the same order. With X the orders × items 0/1 matrix,
  ``C = XᵀX`` holds the co-occurrence counts;
- ``sequence`` — "bought A, later B": B in the order that follows an order with A, for the
  same customer. With P and N the (previous order, next order) transition matrices,
  ``C = PᵀN``.

For a rule, with n the number of orders (basket) or transitions (sequence):
support = C[A,B] / n, confidence = C[A,B] / count(A), lift = confidence / (count(B) / n)
(Agrawal, Imieliński & Swami 1993; Brin et al. 1997 for lift).

:func:`evaluate_hit_rate` measures a recommender on held-out orders: for every customer whose
next order falls after the cut-off, do the top-k items recommended from their previous order
contain an item of that next order? — against recommending the k most popular items.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import sparse

__all__ = [
    "Recommender",
    "baskets_from_store",
    "evaluate_hit_rate",
    "mine_rules",
    "synthetic_baskets",
]

BASKET_COLUMNS = ("order_id", "customer_id", "ordered_at", "item")


def _check(baskets: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in BASKET_COLUMNS if c not in baskets.columns]
    if missing:
        from huitouke.errors import InputError

        raise InputError(
            f"baskets lack column(s) {', '.join(missing)}",
            code="input.missing_columns",
            message_zh=f"购物篮数据缺少列:{', '.join(missing)}",
            details={"field": missing[0]},
        )
    return baskets.dropna(subset=["item"]).drop_duplicates(["order_id", "item"])


def _matrix(
    codes_rows: np.ndarray, codes_items: np.ndarray, n_rows: int, n_items: int
) -> sparse.csr_matrix:
    data = np.ones(len(codes_rows), dtype=np.int32)
    m = sparse.csr_matrix((data, (codes_rows, codes_items)), shape=(n_rows, n_items))
    m.data[:] = 1  # duplicates collapse to presence
    return m


def _transitions(b: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Orders in time order per customer, and each order's next order id."""
    orders = b.drop_duplicates("order_id")[["order_id", "customer_id", "ordered_at"]]
    orders = orders.sort_values(["customer_id", "ordered_at", "order_id"])
    nxt = orders.groupby("customer_id")["order_id"].shift(-1)
    return orders, pd.Series(nxt.to_numpy(), index=orders["order_id"].to_numpy())


def _counts(
    b: pd.DataFrame, kind: str
) -> tuple[sparse.csr_matrix, np.ndarray, np.ndarray, int, pd.Index]:
    items = pd.Index(sorted(b["item"].astype(str).unique()))
    icode = items.get_indexer(b["item"].astype(str))
    if kind == "basket":
        oidx = pd.Index(b["order_id"].unique())
        x = _matrix(oidx.get_indexer(b["order_id"]), icode, len(oidx), len(items))
        c = (x.T @ x).tocsr()
        cnt = np.asarray(x.sum(axis=0)).ravel()
        c.setdiag(0)
        c.eliminate_zeros()
        return c, cnt, cnt, len(oidx), items
    _, nxt = _transitions(b)
    pairs = nxt.dropna()
    tidx = pd.Index(pairs.index)  # a transition is named by its previous order
    prev_rows = tidx.get_indexer(b["order_id"])
    keep = prev_rows >= 0
    p = _matrix(prev_rows[keep], icode[keep], len(tidx), len(items))
    next_of = pd.Series(np.arange(len(tidx)), index=pairs.to_numpy())
    nrows = next_of.reindex(b["order_id"]).to_numpy()
    keep = ~np.isnan(nrows)
    n = _matrix(nrows[keep].astype(np.int64), icode[keep], len(tidx), len(items))
    c = (p.T @ n).tocsr()
    return c, np.asarray(p.sum(axis=0)).ravel(), np.asarray(n.sum(axis=0)).ravel(), len(tidx), items


def mine_rules(
    baskets: pd.DataFrame,
    *,
    kind: Literal["basket", "sequence"] = "basket",
    min_count: int = 2,
    min_confidence: float = 0.0,
) -> pd.DataFrame:
    """Rules ``antecedent → consequent`` with count, support, confidence and lift, best lift first.

    ``baskets``: one row per (order, item) with columns order_id, customer_id, ordered_at, item.
    """
    b = _check(baskets)
    cols = ["antecedent", "consequent", "count", "support", "confidence", "lift"]
    if b.empty:
        return pd.DataFrame(columns=cols)
    c, cnt_a, cnt_b, n, items = _counts(b, kind)
    coo = c.tocoo()
    m = coo.data >= min_count
    a_idx, b_idx, k = coo.row[m], coo.col[m], coo.data[m].astype(float)
    if n == 0 or len(k) == 0:
        return pd.DataFrame(columns=cols)
    conf = k / cnt_a[a_idx]
    lift = conf / (cnt_b[b_idx] / n)
    out = pd.DataFrame(
        {
            "antecedent": items[a_idx],
            "consequent": items[b_idx],
            "count": k.astype(int),
            "support": k / n,
            "confidence": conf,
            "lift": lift,
        }
    )
    out = out[out["confidence"] >= min_confidence]
    return out.sort_values(
        ["lift", "confidence", "antecedent", "consequent"], ascending=[False, False, True, True]
    ).reset_index(drop=True)


@dataclass
class Recommender:
    """Top-k related items for a set of items, from mined rules (confidence-weighted)."""

    rules: pd.DataFrame
    popular: list[str]
    base_rate: dict[str, float]
    names: dict[str, str] | None = None
    last_items: dict[str, list[str]] | None = None

    @classmethod
    def fit(
        cls,
        baskets: pd.DataFrame,
        *,
        kind: Literal["basket", "sequence", "both"] = "both",
        min_count: int = 2,
        names: dict[str, str] | None = None,
    ) -> Recommender:
        b = _check(baskets)
        kinds: list[Literal["basket", "sequence"]] = (
            ["basket", "sequence"] if kind == "both" else [kind]
        )
        rules = pd.concat(
            [mine_rules(b, kind=k, min_count=min_count) for k in kinds], ignore_index=True
        )
        vc = b["item"].astype(str).value_counts()
        n_orders = max(b["order_id"].nunique(), 1)
        base = {str(i): float(v) / n_orders for i, v in vc.items()}
        last = _last_order_items(b)
        return cls(
            rules=rules, popular=vc.index.tolist(), base_rate=base, names=names, last_items=last
        )

    def recommend(self, items: Sequence[str], k: int = 3) -> list[str]:
        """The k items most likely in the next order: each item scores its base rate (the
        share of orders that contain it), raised to the confidence of any rule from
        ``items`` — so a rule only wins over popularity when it is more likely."""
        score = dict(self.base_rate)
        r = self.rules[self.rules["antecedent"].isin(list(items))]
        if not r.empty:
            best = r.groupby("consequent")["confidence"].max()
            for item, conf in best.items():
                if conf > score.get(str(item), 0.0):
                    score[str(item)] = float(conf)
        return [i for i, _ in sorted(score.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]

    def for_customer(self, customer_id: str, k: int = 3) -> list[dict[str, Any]]:
        """Template-ready recommendations from the customer's last order."""
        items = (self.last_items or {}).get(customer_id, [])
        return [{"sku": s, "name": (self.names or {}).get(s, s)} for s in self.recommend(items, k)]


def _last_order_items(b: pd.DataFrame) -> dict[str, list[str]]:
    orders, _ = _transitions(b)
    last = orders.groupby("customer_id")["order_id"].last()
    sub = b[b["order_id"].isin(set(last.to_numpy()))]
    return {str(c): [str(i) for i in g["item"]] for c, g in sub.groupby("customer_id")}


def evaluate_hit_rate(
    baskets: pd.DataFrame,
    cutoff: datetime,
    *,
    k: int = 3,
    min_count: int = 5,
    kind: Literal["basket", "sequence", "both"] = "sequence",
) -> dict[str, Any]:
    """Hit rate@k on held-out next orders: rules vs the most-popular baseline.

    Rules and popularity are learnt on orders before ``cutoff``. A test case is a customer's
    first order on or after the cut-off whose previous order is before it; it is a hit when an
    item of that order is among the k recommended from the previous order's items.
    """
    b = _check(baskets)
    ts = pd.to_datetime(b["ordered_at"], utc=True)
    cut = pd.Timestamp(cutoff)
    cut = cut.tz_localize("UTC") if cut.tzinfo is None else cut.tz_convert("UTC")
    train = b[ts < cut]
    rec = Recommender.fit(train, kind=kind, min_count=min_count)
    popular = rec.popular[:k]
    orders, nxt = _transitions(b)
    order_time: dict[Any, Any] = dict(
        zip(orders["order_id"], pd.to_datetime(orders["ordered_at"], utc=True), strict=True)
    )
    items_of = b.groupby("order_id")["item"].apply(lambda s: {str(x) for x in s}).to_dict()
    cases = hits_rules = hits_pop = 0
    seen: set[str] = set()
    cust_of: dict[str, Any] = {
        str(o): c for o, c in zip(orders["order_id"], orders["customer_id"], strict=True)
    }
    for prev, nx in nxt.dropna().items():
        cust = cust_of[str(prev)]
        if cust in seen or not (order_time[prev] < cut <= order_time[nx]):
            continue
        seen.add(cust)
        actual = items_of.get(nx, set())
        cases += 1
        hits_rules += bool(actual & set(rec.recommend(sorted(items_of.get(prev, set())), k)))
        hits_pop += bool(actual & set(popular))
    return {
        "k": k,
        "cases": cases,
        "hit_rate_rules": hits_rules / cases if cases else None,
        "hit_rate_popular": hits_pop / cases if cases else None,
        "rules": len(rec.rules),
    }


def baskets_from_store(store: Any, *, by: str = "sku") -> pd.DataFrame:
    """(order, customer, time, item) rows from order lines of counted orders; ``by`` sku or category."""
    from sqlalchemy import select

    from huitouke.core.orders import COUNTED_STATUSES, order_ref
    from huitouke.store.tables import order_lines, orders

    col = order_lines.c.sku if by == "sku" else order_lines.c.category
    q = (
        select(orders.c.source, orders.c.order_id, orders.c.customer_id, orders.c.ordered_at, col)
        .select_from(
            order_lines.join(
                orders,
                (order_lines.c.source == orders.c.source)
                & (order_lines.c.order_id == orders.c.order_id),
            )
        )
        .where(orders.c.status.in_(COUNTED_STATUSES))
    )
    with store.connect() as conn:
        # an order is (source, order_id): one basket per order whatever ids sources share
        rows = [(order_ref(s, o), *rest) for s, o, *rest in conn.execute(q).all()]
    return pd.DataFrame(rows, columns=list(BASKET_COLUMNS))


def synthetic_baskets(
    customers: int = 3000,
    items: int = 120,
    *,
    seed: int = 11,
    pairs: Sequence[tuple[str, str]] = (
        ("sku001", "sku002"),
        ("sku010", "sku011"),
        ("sku020", "sku021"),
    ),
    follow: Sequence[tuple[str, str]] = (
        ("sku030", "sku031"),
        ("sku040", "sku041"),
        ("sku050", "sku051"),
    ),
    start: str = "2025-01-01",
) -> pd.DataFrame:
    """Orders with Zipf-popular items and planted associations: each ``pairs`` (A, B) is
    bought together with probability 0.6 when A is bought; each ``follow`` (A, B) puts B in
    the customer's next order with probability 0.6. For tests and the docs' figures."""
    rng = np.random.default_rng(seed)
    names = [f"sku{i:03d}" for i in range(items)]
    pop = 1.0 / np.arange(1, items + 1) ** 0.9
    pop /= pop.sum()
    pair_of = dict(pairs)
    follow_of = dict(follow)
    rows = []
    t0 = pd.Timestamp(start, tz="UTC")
    oid = 0
    for c in range(customers):
        n_orders = int(rng.integers(1, 7))
        day = float(rng.integers(0, 120))
        carry: set[str] = set()
        for _ in range(n_orders):
            size = int(rng.integers(1, 4))
            basket = set(rng.choice(names, size=size, replace=False, p=pop).tolist())
            # planted: the "follow" item comes back in the next order
            basket |= {b for b in sorted(carry) if rng.random() < 0.6}
            if rng.random() < 0.25:  # planted antecedents are bought fairly often
                basket.add(str(rng.choice([a for a, _ in (*pairs, *follow)])))
            basket |= {pair_of[a] for a in sorted(basket) if a in pair_of and rng.random() < 0.6}
            carry = {follow_of[a] for a in basket if a in follow_of}
            at = t0 + pd.Timedelta(days=day)
            for it in sorted(basket):
                rows.append((f"o{oid}", f"c{c}", at, it))
            oid += 1
            day += float(rng.integers(5, 60))
    return pd.DataFrame(rows, columns=list(BASKET_COLUMNS))
