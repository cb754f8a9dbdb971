"""Shared helpers for the Python tests: where the repository, Envoy, the module and the schemas are.

Each lookup fails (never skips) with the command or setting that fixes it, except the one schema
no package registry carries (Istio's WasmPlugin, read from ../shared): without it the checks that
need it are skipped, saying why, unless SPLIT_MIRROR_REQUIRE_SHARED=1 (.ci/run) makes them fail.
"""
import os
import pathlib
import subprocess
import unittest

REPO = pathlib.Path(__file__).resolve().parents[2]
WASM = REPO / "target/wasm32-wasip1/release/split_mirror.wasm"


def shared_root() -> pathlib.Path:
    """`$SPLIT_MIRROR_SHARED`, or `../shared` beside the checkout."""
    return pathlib.Path(os.environ.get("SPLIT_MIRROR_SHARED", REPO.parent / "shared"))


def shared_required() -> bool:
    return os.environ.get("SPLIT_MIRROR_REQUIRE_SHARED", "") not in ("", "0")


def shared_schema(name: str, root=None, required=None) -> pathlib.Path:
    """`<root>/schemas/<name>` (root: shared_root()). Missing: unittest.SkipTest naming where it
    looked and how to provide it, or AssertionError when it is required (`required`, default
    SPLIT_MIRROR_REQUIRE_SHARED)."""
    path = (shared_root() if root is None else root) / "schemas" / name
    if path.is_file():
        return path
    message = (f"{path} not found (no package registry carries it): check out the shared folder as "
               f"../shared beside the repository, or set SPLIT_MIRROR_SHARED to the folder that holds schemas/{name}")
    if shared_required() if required is None else required:
        raise AssertionError(message + "; SPLIT_MIRROR_REQUIRE_SHARED=1 makes this check mandatory")
    raise unittest.SkipTest(message)


def compose_spec_schema() -> pathlib.Path:
    """The Compose Specification JSON Schema vendored in PyPI's check-jsonschema (pinned in the
    Makefile's PY_TOOLS; compose-spec/compose-spec `schema/compose-spec.json`)."""
    try:
        import importlib.resources

        path = importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    except ModuleNotFoundError as error:
        raise AssertionError(f"{error}: run `make envoy` (installs check-jsonschema into .venv)") from error
    if not path.is_file():
        raise AssertionError(f"{path} is missing: the check-jsonschema in .venv no longer vendors it")
    return pathlib.Path(str(path))


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
