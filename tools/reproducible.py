#!/usr/bin/env python3
"""`make reproducible`: the module is the same, byte for byte, whoever builds it and wherever.

    python3 tools/reproducible.py            # after `make build`

Builds the module a second time, with `make build`, in a copy of the sources at another path and
with another CARGO_HOME (its registry index and crate archives copied from this one, so the
build runs offline), and compares it with target/wasm32-wasip1/release/split_mirror.wasm built
here. Then checks that neither module names an absolute path of a builder: /root, /home, /work,
/tmp, either CARGO_HOME or either checkout. The panic locations a module carries are source
paths; the Makefile remaps them (--remap-path-prefix in RUSTFLAGS) to `cargo/...` and
`split-mirror/...`. Rust's own library paths (/rustc/<commit>/library/...) are already the
same for everyone with the same toolchain.

Exits 0 when both hold, 1 with the differences otherwise. Imports nothing outside the standard
library.
"""
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[1]
MODULE = pathlib.PurePosixPath("target/wasm32-wasip1/release/split_mirror.wasm")
# What `make build` reads: the crate, its lock file, the Makefile and the linker/export tools.
SOURCES = ("Cargo.toml", "Cargo.lock", "Makefile", "clippy.toml", "src", "tools")
# Home and scratch folders of Linux and macOS builders, and the CI/developer checkouts here.
BUILDER_ROOTS = ("/root/", "/home/", "/work/", "/tmp/", "/Users/", "/builds/", "/var/folders/")


def cargo_home() -> pathlib.Path:
    """CARGO_HOME as cargo resolves it (no symlink resolution), as the Makefile does."""
    value = os.environ.get("CARGO_HOME")
    return pathlib.Path(os.path.abspath(value)) if value else pathlib.Path.home() / ".cargo"


def absolute_paths(module: bytes, extra=()) -> list:
    """The strings of `module` that name a builder's path: one of BUILDER_ROOTS, or any of
    `extra` (CARGO_HOMEs, checkouts). [] for a module that names none."""
    found = []
    for needle in (*BUILDER_ROOTS, *(str(p).rstrip("/") + "/" for p in extra)):
        for match in re.finditer(re.escape(needle.encode()), module):
            start = match.start()
            while start > 0 and 0x21 <= module[start - 1] < 0x7F:
                start -= 1
            end = match.end()
            while end < len(module) and 0x21 <= module[end] < 0x7F:
                end += 1
            text = module[start:end].decode("ascii", "replace")
            if text not in found:
                found.append(text)
    return found


def first_difference(a: bytes, b: bytes) -> str:
    for offset, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"first difference at byte {offset} of {len(a)} / {len(b)}"
    return f"one is a prefix of the other: {len(a)} / {len(b)} bytes"


def copy_sources(checkout: pathlib.Path) -> None:
    checkout.mkdir(parents=True)
    for name in SOURCES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, checkout / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.exists():
            shutil.copy2(source, checkout / name)


def second_cargo_home(home: pathlib.Path, original: pathlib.Path) -> None:
    """A CARGO_HOME with this one's registry index and .crate archives (a few MB), but its own
    registry/src/ where cargo unpacks the crates: their paths differ from this build's."""
    for part in ("index", "cache"):
        source = original / "registry" / part
        if not source.is_dir():
            sys.exit(f"reproducible: {source} is missing: run `make build` first (it fetches the crates)")
        shutil.copytree(source, home / "registry" / part, symlinks=True)


def main() -> int:
    first = REPO / MODULE
    if not first.is_file():
        sys.exit(f"reproducible: {first} is missing: run `make build`")
    home_a = cargo_home()
    # A longer, different prefix for everything, so that a path or its length showing through
    # anywhere changes the bytes.
    with tempfile.TemporaryDirectory(prefix="split-mirror-reproducible-") as scratch:
        root = pathlib.Path(scratch)
        checkout_b = root / "another" / "checkout" / "split-mirror-b"
        home_b = root / "another-cargo-home"
        copy_sources(checkout_b)
        second_cargo_home(home_b, home_a)
        env = {**os.environ, "CARGO_HOME": str(home_b), "CARGO_NET_OFFLINE": "true"}
        for variable in ("CARGO_TARGET_DIR", "CARGO_BUILD_TARGET_DIR", "RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS",
                         "MAKEFLAGS", "MFLAGS", "MAKELEVEL"):
            env.pop(variable, None)
        print(f"reproducible: second build in {checkout_b} with CARGO_HOME={home_b}", flush=True)
        build = subprocess.run(["make", "--no-print-directory", "build"], cwd=checkout_b, env=env,
                               capture_output=True, text=True)
        if build.returncode != 0:
            print(build.stdout + build.stderr, file=sys.stderr)
            sys.exit("reproducible: the second build failed")
        a, b = first.read_bytes(), (checkout_b / MODULE).read_bytes()
        problems = []
        if a != b:
            problems.append(f"the two builds differ ({first_difference(a, b)})")
        paths = [home_a, home_b, REPO, checkout_b]
        for label, module in (("this build", a), ("second build", b)):
            for text in absolute_paths(module, paths):
                problems.append(f"{label} names a builder path: {text}")
    if problems:
        print("reproducible: FAILED\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print(f"reproducible: ok, {len(a)} bytes identical from {REPO} and another checkout and CARGO_HOME; "
          f"no builder path inside")
    return 0


if __name__ == "__main__":
    sys.exit(main())
