"""Shared helpers for the Python tests: where the repository, ../shared, Envoy and the module are.

Each lookup fails (never skips) with the command or setting that fixes it.
"""
import os
import pathlib
import subprocess

REPO = pathlib.Path(__file__).resolve().parents[2]
WASM = REPO / "target/wasm32-wasip1/release/split_mirror.wasm"


def shared_dir() -> pathlib.Path:
    """`$SPLIT_MIRROR_SHARED`, or `../shared` beside the checkout (schemas live there)."""
    path = pathlib.Path(os.environ.get("SPLIT_MIRROR_SHARED", REPO.parent / "shared"))
    if not (path / "schemas").is_dir():
        raise AssertionError(
            f"shared schemas not found at {path}/schemas: check out ../shared beside the "
            "repository or set SPLIT_MIRROR_SHARED to the folder that holds schemas/"
        )
    return path


def envoy_bin() -> pathlib.Path:
    path = pathlib.Path(os.environ.get("ENVOY_BIN", REPO / ".venv/bin/envoy"))
    if not path.exists():
        raise AssertionError(f"Envoy not found at {path}: run `make envoy` or set ENVOY_BIN")
    return path


def require_wasm() -> None:
    if not WASM.exists():
        raise AssertionError(f"{WASM} is missing: run `make build`")


def envoy_validate(config: pathlib.Path, cwd: pathlib.Path = REPO) -> subprocess.CompletedProcess:
    """`envoy --mode validate -c config` run from `cwd` (relative module paths resolve there)."""
    require_wasm()
    return subprocess.run(
        [str(envoy_bin()), "--mode", "validate", "--disable-hot-restart", "-l", "info", "-c", str(config)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
