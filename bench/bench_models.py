"""Prediction-model benchmark: huitouke vs lifetimes, side by side in one run.

    python bench/bench_models.py            # 1,000,000 customers
    python bench/bench_models.py --quick    # 100,000 customers, for a smoke run

Customers are simulated from the BG/NBD process with CDNOW-like parameters (per week:
r 0.243, α 4.41, a 0.793, b 2.43), acquired over 12 weeks and observed to day 273, with
order dates in whole days (so, as with real data, many customers share a history).

Timed:
1. BG/NBD fit from the raw per-customer arrays (both libraries get the same arrays).
2. Pareto/NBD fit given the weighted unique rows (both get the same rows and weights).
3. Scoring every customer with the fitted BG/NBD and Gamma-Gamma: P(alive), expected
   orders in 90 days, 12-month CLV (1% a month) and the next-order median and 80% interval.

4. BG/NBD fit on data that does not compress (``spread`` case): 1,000,000 customers
   acquired uniformly over 78 weeks and measured in **days** (CDNOW-like parameters per
   day: α 4.41 × 7), so T takes 546 values and the histories hundreds of thousands of
   distinct (x, t_x, T) rows. Both libraries are fitted on the full raw arrays, side by
   side (no subsampling).

Each time is the best of ``--repeats`` runs (``--peer-repeats`` for lifetimes).
``--case heavy`` or ``--case spread`` runs one case only.
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from huitouke.models import BGNBD, GammaGamma, ParetoNBD, customer_lifetime_value
from huitouke.models._base import compress_rows
from huitouke.models.simulate import simulate_bgnbd, simulate_gamma_gamma

TRUTH = {"r": 0.243, "alpha": 4.41, "a": 0.793, "b": 2.43}


def best_of(repeats: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    best = float("inf")
    result: Any = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def simulate(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ages = (273 - rng.integers(0, 84, n)) / 7
    x, tx, t = simulate_bgnbd(n, *TRUTH.values(), ages, rng, resolution=1 / 7)
    spend = np.zeros(n)
    rep = x > 0
    spend[rep] = simulate_gamma_gamma(x[rep], 6.25, 3.74, 15.44, rng)
    return x, tx, t, spend


def simulate_spread(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Customers acquired uniformly over 78 weeks, ages and order times in whole days."""
    rng = np.random.default_rng(seed)
    ages = rng.integers(1, 78 * 7 + 1, n).astype(np.float64)
    r, alpha, a, b = TRUTH.values()
    return simulate_bgnbd(n, r, alpha * 7, a, b, ages, rng, resolution=1.0)


def spread_case(n: int, repeats: int, peer_repeats: int, seed: int) -> tuple[str, float, float]:
    import lifetimes

    x, tx, t = simulate_spread(n, seed)
    (ux, _, _), _, _ = compress_rows(x, tx, t)
    print(
        f"spread: customers {n:,}; repeat orders {int(x.sum()):,}; "
        f"distinct (x, t_x, T) rows {ux.size:,}; distinct T {np.unique(t).size:,} (days)"
    )
    ours_s, bg = best_of(repeats, lambda: BGNBD().fit(x, tx, t))
    peer_s, peer = best_of(peer_repeats, lambda: lifetimes.BetaGeoFitter().fit(x, tx, t))
    print("spread BG/NBD ours", {k: round(v, 4) for k, v in bg.params_.items()})
    print("spread BG/NBD peer", {k: round(float(v), 4) for k, v in peer.params_.items()})
    return ("BG/NBD fit, 1M customers over 78 weeks in days (spread)", ours_s, peer_s)


def score(
    bg: BGNBD, gg: GammaGamma, x: np.ndarray, tx: np.ndarray, t: np.ndarray, spend: np.ndarray
) -> pd.DataFrame:
    week = 7.0
    alive = bg.probability_alive(x, tx, t)
    e90 = bg.conditional_expected_purchases(90 / week, x, tx, t)
    value = gg.conditional_expected_average_profit(x, spend)
    clv = customer_lifetime_value(
        bg, x, tx, t, value, horizon=365 / week, period=365 / 12 / week, discount_rate=0.01
    )
    nxt = bg.next_order_distribution(x, tx, t, coverage=0.8)
    return pd.DataFrame(
        {
            "p_alive": alive,
            "orders_90d": e90,
            "clv": clv,
            "next_median": nxt["median"],
            "next_lower": nxt["lower"],
            "next_upper": nxt["upper"],
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="100,000 customers instead of 1,000,000"
    )
    parser.add_argument("--n", type=int, default=None, help="number of customers")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peer-repeats", type=int, default=None)
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--case", choices=("all", "heavy", "spread"), default="all")
    args = parser.parse_args()
    n = args.n or (100_000 if args.quick else 1_000_000)
    peer_repeats = args.peer_repeats or (1 if not args.quick else 2)

    warnings.filterwarnings("ignore")
    import lifetimes

    x, tx, t, spend = simulate(n, args.seed)
    (ux, utx, ut), w, _ = compress_rows(x, tx, t)
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, lifetimes {lifetimes.__version__}"
    )
    print(f"customers {n:,}; repeat orders {int(x.sum()):,}; distinct (x, t_x, T) rows {ux.size:,}")

    # warm-up: import-time and first-call costs of both libraries are not the subject
    BGNBD().fit(x[:2000], tx[:2000], t[:2000])
    lifetimes.BetaGeoFitter().fit(x[:2000], tx[:2000], t[:2000])

    rows = []
    if args.case == "spread":
        _table([spread_case(n, args.repeats, peer_repeats, args.seed)])
        return
    ours_bg_s, bg = best_of(args.repeats, lambda: BGNBD().fit(x, tx, t))
    peer_bg_s, peer_bg = best_of(peer_repeats, lambda: lifetimes.BetaGeoFitter().fit(x, tx, t))
    rows.append(("BG/NBD fit, raw arrays", ours_bg_s, peer_bg_s))
    print("BG/NBD   ours", {k: round(v, 4) for k, v in bg.params_.items()})
    print("BG/NBD   peer", {k: round(float(v), 4) for k, v in peer_bg.params_.items()})

    ours_p_s, pn = best_of(args.repeats, lambda: ParetoNBD().fit(ux, utx, ut, w))
    peer_p_s, peer_pn = best_of(
        peer_repeats,
        lambda: lifetimes.ParetoNBDFitter().fit(ux, utx, ut, weights=w.astype(np.int64)),
    )
    rows.append(("Pareto/NBD fit, weighted unique rows", ours_p_s, peer_p_s))
    print(
        "Pareto   ours",
        {k: round(v, 4) for k, v in pn.params_.items()},
        f"LL {pn.log_likelihood_:.2f}",
    )
    peer_ll = float(
        lifetimes.ParetoNBDFitter._conditional_log_likelihood(tuple(peer_pn.params_), ux, utx, ut)
        @ w
    )
    print(
        "Pareto   peer",
        {k: round(float(v), 4) for k, v in peer_pn.params_.items()},
        f"LL {peer_ll:.2f}",
    )

    rep = x > 0
    gg = GammaGamma().fit(x[rep], spend[rep])
    score_s, scored = best_of(args.repeats, lambda: score(bg, gg, x, tx, t, spend))
    rows.append(
        ("Scoring: P(alive), 90-day orders, CLV, next-order interval", score_s, float("nan"))
    )

    assert not scored.isna().any().any()
    if args.case == "all":
        rows.append(spread_case(n, args.repeats, peer_repeats, args.seed))
    _table(rows)


def _table(rows: list[tuple[str, float, float]]) -> None:
    print()
    print("| task | huitouke (s) | lifetimes (s) | speed-up |")
    print("|---|---:|---:|---:|")
    for name, ours, peer in rows:
        ratio = peer / ours if np.isfinite(peer) else float("nan")
        peer_txt = f"{peer:.2f}" if np.isfinite(peer) else "—"
        ratio_txt = f"{ratio:.1f}×" if np.isfinite(ratio) else "—"
        print(f"| {name} | {ours:.3f} | {peer_txt} | {ratio_txt} |")


if __name__ == "__main__":
    main()
