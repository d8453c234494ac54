"""Benchmark: evaluate every built-in journey for 1M customers on a busy day.

The day is 2026-11-08 — 3 days before 双11, so the promotion countdowns and the low win-back
promotion offer fire for their whole audiences, on top of the date- and event-triggered
journeys. Every planned message goes through messaging's real contact rules (consent,
unsubscribes, the default frequency caps, quiet hours) with the in-run cap accounting.

Baseline (named anchor, not runnable here): Mautic's documented segment rebuild of about
40 minutes for one segment of 260,000 contacts; scaled linearly to the same customer count
it is the "Mautic-equivalent" time the ratio is computed against.

    .venv/bin/python bench/bench_journeys.py            # 1,000,000 customers
    .venv/bin/python bench/bench_journeys.py --quick    # 100,000 customers
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _journeys_data import synthetic_customers, synthetic_events
from huitouke.journeys.calendar import default_promotions
from huitouke.journeys.engine import EvaluationContext, evaluate
from huitouke.journeys.gate import Loaded, MessagingGate
from huitouke.journeys.loader import builtin_journeys
from huitouke.messaging.rules import ContactPolicy, CustomerContext, parse_caps
from huitouke.settings import Settings

MAUTIC_SECONDS = 40 * 60
MAUTIC_CONTACTS = 260_000


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--quick", action="store_true", help="100,000 customers")
    ap.add_argument("--as-of", default="2026-11-08")
    args = ap.parse_args(argv)
    n = 100_000 if args.quick else args.customers
    as_of = date.fromisoformat(args.as_of)

    t = time.perf_counter()
    customers = synthetic_customers(n, as_of)
    events = synthetic_events(customers, as_of)
    gen_s = time.perf_counter() - t

    rng = np.random.default_rng(3)
    consent = rng.random(n) < 0.9
    unsub = rng.random(n) < 0.02
    ids = customers["customer_id"].tolist()
    flags = dict(zip(ids, zip(consent.tolist(), unsub.tolist(), strict=True), strict=True))

    def loader(batch: Sequence[str]) -> Loaded:
        ctx = {}
        for cid in batch:
            ok, gone = flags[cid]
            ctx[cid] = CustomerContext(
                customer_id=cid,
                consent={"sms": ok},
                unsubscribed=frozenset({"sms"}) if gone else frozenset(),
            )
        return Loaded(ctx, {}, set())

    settings = Settings()
    policy = ContactPolicy(caps=parse_caps(settings.contact_caps), default_zone=settings.timezone)
    journeys = [j.model_copy(update={"enabled": True}) for j in builtin_journeys()]
    promos = default_promotions(date(as_of.year, 1, 1), date(as_of.year + 1, 12, 31))
    now = datetime.combine(as_of, datetime.min.time(), tzinfo=UTC)

    t = time.perf_counter()
    cpu = time.process_time()
    gate = MessagingGate(policy, loader, planned_at=now)
    ctx = EvaluationContext(
        timezone=settings.timezone, events=events, promotions=promos, gate=gate, salt="bench"
    )
    plan = evaluate(journeys, customers, ctx, as_of)
    eval_s = time.perf_counter() - t
    eval_cpu = time.process_time() - cpu

    reasons = plan.rows["reason_code"].value_counts().to_dict()
    mautic_equiv = MAUTIC_SECONDS * n / MAUTIC_CONTACTS
    out = {
        "customers": n,
        "journeys": len(journeys),
        "as_of": as_of.isoformat(),
        "generate_s": round(gen_s, 2),
        "evaluate_s": round(eval_s, 2),
        # CPU seconds of this process: what the run costs when the machine is shared
        "evaluate_cpu_s": round(eval_cpu, 2),
        "due_rows": len(plan.rows),
        "planned": int((plan.rows["status"] == "planned").sum()),
        "reasons": {str(k): int(v) for k, v in reasons.items()},
        "customers_per_s": round(n / eval_s),
        "baseline": "Mautic segment rebuild, ~40 min per 260k contacts (documented anchor), scaled",
        "baseline_s": round(mautic_equiv),
        "speedup_vs_baseline": round(mautic_equiv / eval_s, 1),
        "target_s": 60,
        "meets_target": eval_s <= 60,
    }
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
