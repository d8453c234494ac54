"""CPU per signed webhook POST: the channels' urllib3 client against an httpx client.

    python bench/bench_http_client.py [--requests 3000] [--threads 8]

Both send the same signed JSON body to the dispatch benchmark's loopback sink (its own
process; it checks every HMAC signature) from a pool of threads, keep-alive, one pool of
``--threads`` connections each, alternating twice. Prints CPU milliseconds per request and
requests per second for each run; the ratio is what counts on a shared machine.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_dispatch as bd


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=8)
    args = ap.parse_args(argv)

    import httpx

    from huitouke.messaging.channels.http import make_client
    from huitouke.messaging.channels.webhook import SIGNATURE_HEADER, sign_webhook

    q: Any = mp.Queue()
    sink = mp.Process(target=bd._sink_main, args=(q,), daemon=True)
    sink.start()
    port = q.get(timeout=30)
    url = f"http://127.0.0.1:{port}/hook"
    body = (
        '{"rendered":{"text":"亲,您常买的咖啡豆快喝完了吧?"},"pad":"' + "x" * 300 + '"}'
    ).encode()

    def headers() -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "Idempotency-Key": uuid.uuid4().hex,
            SIGNATURE_HEADER: sign_webhook(bd.SECRET, body, int(time.time())),
        }

    results: dict[str, list[float]] = {"urllib3": [], "httpx": []}
    try:
        for name in ("httpx", "urllib3", "httpx", "urllib3"):
            if name == "httpx":
                limits = httpx.Limits(
                    max_connections=args.threads, max_keepalive_connections=args.threads
                )
                hc = httpx.Client(timeout=10.0, limits=limits)

                def send(_: int, hc: httpx.Client = hc) -> int:
                    return hc.post(url, content=body, headers=headers()).status_code

                close = hc.close
            else:
                uc = make_client(10.0, args.threads)

                def send(_: int, uc: Any = uc) -> int:
                    return int(uc.request("POST", url, content=body, headers=headers()).status_code)

                close = uc.close
            with ThreadPoolExecutor(args.threads) as pool:
                c0, t0 = time.process_time(), time.perf_counter()
                codes = list(pool.map(send, range(args.requests)))
                cpu, wall = time.process_time() - c0, time.perf_counter() - t0
            close()
            if set(codes) != {200}:
                raise SystemExit(f"{name}: unexpected answers {sorted(set(codes))}")
            results[name].append(cpu / args.requests * 1000)
            print(
                f"{name:8s} {cpu / args.requests * 1000:.3f} ms CPU/request, "
                f"{args.requests / wall:,.0f} requests/s"
            )
    finally:
        sink.terminate()
    ratio = min(results["httpx"]) / min(results["urllib3"])
    print(f"httpx / urllib3 CPU per request (best of each): {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
