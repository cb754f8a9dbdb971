//! Envoy's wasm failure policies, exercised with the fault-injection build (a trap on demand):
//! what clients see after the filter's VM dies, and how fast FAIL_RELOAD recovers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::backend::Backend;
use common::client::{count_by_backend, Request};
use common::envoy::{FrontProxy, ROUTE_HEADER};
use common::{assert_split, repo_root, wasm_path};
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const FAULT_HEADER: &str = "x-split-mirror-fault";

/// The module built with `--features fault-injection` (`make fault-build`).
fn fault_wasm() -> PathBuf {
    let path = std::env::var_os("SPLIT_MIRROR_FAULT_WASM")
        .map(|p| repo_root().join(p))
        .unwrap_or_else(|| {
            repo_root().join("target/fault-injection/wasm32-wasip1/release/split_mirror.wasm")
        });
    assert!(
        path.exists(),
        "{} is missing: run `make fault-build` (make test does)",
        path.display()
    );
    path
}

fn proxy(v1: &Backend, v2: &Backend, policy: &str) -> FrontProxy {
    let config = json!({"routes": [{"name": "httpbin", "backends": [
        {"cluster": "v1", "weight": 80}, {"cluster": "v2", "weight": 20}]}]});
    FrontProxy::new(&config, &[("v1", v1.port), ("v2", v2.port)])
        .wasm(fault_wasm())
        .failure_policy(policy)
}

fn trap(port: u16) -> u16 {
    Request::get("/")
        .header(FAULT_HEADER, "1")
        .try_send(port)
        .map_or(0, |r| r.status)
}

#[test]
fn release_build_cannot_inject_faults() {
    let release = std::fs::read(wasm_path()).unwrap();
    assert!(!release
        .windows(FAULT_HEADER.len())
        .any(|w| w == FAULT_HEADER.as_bytes()));
    let fault = std::fs::read(fault_wasm()).unwrap();
    assert!(fault
        .windows(FAULT_HEADER.len())
        .any(|w| w == FAULT_HEADER.as_bytes()));
}

#[test]
fn fail_closed_answers_503_once_the_vm_is_dead() {
    let [v1, v2] = Backend::start_each(["v1", "v2"]);
    let envoy = proxy(&v1, &v2, "FAIL_CLOSED").start();
    assert_eq!(
        count_by_backend(envoy.port, &Request::get("/"), 20)
            .values()
            .sum::<usize>(),
        20
    );
    let status = trap(envoy.port);
    eprintln!("FAIL_CLOSED: the trapping request got {status}");
    assert_ne!(status, 200);
    for i in 0..20 {
        let response = Request::get("/").send(envoy.port);
        assert_eq!(
            response.status, 503,
            "request {i} after the trap: {response:?}"
        );
    }
    // The panic's message reaches Envoy's log (Rust's default hook writes to WASI stderr).
    assert!(
        envoy.wait_for_log("panicked at") && envoy.wait_for_log("split-mirror: injected fault"),
        "the filter's panic is not in Envoy's log:\n{}",
        envoy.log_tail(20)
    );
}

#[test]
fn fail_open_with_native_fallback_keeps_traffic_flowing() {
    let [v1, v2] = Backend::start_each(["v1", "v2"]);
    let envoy = proxy(&v1, &v2, "FAIL_OPEN")
        .fallback_weights(&[("v1", 80), ("v2", 20)])
        .start();
    let status = trap(envoy.port);
    eprintln!("FAIL_OPEN: the trapping request got {status}");
    let before = v1.count() + v2.count();
    let counts = count_by_backend(envoy.port, &Request::get("/"), 1_500);
    assert_split("v1 via native weighted_clusters", &counts, "v1", 0.8);
    // The filter is out of the path: nothing wrote the route header.
    let after: Vec<_> = v1
        .requests()
        .into_iter()
        .chain(v2.requests())
        .skip(before)
        .collect();
    assert!(after.iter().all(|r| r.header_count(ROUTE_HEADER) == 0));
}

#[test]
fn fail_reload_recovers_quickly() {
    let [v1, v2] = Backend::start_each(["v1", "v2"]);
    let envoy = proxy(&v1, &v2, "FAIL_RELOAD").start();
    count_by_backend(envoy.port, &Request::get("/"), 10);
    let start = Instant::now();
    let status = trap(envoy.port);
    let mut failed = 0;
    let recovered = loop {
        let response = Request::get("/").try_send(envoy.port);
        if response.as_ref().is_ok_and(|r| r.status == 200) {
            break start.elapsed();
        }
        failed += 1;
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no recovery in 10 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    eprintln!("FAIL_RELOAD: trap answered {status}; {failed} later requests failed; recovered in {recovered:?}");
    // Envoy fails the trapping request and at most the first one sent to the failed VM.
    assert!(failed <= 1, "{failed} requests failed after the trap");
    // The reloaded filter routes again (weights, route header written).
    let counts = count_by_backend(envoy.port, &Request::get("/"), 1_500);
    assert_split("v1 after reload", &counts, "v1", 0.8);
    assert!(v1.requests().last().unwrap().header_count(ROUTE_HEADER) == 1);
}
