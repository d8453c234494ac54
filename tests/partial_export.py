"""A shop export that ends in the middle of a month (19 January 2025), the shape of issue 10's
defect: read naively, December's 回购率 reads 12.2% (true 21.0%) and January's 复购率 2.0%
(true 7.1%).

Asia/Shanghai wall times, a generic CSV as a merchant would export it. The full history runs
to the end of January; the export holds what had happened by 19 January.

* November 2024: 400 customers n0..n399 buy once on 12 November; n0..n99 buy again in
  December (so November's buy-back rate is 100/400 = 25.0%, December complete).
* December: 1,000 buyers — n0..n99 and d100..d999 — one order each on 10 December.
* January (full): 210 of December's buyers buy again (21.0%): n0..n99 and d100..d121 by
  19 January (122 → 12.2%), d122..d209 on 25 January. New customers j0..j789: j0..j11 buy
  twice by 15 January, j12..j70 buy on 8 January and again on 27 January, j71..j477 once by
  19 January, j478..j789 once on 26 January. Full January: 1,000 buyers, 71 with ≥2 orders
  (7.1%); by 19 January: 600 buyers, 12 with ≥2 orders (2.0%).
"""

from __future__ import annotations

from datetime import date

EXPORT_END = date(2025, 1, 19)

NOVEMBER_BUYBACK = 100 / 400
DECEMBER_BUYBACK_TRUE = 210 / 1000
DECEMBER_BUYBACK_NAIVE = 122 / 1000
JANUARY_RATE_TRUE = 71 / 1000
JANUARY_RATE_NAIVE = 12 / 600


def full_history() -> list[tuple[str, str, str, str]]:
    """(order_id, customer_id, ordered_at, amount) of every order up to 31 January 2025."""
    rows: list[tuple[str, str, str, str]] = []

    def add(cid: str, when: str, amount: str = "88.00") -> None:
        rows.append((f"T{len(rows) + 1:05d}", cid, when, amount))

    for i in range(400):
        add(f"n{i}", "2024-11-12 10:00:00")
    for i in range(100):
        add(f"n{i}", "2024-12-10 11:00:00")
    for i in range(100, 1000):
        add(f"d{i}", "2024-12-10 12:00:00")
    for i in range(100):
        add(f"n{i}", "2025-01-05 09:30:00", "66.00")
    for i in range(100, 122):
        add(f"d{i}", "2025-01-06 09:30:00", "66.00")
    for i in range(122, 210):
        add(f"d{i}", "2025-01-25 20:00:00", "66.00")
    for i in range(12):
        add(f"j{i}", "2025-01-03 14:00:00", "39.90")
        add(f"j{i}", "2025-01-15 14:00:00", "39.90")
    for i in range(12, 71):
        add(f"j{i}", "2025-01-08 14:00:00", "39.90")
        add(f"j{i}", "2025-01-27 14:00:00", "39.90")
    for i in range(71, 477):
        add(f"j{i}", "2025-01-11 16:00:00", "39.90")
    add("j477", "2025-01-19 21:15:00", "39.90")  # the export's last order
    for i in range(478, 790):
        add(f"j{i}", "2025-01-26 16:00:00", "39.90")
    return rows


def csv_text(until: date | None = EXPORT_END) -> str:
    """The export as a generic CSV (orders on or before ``until``; None: the full history)."""
    lines = ["order_id,customer_id,ordered_at,amount,status"]
    for oid, cid, when, amount in full_history():
        if until is None or date.fromisoformat(when[:10]) <= until:
            lines.append(f"{oid},{cid},{when},{amount},paid")
    return "\n".join(lines) + "\n"
