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
import http.client
import json
import os
import pathlib
import re
import shutil
import socket
import statistics
import subprocess
import sys
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tools"))
import harness  # noqa: E402  (tools/harness.py: the Envoy process wrapper)
import wasm_exports  # noqa: E402  (tools/wasm_exports.py: the exports the filter keeps)

REPO = pathlib.Path(__file__).resolve().parents[1]
WASM = REPO / "target/wasm32-wasip1/release/split_mirror.wasm"
ALT_WASM = None  # --alt-wasm: another build of the filter, measured as variant x beside b
EMPTY = REPO / "bench/empty-filter"
WORK = REPO / "target/bench"
EMPTY_SDK_WASM = WORK / "empty-sdk-exports.wasm"  # as cargo builds it: every SDK export
EMPTY_WASM = WORK / "empty.wasm"  # only the exports split-mirror keeps
FLOOR = REPO / "bench/floor-filter"
FLOOR_SPLIT_WASM = WORK / "floor-split.wasm"
FLOOR_EMPTY_WASM = WORK / "floor-empty.wasm"
FLOOR_MIRROR_WASM = WORK / "floor-mirror.wasm"
FLOOR_MIRROR_HEADER_WASM = WORK / "floor-mirror-header.wasm"
# The variants that load one of the bench's own modules instead of split-mirror.
REFERENCE_MODULES = {"0": EMPTY_WASM, "s": EMPTY_SDK_WASM, "n": FLOOR_EMPTY_WASM, "m": FLOOR_SPLIT_WASM,
                     "k": FLOOR_MIRROR_WASM, "j": FLOOR_MIRROR_HEADER_WASM}
HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = {"name": "envoy.filters.http.router",
          "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
SPLIT = [{"name": "v1", "weight": 80}, {"name": "v2", "weight": 20}]
VARIANTS = {
    "a": "native weighted_clusters 80/20",
    "b": "filter 80/20 (cluster_header)",
    "0": "empty proxy-wasm filter (our exports) + native 80/20",
    "n": "floor filter: request headers only (raw ABI) + native 80/20",
    "m": "floor split: raw-ABI draw + header write (cluster_header)",
    "h": "no filter, client sends the cluster header",
    "e": "filter, no route matched + native 80/20",
    "c": "native 80/20 + native mirror 100 %",
    "d": "filter 80/20 + filter mirror 100 %",
    "v": "filter 80/20 + filter mirror 100 % compared (status, a header, exact body)",
    "f": "filter 80/20 + mirror 100 % sent by Envoy (cluster_header)",
    "k": "floor mirror: raw-ABI split + the filter sends each request's headers to shadow",
    "j": "floor mirror header: raw-ABI split + a header for Envoy's cluster_header mirror",
    "l": "Lua filter 80/20 (math.random, same cluster_header route)",
    "p": "filter 80/20, 1 exact-host route",
    "q": "filter 80/20, last of 1,000 exact-host routes",
    "r": "filter 80/20, last of 10,000 exact-host routes",
    "w": "filter 80/20, last of 1,000 wildcard routes",
    "g": "filter 80/20 as a rollout step (canary v2 at 20 %) with a guard",
}
# Route-count variants: (routes, wildcard hosts). Each request is for the last route.
SCALE = {"p": (1, False), "q": (1000, False), "r": (10000, False), "w": (1000, True)}
# The Lua peer of b: the same 80/20 draw written into the same header. Envoy's Lua filter
# clears the route cache when a script modifies the request headers, as it does for a proxy-wasm
# header write, so the router selects the route again with the header (bench/run.py checks
# this with the draw forced to v2 before measuring: lua_reroutes).
LUA_SPLIT = """
function envoy_on_request(request)
  local cluster = "v1"
  if math.random() < {v2_share} then
    cluster = "v2"
  end
  request:headers():replace("x-split-cluster", cluster)
end
"""
MIRROR_HEADER = "x-split-mirror-cluster"
# Measured only by bench/instructions.py.
EXTRA_VARIANTS = {"s": "empty proxy-wasm filter (all SDK exports) + native 80/20"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_tool(tool):
    """wrk or valgrind, from Debian's packages, installed before any measurement if missing."""
    if shutil.which(tool):
        return
    print(f"bench: installing {tool} (Debian package)", file=sys.stderr)
    subprocess.run(["apt-get", "install", "-y", tool], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not shutil.which(tool):
        sys.exit(f"bench: {tool} is missing and could not be installed: apt-get install {tool}")


def cluster(name, port):
    return {"name": name, "type": "STATIC", "connect_timeout": "1s",
            "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]}}


def wasm_filter(config, module=WASM):
    return {"name": "envoy.filters.http.wasm", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        "config": {"name": "split-mirror", "root_id": "split-mirror", "vm_config": {
            "vm_id": "split-mirror", "runtime": "envoy.wasm.runtime.v8", "code": {"local": {"filename": str(module)}}},
            "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": json.dumps(config)}}}}


def lua_filter(v2_share=0.2):
    return {"name": "envoy.filters.http.lua", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
        "default_source_code": {"inline_string": LUA_SPLIT.format(v2_share=v2_share)}}}


def scale_routes(count, wildcard=False):
    """`count` filter routes `r0`..., one host each (`h<i>.example`, or `*.w<i>.example`), 80/20."""
    return [{"name": f"r{i}", "hosts": [f"*.w{i}.example" if wildcard else f"h{i}.example"],
             "backends": [{"cluster": "v1", "weight": 80}, {"cluster": "v2", "weight": 20}]} for i in range(count)]


def last_route(count, wildcard=False):
    """The name of the last of `scale_routes(count, wildcard)` and a host only it matches."""
    return f"r{count - 1}", f"api.w{count - 1}.example" if wildcard else f"h{count - 1}.example"


def host(variant):
    """The Host header the variant's requests carry."""
    return last_route(*SCALE[variant])[1] if variant in SCALE else "httpbin"


def proxy_config(variant, port, admin, backends):
    native = {"weighted_clusters": {"clusters": SPLIT}}
    if variant == "c":
        native["request_mirror_policies"] = [{"cluster": "shadow"}]
    routes = [{"match": {"prefix": "/"}, "route": native}]
    filters = [ROUTER]
    if variant in ("0", "s", "n"):
        filters = [wasm_filter({}, REFERENCE_MODULES[variant]), ROUTER]
    if variant in ("b", "d", "v", "e", "x", "h", "f", "m", "k", "j", "l", "g", *SCALE):
        route = {"name": "bench", "backends": [{"cluster": "v1", "weight": 80}, {"cluster": "v2", "weight": 20}]}
        if variant == "g":
            # Step 1 in force since 2020 (a clock read per request), every status counted.
            route["rollout"] = {"canary": "v2", "start": "2020-01-01T00:00:00Z", "steps": [{"weight": 20}],
                                "guard": {"max_error_rate": 0.05, "min_requests": 50, "window_s": 30}}
        header_route = {"cluster_header": "x-split-cluster"}
        if variant == "d":
            route["mirrors"] = [{"cluster": "shadow"}]
        if variant == "v":
            route["mirrors"] = [{"cluster": "shadow", "compare": {"headers": ["content-type"], "body": "exact"}}]
        if variant in ("f", "j"):
            route["mirrors"] = [{"cluster": "shadow", "cluster_header": MIRROR_HEADER}]
            header_route["request_mirror_policies"] = [{"cluster_header": MIRROR_HEADER}]
        if variant == "e":
            route["hosts"] = ["never.invalid"]
        filter_routes = scale_routes(*SCALE[variant]) if variant in SCALE else [route]
        module = {"x": ALT_WASM, **REFERENCE_MODULES}.get(variant, WASM)
        filters = {"h": [ROUTER], "l": [lua_filter(), ROUTER]}.get(
            variant, [wasm_filter({"routes": filter_routes}, module), ROUTER])
        routes.insert(0, {"match": {"prefix": "/", "headers": [{"name": "x-split-cluster", "present_match": True}]},
                          "route": header_route})
    return bootstrap(port, admin, backends, filters, routes)


def bootstrap(port, admin, backends, filters, routes):
    """A proxy listening on `port` with these HTTP filters and routes (one virtual host, any
    domain), a cluster per backend."""
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [{"name": "proxy", "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                           "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                               "typed_config": {"@type": HCM, "stat_prefix": "proxy", "http_filters": filters,
                                                "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": routes}]}}}]}]}],
            "clusters": [cluster(name, p) for name, p in backends.items()]}}


def backends_config(ports, admin):
    def listener(name, port):
        return {"name": name, "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
                    "@type": HCM, "stat_prefix": f"backend-{name}", "http_filters": [ROUTER],
                    "route_config": {"virtual_hosts": [{"name": name, "domains": ["*"], "routes": [
                        {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": name}}}]}]}}}]}]}
    return {"admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
            "static_resources": {"listeners": [listener(n, p) for n, p in ports.items()]}}


def build_module(crate, *features):
    """The release module of one of the bench's own crates (bench/empty-filter, bench/floor-filter)."""
    target = crate / "target" / "-".join(("build",) + features)
    subprocess.run(["cargo", "build", "--quiet", "--release", "--target", "wasm32-wasip1", "--manifest-path",
                    str(crate / "Cargo.toml"), "--target-dir", str(target), *(["--features", *features] if features else [])],
                   check=True)
    return next((target / "wasm32-wasip1/release").glob("*.wasm")).read_bytes()


def build_reference_filters():
    """The empty SDK filter twice (as cargo builds it, and with split-mirror's exports only) and
    the raw-ABI floor filter four times (nothing done, the split, the split with each way to mirror)."""
    WORK.mkdir(parents=True, exist_ok=True)
    module = build_module(EMPTY)
    EMPTY_SDK_WASM.write_bytes(module)
    EMPTY_WASM.write_bytes(wasm_exports.keep_only(module, wasm_exports.KEEP))
    FLOOR_SPLIT_WASM.write_bytes(build_module(FLOOR))
    FLOOR_EMPTY_WASM.write_bytes(build_module(FLOOR, "empty"))
    FLOOR_MIRROR_WASM.write_bytes(build_module(FLOOR, "mirror"))
    FLOOR_MIRROR_HEADER_WASM.write_bytes(build_module(FLOOR, "mirror-header"))


def start_envoy(name, config, cpu, admin):
    """One pinned `--concurrency 1` Envoy on `config`, through the harness's Envoy (start-up
    checks, admin counters, CPU and RSS readings, clean stop)."""
    path = WORK / f"{name}.json"
    path.write_text(json.dumps(config))
    envoy = harness.Envoy(name, path, admin, WORK, workers=1, cpu=cpu)
    envoy.wait_ready(30)
    return envoy


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


CLIENT_HEADER = {"h": "x-split-cluster: v1"}


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


def lua_reroutes(backend_ports):
    """True if Envoy routes by the header the Lua script writes: with the draw forced to v2, every
    request must reach v2 (the cached route, native 80/20, would send 80 % to v1)."""
    port, admin = free_port(), free_port()
    config = proxy_config("l", port, admin, backend_ports)
    listener = config["static_resources"]["listeners"][0]
    listener["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"][0] = lua_filter(v2_share=1.0)
    proxy = start_envoy("lua-check", config, None, admin)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        bodies = []
        for _ in range(20):
            connection.request("GET", "/", headers={"Host": "httpbin"})
            response = connection.getresponse()
            bodies.append(response.read())
        return bodies == [b"v2"] * 20
    finally:
        proxy.stop()


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


# The native variant each one is compared with, round by round.
BASELINE = {"b": "a", "0": "a", "n": "a", "m": "a", "h": "a", "e": "a", "x": "a", "d": "c", "v": "d", "f": "c", "k": "c", "j": "c",
            "l": "a", "p": "a", "q": "p", "r": "p", "w": "p", "g": "b"}
# Instruction-count targets of the route-count variants (bench/instructions.py): at most this
# many times the instructions of one route.
SCALE_TARGETS = {"r": 1.03, "w": 1.10}


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
    global ALT_WASM
    if args.alt_wasm:
        ALT_WASM = args.alt_wasm.resolve()
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
        import scale  # bench/scale.py (imports this module: loaded late)
        scale_table = scale.run([1, 1000, 10000], [1, 2])
    instruction_table = None
    if not args.no_instructions:
        import instructions  # bench/instructions.py (imports this module: loaded late)
        counted = [k for k in instructions.ORDER if k in VARIANTS or k == "s"]
        instruction_table = instructions.table(instructions.measure(counted, 2000), 2000)
    text = report(args, results, rss, machine(), instruction_table, scale_table)
    args.output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
