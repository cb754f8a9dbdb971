#!/usr/bin/env python3
"""The linker `make build` gives rustc: Rust's own rust-lld, without the unused callbacks.

    cargo rustc --lib --target wasm32-wasip1 --release -- -C linker=tools/wasm_link.py

rustc asks the linker to export every `#[no_mangle]` function of a cdylib, so each callback the
proxy-wasm SDK defines stays in the module with all the code only it reaches (the SDK's
network-filter, gRPC and queue dispatch). Dropping the `--export` of the callbacks the filter
does not use (those not in tools/wasm_exports.py KEEP) lets the linker's --gc-sections remove
that code: 8.7 KB less than removing the exports after linking. Every other argument is passed
through unchanged.

tools/wasm_exports.py still runs after the link: it checks that every callback in KEEP is
exported and removes any other, so a link that could not be filtered (a response file) gives
the same exports, only a larger module.
"""
import os
import pathlib
import subprocess
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from wasm_exports import KEEP  # noqa: E402

CALLBACK_PREFIX = "proxy_on_"


def rust_lld():
    """The rust-lld of the toolchain running this build (rustup sets it for cargo's children)."""
    rustc = os.environ.get("RUSTC", "rustc")
    sysroot = subprocess.run([rustc, "--print", "sysroot"], check=True, capture_output=True, text=True)
    found = sorted(pathlib.Path(sysroot.stdout.strip()).glob("lib/rustlib/*/bin/rust-lld"))
    if not found:
        sys.exit("wasm_link: rust-lld not found in the Rust sysroot (rustup component rust-lld?)")
    return str(found[0])


def without_unused_callbacks(args):
    kept, index = [], 0
    while index < len(args):
        if (args[index] == "--export" and index + 1 < len(args)
                and args[index + 1].startswith(CALLBACK_PREFIX) and args[index + 1] not in KEEP):
            index += 2
            continue
        kept.append(args[index])
        index += 1
    return kept


def main():
    linker = rust_lld()
    os.execv(linker, [linker] + without_unused_callbacks(sys.argv[1:]))


if __name__ == "__main__":
    main()
