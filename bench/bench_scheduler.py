"""The scheduler's cost when nothing is due: one tick over the default jobs, with the
next-slot cache (what runs) against recomputing every job's latest slot each tick (the
baseline), alternating, in one process.

    python bench/bench_scheduler.py [--ticks 2000]

A tick runs every HUITOUKE_SCHEDULER_TICK_SECONDS (1 s by default), so its cost is the
scheduler's idle CPU.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime

from huitouke.app.scheduler import Registry, Scheduler
from huitouke.settings import Settings
from huitouke.store.db import Store


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ticks", type=int, default=2000)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        store = Store(f"sqlite:///{d}/bench.db")
        store.migrate()
        settings = Settings()
        now = datetime(2027, 1, 1, 12, tzinfo=UTC)
        sched = Scheduler(store, settings, Registry.load(settings), clock=lambda: now)
        sched.load_history()
        sched.seen = {j.name: s.latest(now) for j, s in sched.jobs}  # nothing is due
        results: dict[str, list[float]] = {"cached": [], "recomputed": []}
        for _ in range(2):
            for mode in ("recomputed", "cached"):
                t0 = time.perf_counter()
                for _ in range(args.ticks):
                    if mode == "recomputed":
                        sched.next_due.clear()
                    assert sched.tick() == []
                results[mode].append((time.perf_counter() - t0) / args.ticks * 1e6)
        sched.close()
        store.dispose()
    for mode, us in results.items():
        print(f"{mode:>10}: {min(us):8.1f} µs per tick ({len(sched.jobs)} jobs)")
    print(f"ratio: {min(results['recomputed']) / min(results['cached']):.0f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
