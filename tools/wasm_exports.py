#!/usr/bin/env python3
"""Keeps only the exports the filter uses: Envoy then never calls into the VM for the rest.

    python3 tools/wasm_exports.py MODULE.wasm [--list]

The proxy-wasm Rust SDK exports every callback of the ABI (`proxy_on_log`, `proxy_on_done`,
`proxy_on_response_body`, gRPC, network filter callbacks...), whether or not the filter
implements it. Envoy (proxy-wasm-cpp-host `context.cc`) skips a callback the module does not
export, and calls an exported one on every stream, even when the SDK's default does nothing:
each such call is a crossing into V8. Measured with callgrind in `make bench`'s setup, an empty
SDK filter costs 20.3k instructions per request with every export and 12.9k with only the
exports below.

The module is rewritten in place (through a temporary file, so cargo's hard-linked copy in
deps/ stays as cargo wrote it). Running it again is a no-op. It fails, naming the export, if an
export listed here is missing: a renamed SDK export must not silently stop a callback.
"""
import argparse
import os
import pathlib
import sys

# Every callback src/adapter implements, plus what the host needs to load and configure the VM.
# A callback added to the adapter must be added here, or Envoy never calls it.
KEEP = (
    "memory",
    "_initialize",  # WASI reactor start-up (runs Rust's static constructors)
    "proxy_abi_version_0_2_1",
    "proxy_on_memory_allocate",  # the host allocates returned values (headers...) in the VM
    "proxy_on_vm_start",
    "proxy_on_configure",
    "proxy_on_context_create",
    "proxy_on_delete",  # the SDK frees the HTTP context here
    "proxy_on_tick",  # the root context sends queued shadows
    "proxy_on_http_call_response",  # a shadow ended: its in-flight slot is freed
    "proxy_on_request_headers",  # the split, the mirror's start
    "proxy_on_request_body",  # the mirror's body copy (only called for requests with a body)
    "proxy_on_request_trailers",  # the mirror's trailers
    "proxy_on_response_headers",  # minted sticky cookie, debugging response header
    "proxy_on_response_body",  # the primary's body, copied for compared mirrors
    "proxy_on_response_trailers",  # the primary's grpc-status, for compared mirrors
    # The network filter (root id split-mirror-tcp): its one entry per connection. Envoy never
    # calls it for HTTP streams, and no per-packet callback (proxy_on_downstream_data) is kept.
    "proxy_on_new_connection",
)

EXPORT_SECTION = 7


def read_leb(data, offset):
    """An unsigned LEB128 at `offset`: (value, offset after it)."""
    value = shift = 0
    while True:
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, offset


def leb(value):
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | 0x80 if value else byte)
        if not value:
            return bytes(out)


def section(module, wanted, what):
    """(section start, its contents' start, section end) of the first section with id `wanted`."""
    if module[:8] != b"\0asm\x01\0\0\0":
        raise ValueError("not a WebAssembly 1.0 module")
    offset = 8
    while offset < len(module):
        size, body = read_leb(module, offset + 1)
        if module[offset] == wanted:
            return offset, body, body + size
        offset = body + size
    raise ValueError(f"the module has no {what} section")


def export_section(module):
    """(exports as (name, kind byte, index), section start, section end)."""
    start, body, end = section(module, EXPORT_SECTION, "export")
    count, cursor = read_leb(module, body)
    exports = []
    for _ in range(count):
        length, cursor = read_leb(module, cursor)
        name = module[cursor:cursor + length].decode()
        kind = module[cursor + length]
        index, cursor = read_leb(module, cursor + length + 1)
        exports.append((name, kind, index))
    return exports, start, end


def keep_only(module, names):
    """The module with only the exports in `names`; every one of them must be present."""
    exports, start, end = export_section(module)
    missing = sorted(set(names) - {name for name, _, _ in exports})
    if missing:
        raise ValueError(f"export(s) {', '.join(missing)} not found: has the SDK renamed a callback?")
    kept = [e for e in exports if e[0] in names]
    body = leb(len(kept)) + b"".join(
        leb(len(name.encode())) + name.encode() + bytes([kind]) + leb(index) for name, kind, index in kept)
    return module[:start] + bytes([EXPORT_SECTION]) + leb(len(body)) + body + module[end:]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("module", type=pathlib.Path)
    parser.add_argument("--list", action="store_true", help="print the exports and change nothing")
    args = parser.parse_args()
    module = args.module.read_bytes()
    try:
        if args.list:
            for name, _, _ in export_section(module)[0]:
                print(name)
            return
        trimmed = keep_only(module, KEEP)
    except (ValueError, IndexError, UnicodeDecodeError) as error:
        sys.exit(f"wasm_exports: {args.module}: {error}")
    if trimmed != module:
        temporary = args.module.with_suffix(".trimmed.tmp")
        temporary.write_bytes(trimmed)
        os.replace(temporary, args.module)
    print(f"wasm_exports: {args.module}: {len(KEEP)} exports kept")


if __name__ == "__main__":
    main()
