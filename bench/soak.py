#!/usr/bin/env python3
"""Soak: 1,000,000 requests through the split + 10 % mirror + sticky configuration at a bounded
rate, on the native harness. Passes when no response is other than 200, the front Envoy's RSS
after warm-up grows by less than 5 MiB, and Envoy logs no wasm error.

    .venv/bin/python bench/soak.py [--requests 1000000] [--rate 4000] [--port-offset 0]
"""
import argparse
import http.client
import json
import random
import sys
import threading
import time

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "tools"))
import harness  # noqa: E402  (tools/harness.py: the native harness)

SOAK_CONFIG = {"routes": [{
    "name": "httpbin", "hosts": ["httpbin"],
    "backends": [{"cluster": "httpbin-v1", "weight": 80}, {"cluster": "httpbin-v2", "weight": 20}],
    "sticky": {"header": "x-user-id"},
    "mirrors": [{"cluster": "httpbin-shadow", "percent": 10}],
}]}
THREADS = 4
RSS_LIMIT_KIB = 5 * 1024


def worker(port, count, rate, statuses, lock):
    """`count` requests at most `rate` per second, each with a random sticky key."""
    connection, interval, next_at = None, 1.0 / rate, time.monotonic()
    local = {}
    for _ in range(count):
        next_at += interval
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        try:
            connection = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("GET", "/", headers={"Host": "httpbin", "x-user-id": f"user-{random.randrange(100_000)}"})
            response = connection.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            status, connection = 0, None
        local[status] = local.get(status, 0) + 1
    with lock:
        for status, n in local.items():
            statuses[status] = statuses.get(status, 0) + n


def load(port, requests, rate):
    statuses, lock = {}, threading.Lock()
    threads = [threading.Thread(target=worker, args=(port, requests // THREADS, rate / THREADS, statuses, lock))
               for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--rate", type=int, default=4000, help="requests per second, at most")
    parser.add_argument("--port-offset", type=int, default=0)
    args = parser.parse_args()
    soak = harness.Harness(args.port_offset, lds=True)
    try:
        soak.start()
        if not soak.update(SOAK_CONFIG):
            harness.fail("the soak configuration was refused")
        port = harness.FRONT_PORT + args.port_offset
        warm_up = max(args.requests // 10, 1000)
        started = time.monotonic()
        statuses = load(port, warm_up, args.rate)
        rss_after_warm_up = soak.front.rss_kib()
        statuses_main = load(port, args.requests - warm_up, args.rate)
        for status, n in statuses_main.items():
            statuses[status] = statuses.get(status, 0) + n
        elapsed = time.monotonic() - started
        rss_end = soak.front.rss_kib()
        time.sleep(1)
        log = soak.front.log.read_text(errors="replace")
        wasm_errors = [line for line in log.splitlines() if "[wasm]" in line and ("[error]" in line or "[critical]" in line)]
        mirrored = soak.front.counters("split_mirror_mirror_total")
        total = sum(statuses.values())
        growth = rss_end - rss_after_warm_up
        print(json.dumps({
            "requests": total, "seconds": round(elapsed, 1), "rate": round(total / elapsed),
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "rss_after_warm_up_kib": rss_after_warm_up, "rss_end_kib": rss_end, "rss_growth_kib": growth,
            "mirror": {k.split(";outcome=")[-1]: v for k, v in mirrored.items()},
            "wasm_errors": len(wasm_errors),
        }, indent=1))
        problems = []
        if set(statuses) != {200}:
            problems.append(f"non-200 responses: { {k: v for k, v in statuses.items() if k != 200} }")
        if growth >= RSS_LIMIT_KIB:
            problems.append(f"RSS grew by {growth} KiB after warm-up (limit {RSS_LIMIT_KIB})")
        if wasm_errors:
            problems.append(f"{len(wasm_errors)} wasm errors in the log, first: {wasm_errors[0]}")
        if soak.dead():
            problems.append("an Envoy died")
        for problem in problems:
            print(f"SOAK FAILED: {problem}", file=sys.stderr)
        print("soak: PASS" if not problems else "soak: FAIL")
        return 1 if problems else 0
    finally:
        soak.stop()


if __name__ == "__main__":
    sys.exit(main())
