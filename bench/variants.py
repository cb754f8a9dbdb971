#!/usr/bin/env python3
"""What the benchmarks measure, shared by bench/run.py, bench/instructions.py and bench/scale.py:
the variants and their Envoy configs, the reference filters (bench/empty-filter,
bench/floor-filter), the backends, and how one pinned Envoy is started. Imports none of them.
"""
import http.client
import json
import pathlib
import shutil
import socket
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


CLIENT_HEADER = {"h": "x-split-cluster: v1"}


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


# The native variant each one is compared with, round by round.
BASELINE = {"b": "a", "0": "a", "n": "a", "m": "a", "h": "a", "e": "a", "x": "a", "d": "c", "v": "d", "f": "c", "k": "c", "j": "c",
            "l": "a", "p": "a", "q": "p", "r": "p", "w": "p", "g": "b"}
# Instruction-count targets of the route-count variants (bench/instructions.py): at most this
# many times the instructions of one route.
SCALE_TARGETS = {"r": 1.03, "w": 1.10}
