//! Weighted split in a real Envoy: shares, live config updates, the route-header rule, several
//! routes, and refused configurations.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::assert_split;
use common::backend::Backend;
use common::client::{count_by_backend, Request};
use common::envoy::{start_expecting_exit, validate_front_proxy, FrontProxy, ROUTE_HEADER};
use serde_json::{json, Value};

/// Requests per share check: enough that a ±0.05 tolerance is at least 4 standard deviations
/// for any weight (a correct filter fails such a check once in tens of thousands of runs).
const SAMPLE: usize = 2_000;

fn split_config(weights: &[(&str, i64)]) -> Value {
    let backends: Vec<Value> = weights
        .iter()
        .map(|(c, w)| json!({"cluster": c, "weight": w}))
        .collect();
    json!({"routes": [{"name": "httpbin", "hosts": ["httpbin"], "backends": backends}]})
}

#[test]
fn weights_70_30_0_split_500_requests() {
    let [v1, v2, v3] = Backend::start_each(["v1", "v2", "v3"]);
    let envoy = FrontProxy::new(
        &split_config(&[("v1", 70), ("v2", 30), ("v3", 0)]),
        &[("v1", v1.port), ("v2", v2.port), ("v3", v3.port)],
    )
    .start();
    // Gateway API's weight check uses 500 requests and ±0.05; at 70/30 that is 2.4 standard
    // deviations, so a correct filter would fail 1.5 % of runs. 2,000 requests (4.9 σ) keep the
    // same tolerance without flaking.
    let counts = count_by_backend(envoy.port, &Request::get("/status/200"), SAMPLE);
    assert_split("v1", &counts, "v1", 0.70);
    assert_split("v2", &counts, "v2", 0.30);
    assert_eq!(counts.get("v3"), None, "{counts:?}");
    assert_eq!(v3.count(), 0, "the weight-0 backend received requests");
    assert_eq!(v1.count() + v2.count(), SAMPLE);
    // Each backend saw the route header naming itself, once.
    for backend in [&v1, &v2] {
        for request in backend.requests() {
            assert_eq!(request.header_count(ROUTE_HEADER), 1);
            assert_eq!(
                request.header(ROUTE_HEADER).as_deref(),
                Some(backend.name.as_str())
            );
        }
    }
}

#[test]
fn smi_canary_walkthrough_with_live_updates() {
    let [v1, v2] = Backend::start_each(["v1", "v2"]);
    let clusters = [("v1", v1.port), ("v2", v2.port)];
    let proxy = |config: Value| FrontProxy::new(&config, &clusters).dynamic();
    let envoy = proxy(split_config(&[("v1", 100), ("v2", 0)])).start();
    let request = Request::get("/");
    assert_eq!(
        count_by_backend(envoy.port, &request, 50).get("v1"),
        Some(&50)
    );

    // An invalid update is refused with the filter's message; v1 keeps serving everything.
    let accepted = envoy.update_filter_config(&proxy(split_config(&[("v1", 50), ("v2", -5)])));
    assert!(!accepted, "Envoy accepted an invalid filter configuration");
    assert!(
        envoy.wait_for_log(
            "route \"httpbin\": backends[1].weight: expected an integer 0..=1000000, got -5"
        ),
        "the filter's message is not in Envoy's log:\n{}",
        envoy.log_tail(30)
    );
    assert_eq!(
        count_by_backend(envoy.port, &request, 50).get("v1"),
        Some(&50)
    );

    // The 50/50 step splits the traffic.
    assert!(envoy.update_filter_config(&proxy(split_config(&[("v1", 50), ("v2", 50)]))));
    let counts = count_by_backend(envoy.port, &request, SAMPLE);
    assert_split("v1", &counts, "v1", 0.5);
    assert_split("v2", &counts, "v2", 0.5);
}

#[test]
fn client_cannot_choose_cluster() {
    let [v1, v2, secret] = Backend::start_each(["v1", "v2", "secret"]);
    let envoy = FrontProxy::new(
        &split_config(&[("v1", 50), ("v2", 50)]),
        &[("v1", v1.port), ("v2", v2.port), ("secret", secret.port)],
    )
    .start();
    for host in ["httpbin", "httpbin:10000", "unmatched.example"] {
        let request = Request::get("/").host(host).header(ROUTE_HEADER, "secret");
        let doubled = request.clone().header(ROUTE_HEADER, "secret");
        for request in [request, doubled] {
            let counts = count_by_backend(envoy.port, &request, 50);
            assert_eq!(counts.get("secret"), None, "host {host}: {counts:?}");
        }
    }
    assert_eq!(secret.count(), 0);
    // Unmatched hosts went to the fallback (v1) with the client's header removed.
    let unmatched: Vec<_> = v1
        .requests()
        .into_iter()
        .filter(|r| r.header("host").as_deref() == Some("unmatched.example"))
        .collect();
    assert_eq!(unmatched.len(), 100);
    assert!(unmatched.iter().all(|r| r.header_count(ROUTE_HEADER) == 0));
}

#[test]
fn two_routes_for_two_hosts_get_their_own_split() {
    let backends: Vec<Backend> = ["a1", "a2", "b1", "b2"]
        .iter()
        .map(|n| Backend::start(n))
        .collect();
    let clusters: Vec<(&str, u16)> = backends.iter().map(|b| (b.name.as_str(), b.port)).collect();
    let config = json!({"routes": [
        {"name": "alpha", "hosts": ["alpha.example"], "backends": [
            {"cluster": "a1", "weight": 9}, {"cluster": "a2", "weight": 1}]},
        {"name": "beta", "hosts": ["*.beta.example"], "backends": [
            {"cluster": "b1", "weight": 200}, {"cluster": "b2", "weight": 800}]}
    ]});
    let envoy = FrontProxy::new(&config, &clusters).start();
    let alpha = count_by_backend(
        envoy.port,
        &Request::get("/").host("Alpha.Example:80"),
        SAMPLE,
    );
    assert_eq!(
        alpha.keys().filter(|k| k.starts_with('b')).count(),
        0,
        "{alpha:?}"
    );
    assert_split("a1", &alpha, "a1", 0.9);
    let beta = count_by_backend(
        envoy.port,
        &Request::get("/").host("www.beta.example"),
        SAMPLE,
    );
    assert_eq!(
        beta.keys().filter(|k| k.starts_with('a')).count(),
        0,
        "{beta:?}"
    );
    assert_split("b2", &beta, "b2", 0.8);
}

#[test]
fn bad_config_is_refused_by_validate_and_at_start_up() {
    let config = split_config(&[("v1", 50), ("v2", -5)]);
    let proxy = FrontProxy::new(&config, &[("v1", 1), ("v2", 2)]);
    let expected = "route \"httpbin\": backends[1].weight: expected an integer 0..=1000000, got -5";

    let (valid, output) = validate_front_proxy(&proxy);
    assert!(
        !valid,
        "envoy --mode validate accepted a bad filter config:\n{output}"
    );
    assert!(
        output.contains(expected),
        "validate output lacks the filter's message:\n{output}"
    );

    let (success, log) = start_expecting_exit(&proxy);
    assert!(!success, "Envoy exited with success on a bad filter config");
    assert!(
        log.contains(expected),
        "start-up log lacks the filter's message:\n{log}"
    );

    let good = FrontProxy::new(
        &split_config(&[("v1", 50), ("v2", 50)]),
        &[("v1", 1), ("v2", 2)],
    );
    let (valid, output) = validate_front_proxy(&good);
    assert!(valid, "a good config failed validation:\n{output}");
}
