#!/usr/bin/env python3
"""Memory and start-up time against the number of routes.

    .venv/bin/python bench/scale.py [--routes 1,1000,10000] [--concurrency 1,2] [--wildcard]
                                    [--wasm PATH] [--requests 200] [--json FILE]

For each route count N and worker count, one proxy Envoy per variant, in front of the same
direct_response backends as bench/run.py, with N filter routes of one exact host each
(`h<i>.example`, or `*.w<i>.example` with --wildcard), 80/20 over v1 and v2 (bench/run.py's
scale_routes), and Envoy's routes of variant b (the cluster_header route, native 80/20 behind):
  native  no filter: Envoy alone, same routes
  empty   the empty proxy-wasm filter (bench/empty-filter) given the same N-route configuration,
          which it never reads: V8, the SDK, and Envoy's own copies of the configuration
  filter  split-mirror (--wasm, by default the `make build` module) with the N routes
Each proxy is timed from its start until it serves a request for the last route (200); then
`--requests` requests for that host, on 4 connections (so every worker gets some), and a check
that the filter counted each for the last route. Then, from the running process: its resident
memory (VmRSS, and its peak VmHWM, from /proc/<pid>/status), Envoy's C++ heap (admin /memory:
`allocated`, tcmalloc; it holds the stats and the configuration), the resident part of V8's wasm
linear memories (/proc/<pid>/smaps; one per worker and one on the main thread, each holding a
copy of the filter's configuration), and the number of stats (admin /stats, and those the filter
defined: `wasmcustom.`). Loopback only; each step bounded in time.
"""
import argparse
import http.client
import json
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import variants as bench  # noqa: E402  (bench/variants.py: configs, reference filters, the Envoy wrapper)
from variants import harness  # noqa: E402

VARIANTS = ("native", "empty", "filter")
# The inaccessible rest of a V8 wasm memory reservation (8 GiB and guards on x86-64); nothing
# else in Envoy reserves this much.
WASM_RESERVATION_KIB = 4 * 1024 * 1024
FIRST_REQUEST_TIMEOUT_S = 300
CONNECTIONS = 4


def config(variant, routes, wildcard, port, admin, backends, module):
    """Variant b's Envoy routes; the filter (or none) with `routes` scale routes."""
    filter_config = {"routes": bench.scale_routes(routes, wildcard)}
    filters = {"native": [bench.ROUTER],
               "empty": [bench.wasm_filter(filter_config, bench.EMPTY_WASM), bench.ROUTER],
               "filter": [bench.wasm_filter(filter_config, module), bench.ROUTER]}[variant]
    header_route = {"match": {"prefix": "/", "headers": [{"name": "x-split-cluster", "present_match": True}]},
                    "route": {"cluster_header": "x-split-cluster"}}
    native = {"match": {"prefix": "/"}, "route": {"weighted_clusters": {"clusters": bench.SPLIT}}}
    return bench.bootstrap(port, admin, backends, filters, [header_route, native])


def get(port, host, connection=None):
    """Status of GET / with this Host (None if the proxy does not answer yet)."""
    connection = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/", headers={"Host": host})
        response = connection.getresponse()
        response.read()
        return response.status
    except OSError:
        return None


def first_request(envoy, port, host, started):
    """Seconds from `started` until the proxy answers 200 for `host` (polled every 20 ms)."""
    deadline = started + FIRST_REQUEST_TIMEOUT_S
    while time.monotonic() < deadline:
        if not envoy.alive():
            sys.exit(f"scale: {envoy.name} exited; log tail:\n{envoy.log_tail()}")
        if get(port, host) == 200:
            return time.monotonic() - started
        time.sleep(0.02)
    sys.exit(f"scale: {envoy.name} served no request in {FIRST_REQUEST_TIMEOUT_S} s")


def status_kib(pid, field):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def wasm_memory_kib(pid):
    """Resident KiB of V8's wasm linear memories, and their number. V8 reserves each memory as one mapping of
    several GiB and makes its first pages (the memory's current size) read-write, so each shows
    as a read-write mapping directly followed by an inaccessible one of ≥ 4 GiB."""
    mappings = []  # [start, end, permissions, size KiB, rss KiB]
    for line in pathlib.Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 5 and "-" in fields[0] and not fields[0].endswith(":"):
            start, end = (int(x, 16) for x in fields[0].split("-"))
            mappings.append([start, end, fields[1], 0, 0])
        elif fields and fields[0] == "Size:":
            mappings[-1][3] = int(fields[1])
        elif fields and fields[0] == "Rss:":
            mappings[-1][4] = int(fields[1])
    memories = [memory[4] for memory, reserve in zip(mappings, mappings[1:])
                if memory[2].startswith("rw") and reserve[2].startswith("---") and memory[1] == reserve[0]
                and reserve[3] >= WASM_RESERVATION_KIB]
    return sum(memories), len(memories)


def measure(variant, routes, wildcard, workers, backends, module, requests):
    port, admin = bench.free_port(), bench.free_port()
    path = bench.WORK / f"scale-{variant}-{routes}.json"
    path.write_text(json.dumps(config(variant, routes, wildcard, port, admin, backends, module)))
    route_name, host = bench.last_route(routes, wildcard)
    started = time.monotonic()
    envoy = harness.Envoy(f"scale-{variant}", path, admin, bench.WORK, workers=workers)
    try:
        first = first_request(envoy, port, host, started)
        connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(CONNECTIONS)]
        statuses = [get(port, host, connections[i % CONNECTIONS]) for i in range(requests)]
        if statuses.count(200) != requests:
            sys.exit(f"scale: {variant} with {routes} routes: {requests - statuses.count(200)} requests failed")
        time.sleep(0.5)
        stats = envoy.admin("/stats").splitlines()
        counted = sum(int(line.rpartition(": ")[2]) for line in stats
                      if f"split_mirror_requests_total;route={route_name};" in line)
        if variant == "filter" and counted != requests + 1:  # and the first request
            sys.exit(f"scale: the filter counted {counted} of {requests + 1} requests for route {route_name}")
        pid = envoy.process.pid
        wasm_kib, memories = wasm_memory_kib(pid)
        return {"variant": variant, "routes": routes, "wildcard": wildcard, "workers": workers,
                "first_request_s": round(first, 3), "rss_kib": status_kib(pid, "VmRSS"),
                "peak_rss_kib": status_kib(pid, "VmHWM"),
                "heap_kib": int(json.loads(envoy.admin("/memory"))["allocated"]) // 1024,
                "wasm_memory_kib": wasm_kib, "wasm_memories": memories, "stats": len(stats),
                "filter_stats": sum(line.startswith("wasmcustom.") for line in stats)}
    finally:
        envoy.stop()


def per_route(results, field, variant, workers, low, high):
    """Bytes one more route costs, between `low` and `high` routes."""
    def value(routes):
        return next(r[field] for r in results
                    if (r["variant"], r["workers"], r["routes"]) == (variant, workers, routes))
    return (value(high) - value(low)) * 1024 / (high - low)


def table(results, route_counts, worker_counts):
    mib = lambda kib: f"{kib / 1024:.1f}"
    lines = ["| routes | workers | variant | first request s | RSS MiB | peak RSS MiB | Envoy heap MiB | "
             "wasm memory MiB (memories) | stats (filter's) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['routes']:,} | {r['workers']} | {r['variant']} | {r['first_request_s']:.2f} | "
                     f"{mib(r['rss_kib'])} | {mib(r['peak_rss_kib'])} | {mib(r['heap_kib'])} | "
                     f"{mib(r['wasm_memory_kib'])} ({r['wasm_memories']}) | {r['stats']:,} ({r['filter_stats']:,}) |")
    low, high = min(route_counts), max(route_counts)
    if low == high:
        return "\n".join(lines)
    variants = sorted({r["variant"] for r in results}, key=VARIANTS.index)
    lines += ["", f"Per route, from {low:,} to {high:,} routes (bytes):", "",
              "| workers | variant | RSS | Envoy heap | wasm memory | the rest (V8, code, allocator) |",
              "|---|---|---|---|---|---|"]
    for workers in worker_counts:
        for variant in variants:
            rss, heap, wasm = (per_route(results, f, variant, workers, low, high)
                               for f in ("rss_kib", "heap_kib", "wasm_memory_kib"))
            lines.append(f"| {workers} | {variant} | {rss:,.0f} | {heap:,.0f} | {wasm:,.0f} | {rss - heap - wasm:,.0f} |")
    return "\n".join(lines)


def run(route_counts, worker_counts, variants=VARIANTS, wildcard=False, module=None, requests=200, json_path=None):
    """Measures every combination (the backends started and stopped here); returns the tables."""
    module = module or bench.WASM
    if "empty" in variants:
        bench.build_reference_filters()
    bench.WORK.mkdir(parents=True, exist_ok=True)
    ports = {"v1": bench.free_port(), "v2": bench.free_port(), "shadow": bench.free_port()}
    admin = bench.free_port()
    backends = bench.start_envoy("scale-backends", bench.backends_config(ports, admin), None, admin)
    results = []
    try:
        for workers in worker_counts:
            for routes in route_counts:
                for variant in variants:
                    result = measure(variant, routes, wildcard, workers, ports, module, requests)
                    print(json.dumps(result), file=sys.stderr)
                    results.append(result)
    finally:
        backends.stop()
    if json_path:
        json_path.write_text(json.dumps({"wasm": str(module), "results": results}, indent=1))
    return table(results, route_counts, worker_counts)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--routes", default="1,1000,10000")
    parser.add_argument("--concurrency", default="1,2")
    parser.add_argument("--wildcard", action="store_true", help="`*.w<i>.example` hosts instead of exact ones")
    parser.add_argument("--wasm", type=pathlib.Path, default=bench.WASM, help="the filter's module")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--json", type=pathlib.Path, help="also write the figures here")
    args = parser.parse_args()
    variants = args.variants.split(",")
    if "filter" in variants and not args.wasm.exists():
        sys.exit(f"scale: {args.wasm} is missing: run 'make build'")
    print(run([int(n) for n in args.routes.split(",")], [int(n) for n in args.concurrency.split(",")],
              variants, args.wildcard, args.wasm.resolve(), args.requests, args.json))


if __name__ == "__main__":
    main()
