#!/usr/bin/env python3
"""The benchmark: the filter against Envoy's own routing and mirroring, in one run.

    .venv/bin/python bench/run.py [--pairs 5] [--duration 10] [--connections 2,16] [--quick]

Variants, each a separate proxy Envoy (`--concurrency 1`, pinned to CPU 0) in front of the same
direct_response backends (pinned to CPU 1, with the load generator):
  a  native weighted_clusters 80/20
  b  the filter 80/20 through cluster_header
  0  an empty proxy-wasm filter (bench/empty-filter) exporting the same callbacks as ours
     (tools/wasm_exports.py), then native weighted_clusters: the VM's fixed cost per request,
     which no filter with these callbacks can remove
  n  the floor of any filter (bench/floor-filter, raw ABI, no SDK): the request-headers callback
     only (not even context creation), then native weighted_clusters
  m  the floor of any cluster_header split (bench/floor-filter): n plus one 80/20 draw and the
     header write, routed by cluster_header
  e  the filter loaded but matching no route, then native weighted_clusters
  h  no filter: the client sends `x-split-cluster: v1` itself, routed by cluster_header (what
     Envoy's header routing costs, without any wasm)
  c  native 80/20 + native request_mirror_policies 100 %
  d  the filter 80/20 + the filter's mirror 100 % (the filter sends the copy)
  f  the filter 80/20 + mirror 100 % sampled by the filter and sent by Envoy
     (`cluster_header` mirror: request_mirror_policies with cluster_header)
  k  the floor of any filter that sends the copies itself (bench/floor-filter): m plus the
     request's headers read and sent to the shadow cluster from the root context
  j  the floor of f (bench/floor-filter): m plus a second header naming the shadow cluster,
     which Envoy's request_mirror_policies (cluster_header) mirrors to
  l  Envoy's Lua filter doing b's job: an 80/20 math.random draw written into the same route
     header, routed by the same cluster_header route (a peer of b, not a floor)
  p, q, r  b with 1, 1,000 and 10,000 routes of one exact host each (`h<i>.example`), the
     request for the last one: what the route count costs (the route match)
  w  b with 1,000 wildcard routes (`*.w<i>.example`), the request for the last one
Each round measures every variant in turn (A B A B ...), so drift hits all alike. Then
bench/scale.py measures memory and start-up time at 1, 1,000 and 10,000 routes, and
bench/instructions.py counts each variant's instructions per request under callgrind (plus
s: the empty filter with all the SDK's exports), a figure the machine's noise does not move.
Writes BENCHMARKS.md. Not part of `make test`.
"""
import argparse
import datetime
import os
import pathlib
import re
import statistics
import subprocess
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import instructions  # noqa: E402  (bench/instructions.py: callgrind counts)
import scale  # noqa: E402  (bench/scale.py: memory against the route count)
import variants  # noqa: E402  (bench/variants.py: the variants, their configs, the Envoy wrapper)
from variants import (  # noqa: E402
    BASELINE, CLIENT_HEADER, REPO, SCALE, VARIANTS, WASM, backends_config, build_reference_filters, ensure_tool,
    free_port, harness, host, last_route, lua_reroutes, proxy_config, start_envoy)


def wrk(port, connections, seconds, extra_header=None, host_header="httpbin"):
    headers = ["-H", f"Host: {host_header}"] + (["-H", extra_header] if extra_header else [])
    output = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", *headers,
         f"http://127.0.0.1:{port}/"], capture_output=True, text=True, timeout=seconds + 30).stdout
    def latency_ms(percent):
        match = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)), "p50": latency_ms(50),
            "p99": latency_ms(99), "requests": requests, "bad": int(non_2xx.group(1)) if non_2xx else 0,
            "socket_errors": errors.group(1) if errors else ""}


def routed_by_last_route(proxy, key):
    """Requests the filter counted for the last route of a route-count variant (any backend)."""
    name = last_route(*SCALE[key])[0]
    return sum(proxy.counters(f"split_mirror_requests_total;route={name};").values())


def measure(key, proxy, backends, port, connections, seconds):
    before_cpu, before = proxy.cpu_seconds(), backends.counters("downstream_rq_total")
    before_last = routed_by_last_route(proxy, key) if key in SCALE else 0
    result = wrk(port, connections, seconds, CLIENT_HEADER.get(key), host(key))
    result["cpu_us"] = (proxy.cpu_seconds() - before_cpu) * 1e6 / max(result["requests"], 1)
    after = backends.counters("downstream_rq_total")
    got = {name.split(".")[1].removeprefix("backend-"): after[name] - before.get(name, 0) for name in after}
    primary = got.get("v1", 0) + got.get("v2", 0)
    result["v2_share"] = got.get("v2", 0) / max(primary, 1)
    result["shadow_ratio"] = got.get("shadow", 0) / max(primary, 1)
    if key in SCALE:  # the request matched the last route, not a fallback
        result["last_route_share"] = (routed_by_last_route(proxy, key) - before_last) / max(primary, 1)
    return result


def spread(values):
    return min(values), statistics.median(values), max(values)


def fmt(triple, digits=0):
    return " / ".join(f"{v:.{digits}f}" for v in triple)


def report(args, results, rss, machine, instruction_table, scale_table):
    lines = ["# Benchmarks", "",
             f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
             f"- machine: {machine}",
             f"- Envoy: {subprocess.run([str(harness.envoy_bin()), '--version'], capture_output=True, text=True).stdout.strip().split('version: ')[-1]}",
             f"- command: `{' '.join(['.venv/bin/python', 'bench/run.py'] + sys.argv[1:])}` ({args.pairs} rounds, {args.duration} s each, wrk -t1)",
             f"- wasm: {WASM.stat().st_size} bytes ({WASM.stat().st_size / 1024:.0f} KB)",
             rss_line(rss), ""]
    for connections in args.connections:
        rows = results[connections]
        lines += [f"## {connections} connections", "",
                  "| variant | req/s min / median / max | p50 ms | p99 ms | proxy CPU µs/req | check |",
                  "|---|---|---|---|---|---|"]
        for key, label in VARIANTS.items():
            runs = rows[key]
            check = f"v2 {statistics.median(r['v2_share'] for r in runs):.3f}"
            if key == "c" or BASELINE.get(key) == "c":  # native mirroring and what is compared with it
                check += f", shadow/primary {statistics.median(r['shadow_ratio'] for r in runs):.3f}"
            if key in SCALE:  # requests the filter counted for the last route, per primary request
                check += f", last route {statistics.median(r['last_route_share'] for r in runs):.3f}"
            bad = sum(r["bad"] for r in runs)
            check += f", non-2xx {bad}"
            lines.append(f"| {key}: {label} | {fmt(spread([r['rps'] for r in runs]))} | "
                         f"{fmt(spread([r['p50'] for r in runs]), 3)} | {fmt(spread([r['p99'] for r in runs]), 3)} | "
                         f"{fmt(spread([r['cpu_us'] for r in runs]), 1)} | {check} |")
        def ratio(x, y, field):
            if x not in rows or y not in rows:
                return (float("nan"),) * 3
            return spread([rx[field] / ry[field] for rx, ry in zip(rows[x], rows[y])])

        def targets(x, y, min_rps, max_cpu=None):
            """PASS or MISS, on the medians, for the issue's targets (b/a: both; d/c: req/s)."""
            verdict = lambda ok: "PASS" if ok else "MISS"
            text = f"req/s ≥ {min_rps:.2f}: {verdict(ratio(x, y, 'rps')[1] >= min_rps)}"
            if max_cpu:
                text += f"; CPU ≤ {max_cpu:.2f}: {verdict(ratio(x, y, 'cpu_us')[1] <= max_cpu)}"
            return text

        def within_noise(x, y):
            """PASS if the per-round req/s ratio's range holds 1: no slower than y beyond the noise."""
            low, _, high = ratio(x, y, "rps")
            return f"req/s within noise (range holds 1.00): {'PASS' if low <= 1 <= high else 'MISS'}"

        ratio_rows = [
            ("b", "a", targets("b", "a", 0.95, 1.10)),
            ("0", "a", "(empty filter: the VM's fixed cost)"),
            ("n", "a", "(floor of any filter: raw ABI, request headers only)"),
            ("m", "a", f"(floor of any cluster_header split, the least b can cost; b's targets: {targets('m', 'a', 0.95, 1.10)})"),
            ("e", "a", "(our filter, no route matched)"),
            ("h", "a", "(cluster_header routing, no filter)"),
            ("d", "c", targets("d", "c", 0.90)),
            ("f", "c", f"{targets('f', 'c', 0.90)} (Envoy sends the copy)"),
            ("k", "c", f"(floor of any filter sending the copies itself, the least d can cost; d's target: {targets('k', 'c', 0.90)})"),
            ("j", "c", f"(floor of a mirror Envoy sends, the least f can cost; target: {targets('j', 'c', 0.90)})"),
            ("l", "a", "(Envoy's Lua filter doing b's split: the peer)"),
            ("b", "l", "(the filter against the Lua filter)"),
            ("p", "a", "(1 route with an exact host: the base of the route-count rows)"),
            ("q", "p", "(last of 1,000 exact-host routes)"),
            ("r", "p", within_noise("r", "p") + " (last of 10,000 exact-host routes)"),
            ("w", "p", "(last of 1,000 wildcard routes)"),
        ]
        lines += ["", "| ratio (per round) | req/s min / median / max | CPU/req min / median / max | target |", "|---|---|---|---|"]
        lines += [f"| {x}/{y} | {fmt(ratio(x, y, 'rps'), 3)} | {fmt(ratio(x, y, 'cpu_us'), 3)} | {note} |"
                  for x, y, note in ratio_rows]
        lines.append("")
        if all(k in rows for k in "abnmcd"):
            lines += [breakdown(rows), ""]
    size_ok = WASM.stat().st_size <= 120 * 1024
    lines += [f"Wasm size ≤ 120 KB: {'PASS' if size_ok else 'MISS'} ({WASM.stat().st_size / 1024:.0f} KB).", "",
              "Method: the proxies (one per variant) run side by side, each `--concurrency 1` pinned to CPU 0; the backends "
              "(one Envoy with direct_response listeners) and wrk share CPU 1. Each round measures every variant for the same "
              "duration in turn after a warm-up, so drift affects all alike; ratios are taken within a round, then summarised. "
              "CPU per request is the proxy's utime+stime delta from /proc/<pid>/stat over the requests wrk completed. "
              "Medians are the figures to compare; the checks column confirms the split (v2 share ≈ 0.2) and, for mirroring, "
              "that the shadow received a copy of every request.", ""]
    if instruction_table:
        lines += ["## Instructions per request (callgrind)", "", instruction_table, ""]
    if scale_table:
        lines += ["## Memory and start-up against the route count (bench/scale.py)", "", scale_table, ""]
    for connections in args.connections:
        lines += per_round_table(results[connections], connections)
    return "\n".join(lines)




def per_round_table(rows, connections):
    """Every round's figures (the A B A B pairs the summary tables are taken from)."""
    lines = [f"## Per round, {connections} connections", "",
             "| round | variant | req/s | p50 ms | p99 ms | proxy CPU µs/req | vs native in the round: req/s, CPU |",
             "|---|---|---|---|---|---|---|"]
    rounds = max((len(runs) for runs in rows.values()), default=0)
    for index in range(rounds):
        for key, runs in rows.items():
            run = runs[index]
            base = BASELINE.get(key)
            versus = ""
            if base in rows:
                native = rows[base][index]
                versus = f"{key}/{base} {run['rps'] / native['rps']:.3f}, {run['cpu_us'] / native['cpu_us']:.3f}"
            lines.append(f"| {index + 1} | {key} | {run['rps']:.0f} | {run['p50']:.3f} | {run['p99']:.3f} | "
                         f"{run['cpu_us']:.1f} | {versus} |")
    return lines + [""]


def rss_line(rss):
    """The proxies' resident memory after the load: native, the empty filter (V8 and the SDK), ours."""
    if not {"a", "b"} <= rss.keys():
        return "- proxy RSS: a and b not both measured"
    empty = f", empty filter {rss['0']} KiB (+{rss['0'] - rss['a']} KiB)" if "0" in rss else ""
    alt = f", the --alt-wasm build {rss['x']} KiB (+{rss['x'] - rss['a']} KiB)" if "x" in rss else ""
    return (f"- proxy RSS after load: native {rss['a']} KiB{empty}, with the filter {rss['b']} KiB "
            f"(+{rss['b'] - rss['a']} KiB){alt}")


def per_round(rows, key, base):
    """Median over rounds of the CPU µs/request `key` costs more than `base` in the same round."""
    return statistics.median(r["cpu_us"] - b["cpu_us"] for r, b in zip(rows[key], rows[base]))


def breakdown(rows):
    """Where the split's extra CPU goes, from per-round differences (drift cancels within a round)."""
    gap, any_filter, floor = per_round(rows, "b", "a"), per_round(rows, "n", "a"), per_round(rows, "m", "a")
    shown = lambda us: f"{us:.1f} µs" if us > 0 else f"{us:.1f} µs (none beyond noise)"
    return (f"Split: the filter adds {shown(gap)} of proxy CPU per request over native weighted_clusters "
            f"(median of per-round differences). The floor of any proxy-wasm filter (n: the request-headers "
            f"callback, nothing else) adds {shown(any_filter)}; the floor of any cluster_header split (m: "
            f"n plus one header write, after which Envoy selects the route again) adds {shown(floor)}. The "
            f"filter costs {shown(gap - floor)} over that floor: the SDK's per-stream context, our two other "
            f"callbacks and our own work. "
            f"Mirroring: {shown(per_round(rows, 'd', 'c'))} per request over Envoy's native mirror.")


def machine():
    model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    return f"{model}, {os.cpu_count()} cores, Linux {os.uname().release}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", default="2,16")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 3 s: a smoke run")
    parser.add_argument("--output", type=pathlib.Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument("--alt-wasm", type=pathlib.Path, help="A/B: another build, as variant x (like b)")
    parser.add_argument("--only", help="measure only these variants, e.g. a,b,x")
    parser.add_argument("--no-instructions", action="store_true", help="skip the callgrind counts (bench/instructions.py)")
    parser.add_argument("--no-scale", action="store_true", help="skip the memory against the route count (bench/scale.py)")
    args = parser.parse_args()
    if args.alt_wasm:
        variants.ALT_WASM = args.alt_wasm.resolve()
        VARIANTS["x"] = f"filter 80/20 built from {args.alt_wasm}"
    if args.only:
        for key in [k for k in VARIANTS if k not in args.only.split(",")]:
            del VARIANTS[key]
    if args.quick:
        args.pairs, args.duration = 2, 3
    args.connections = [int(c) for c in args.connections.split(",")]
    if not WASM.exists():
        sys.exit("bench: run 'make build' first")
    ensure_tool("wrk")
    if not args.no_instructions:
        ensure_tool("valgrind")
    build_reference_filters()
    envoys = []
    try:
        backend_ports = {"v1": free_port(), "v2": free_port(), "shadow": free_port()}
        admin = free_port()
        backends = start_envoy("backends", backends_config(backend_ports, admin), 1, admin)
        envoys.append(backends)
        if "l" in VARIANTS and not lua_reroutes(backend_ports):
            sys.exit("bench: Envoy did not route by the header the Lua filter wrote (route cache not cleared)")
        proxies = {}
        for key in VARIANTS:
            port, admin = free_port(), free_port()
            proxies[key] = (start_envoy(f"proxy-{key}", proxy_config(key, port, admin, backend_ports), 0, admin), port)
            envoys.append(proxies[key][0])
        for key, (proxy, port) in proxies.items():  # warm-up
            wrk(port, 16, 2, CLIENT_HEADER.get(key), host(key))
        results = {c: {k: [] for k in VARIANTS} for c in args.connections}
        for round_ in range(args.pairs):
            for connections in args.connections:
                for key, (proxy, port) in proxies.items():
                    result = measure(key, proxy, backends, port, connections, args.duration)
                    results[connections][key].append(result)
                    print(f"round {round_ + 1} c={connections} {key}: {result['rps']:.0f} req/s, p99 {result['p99']:.3f} ms, "
                          f"{result['cpu_us']:.1f} µs/req, v2 {result['v2_share']:.3f}, shadow {result['shadow_ratio']:.3f}",
                          file=sys.stderr)
        rss = {key: proxies[key][0].rss_kib() for key in ("a", "0", "b", "x") if key in proxies}
    finally:
        for envoy in envoys:
            envoy.stop()
    scale_table = None
    if not args.no_scale:
        scale_table = scale.run([1, 1000, 10000], [1, 2])
    instruction_table = None
    if not args.no_instructions:
        counted = [k for k in instructions.ORDER if k in VARIANTS or k == "s"]
        instruction_table = instructions.table(instructions.measure(counted, 2000), 2000)
    text = report(args, results, rss, machine(), instruction_table, scale_table)
    args.output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
