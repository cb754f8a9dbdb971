#!/usr/bin/env python3
"""New-connection rate: native tcp_proxy `weighted_clusters` against the network filter.

    .venv/bin/python bench/tcp.py [--pairs 5] [--duration 10] [--connections 16]

Variants, each a separate proxy Envoy (`--concurrency 1`, pinned to CPU 0), in front of the same
direct_response backends (pinned to CPU 1, with the load generator):
  a  tcp_proxy with native weighted_clusters 80/20
  b  the filter (root_id split-mirror-tcp, a tcp_route without sni_hosts, 80/20) before tcp_proxy
  e  the filter matching no route (its sni_hosts never match plain TCP), then native
     weighted_clusters: the VM's cost per connection (context, callback, SNI read, counter)
     without the filter state
wrk sends every request with `Connection: close`, so each request is a new downstream connection
(and a new upstream one): requests/s is connections/s. Plain TCP, no TLS, so the handshake's cost
does not hide the filter's. Rounds alternate (a b a b ...); per round it reports connections/s
and the proxy's CPU time per connection (/proc), then the medians of the per-round ratios b/a.
Not part of `make test`; needs wrk and taskset.
"""
import argparse
import json
import os
import pathlib
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = pathlib.Path(__file__).resolve().parents[1]
WASM = REPO / "target/wasm32-wasip1/release/split_mirror.wasm"
ENVOY = REPO / ".venv/bin/envoy"
HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
VARIANTS = ("a", "b", "e")
TCP_PROXY = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def address(port):
    return {"socket_address": {"address": "127.0.0.1", "port_value": port}}


def cluster(name, port):
    return {"name": name, "type": "STATIC", "connect_timeout": "1s",
            "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address(port)}}]}]}}


def backends_config(admin, ports):
    listeners = []
    for name, port in ports.items():
        listeners.append({"name": name, "address": address(port), "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager", "typed_config": {
                "@type": HCM, "stat_prefix": name, "delayed_close_timeout": "0s",
                "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [{
                    "match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": name}}}]}]},
                "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}]})
    return {"admin": {"address": address(admin)}, "static_resources": {"listeners": listeners}}


def proxy_config(variant, admin, port, ports):
    native = {"@type": TCP_PROXY, "stat_prefix": variant, "weighted_clusters": {"clusters": [
        {"name": "stable", "weight": 80}, {"name": "canary", "weight": 20}]}}
    if variant == "a":
        filters = [{"name": "envoy.filters.network.tcp_proxy", "typed_config": native}]
    else:
        route = {"name": "bench", "backends": [{"cluster": "stable", "weight": 80}, {"cluster": "canary", "weight": 20}]}
        if variant == "e":
            route["sni_hosts"] = ["never.invalid"]
        config = {"tcp_routes": [route]}
        filters = [
            {"name": "envoy.filters.network.wasm", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm",
                "config": {"name": "split-mirror-tcp", "root_id": "split-mirror-tcp",
                           "vm_config": {"vm_id": "split-mirror", "runtime": "envoy.wasm.runtime.v8",
                                         "code": {"local": {"filename": str(WASM)}}},
                           "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                             "value": json.dumps(config)}}}},
            {"name": "envoy.filters.network.tcp_proxy", "typed_config": {
                "@type": TCP_PROXY, "stat_prefix": "b", "cluster": "stable"} if variant == "b" else native}]
    return {"admin": {"address": address(admin)}, "static_resources": {
        "listeners": [{"name": "proxy", "address": address(port), "filter_chains": [{"filters": filters}]}],
        "clusters": [cluster(name, p) for name, p in ports.items()]}}


class Envoy:
    def __init__(self, name, config, admin, cpu, folder):
        path = folder / f"{name}.json"
        path.write_text(json.dumps(config))
        self.admin, self.log = admin, folder / f"{name}.log"
        self.process = subprocess.Popen(
            ["taskset", "-c", str(cpu), str(ENVOY), "-c", str(path), "--disable-hot-restart", "--concurrency", "1",
             "-l", "warning", "--log-path", str(self.log)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{admin}/ready", timeout=2) as r:
                    if r.read().strip() == b"LIVE":
                        return
            except OSError:
                time.sleep(0.1)
        sys.exit(f"{name} Envoy not ready; see {self.log}")

    def cpu_seconds(self):
        fields = pathlib.Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        self.process.terminate()
        self.process.wait(10)


def wrk(port, connections, duration):
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{duration}s",
                          "-H", "Connection: close", f"http://127.0.0.1:{port}/"],
                         capture_output=True, text=True, timeout=duration + 60).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    return rate, errors.group(0) if errors else ""


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    for tool in ("wrk", "taskset"):
        if not shutil.which(tool):
            sys.exit(f"bench/tcp.py needs {tool}")
    if not WASM.exists():
        sys.exit("run `make build` first")
    folder = pathlib.Path(tempfile.mkdtemp(prefix="split-mirror-tcp-bench-"))
    ports = {"stable": free_port(), "canary": free_port()}
    admin = free_port()
    envoys = {"backends": Envoy("backends", backends_config(admin, ports), admin, 1, folder)}
    listen = {}
    try:
        for variant in VARIANTS:
            listen[variant], admin = free_port(), free_port()
            envoys[variant] = Envoy(variant, proxy_config(variant, admin, listen[variant], ports), admin, 0, folder)
        # Warm-up: the first connections compile the module's code paths, open the pools.
        for variant in VARIANTS:
            wrk(listen[variant], args.connections, 2)
        rows = []
        for pair in range(args.pairs):
            row = {}
            for variant in VARIANTS:
                before = envoys[variant].cpu_seconds()
                rate, errors = wrk(listen[variant], args.connections, args.duration)
                cpu = envoys[variant].cpu_seconds() - before
                row[variant] = (rate, cpu * 1e6 / (rate * args.duration), errors)
            rows.append(row)
            print(f"round {pair + 1}: " + " | ".join(
                f"{v} {row[v][0]:6.0f} conn/s {row[v][1]:6.1f} µs CPU/conn {row[v][2]}" for v in VARIANTS), flush=True)
        print(f"medians of {args.pairs} rounds ({args.duration} s, {args.connections} connections), per-round ratios to a:")
        for variant in VARIANTS[1:]:
            rate_ratio = statistics.median(r[variant][0] / r["a"][0] for r in rows)
            cpu_ratio = statistics.median(r[variant][1] / r["a"][1] for r in rows)
            cpu_extra = statistics.median(r[variant][1] - r["a"][1] for r in rows)
            print(f"  {variant}/a: new-connection rate {rate_ratio:.3f}; proxy CPU per connection {cpu_ratio:.3f} "
                  f"({cpu_extra:+.1f} µs)")
    finally:
        for envoy in envoys.values():
            envoy.stop()


if __name__ == "__main__":
    main()
