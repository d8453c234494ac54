"""Tagging a whole segment: the set-based tag change (``store.profiles.add_tags``: one
INSERT … SELECT per thousand customers) against a naive loop of one checked insert per
customer, side by side on the same SQLite store.

    python bench/bench_tags.py [N]      # N customers (default 50,000)
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from huitouke.store.db import Store
from huitouke.store.profiles import add_tags, customer_tags
from huitouke.store.tables import customers


def main(n: int) -> None:
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as d:
        store = Store(f"sqlite:///{Path(d) / 'tags.db'}")
        store.migrate()
        ids = [f"c{i:07d}" for i in range(n)]
        with store.begin() as conn:
            for i in range(0, n, 5000):
                conn.execute(
                    customers.insert(),
                    [{"customer_id": c, "tags": [], "attributes": {}, "consent": {},
                      "created_at": now, "updated_at": now} for c in ids[i : i + 5000]],
                )  # fmt: skip
        t0 = time.perf_counter()
        with store.begin() as conn:
            added = add_tags(conn, ids, ["set-based"], actor="bench", now=now)
        set_based = time.perf_counter() - t0
        assert added == n
        t0 = time.perf_counter()
        with store.begin() as conn:
            ct = customer_tags.c
            for c in ids:
                have = conn.execute(
                    select(ct.customer_id).where(ct.customer_id == c, ct.tag == "naive")
                ).first()
                if have is None:
                    conn.execute(
                        customer_tags.insert().values(
                            customer_id=c, tag="naive", added_at=now, added_by="bench"
                        )
                    )
        naive = time.perf_counter() - t0
        store.dispose()
    print(
        f"{n} customers: set-based {set_based:.2f} s (with history rows), naive per-customer "
        f"{naive:.2f} s (without history) — {naive / set_based:.1f}x"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000)
