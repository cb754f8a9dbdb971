//! The filter's metrics, read back from a real Envoy running the shipped envoy/envoy.yaml: exact
//! counter values in `/stats` and, through the shipped `stats_tags`, as Prometheus labels. A
//! per-route counter is defined on its first increment, so a reason or outcome that never
//! happened has no series at all (not a zero one), like Envoy's own lazily created stats.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::backend::Backend;
use common::client::{count_by_backend, Request};
use common::envoy::{start_shipped, Envoy, FrontProxy};
use common::free_port;
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;

/// `name{labels} value` lines of `/stats/prometheus`, keyed by `name{labels}`.
fn prometheus(envoy: &Envoy) -> HashMap<String, u64> {
    let response = Request::get("/stats/prometheus")
        .host("admin")
        .send(envoy.admin_port);
    String::from_utf8_lossy(&response.body)
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter_map(|(key, value)| Some((key.to_string(), value.parse().ok()?)))
        .collect()
}

#[test]
fn shipped_config_counts_every_decision_and_mirror_outcome() {
    let [v1, v2, shadow] = Backend::start_each(["httpbin-v1", "httpbin-v2", "httpbin-shadow"]);
    let ports = [
        (10000, free_port()),
        (9901, free_port()),
        (10001, v1.port),
        (10002, v2.port),
        (10003, shadow.port),
    ];
    let envoy = start_shipped("envoy/envoy.yaml", &ports, 10000, 9901);

    const N: usize = 300;
    let counts = count_by_backend(envoy.port, &Request::get("/get").host("httpbin"), N);
    let unmatched = count_by_backend(envoy.port, &Request::get("/").host("elsewhere"), 7);
    assert_eq!(
        unmatched.get("httpbin-v1"),
        Some(&7),
        "unmatched hosts go to the stable fallback"
    );
    let mirrored = shadow.settled_count(Duration::from_millis(300)) as u64;

    let stats = envoy.stats();
    let stat = |name: &str| {
        stats
            .get(&format!("wasmcustom.{name}"))
            .copied()
            .unwrap_or_else(|| panic!("no stat {name}"))
    };
    for backend in ["httpbin-v1", "httpbin-v2"] {
        let expected = counts.get(backend).copied().unwrap_or(0) as u64;
        assert_eq!(
            stat(&format!(
                "split_mirror_requests_total;route=httpbin;backend={backend};reason=weight"
            )),
            expected
        );
    }
    assert_eq!(stat("split_mirror_unmatched_total"), 7);
    let mirror = |outcome: &str| {
        stat(&format!(
            "split_mirror_mirror_total;route=httpbin;mirror=httpbin-shadow;outcome={outcome}"
        ))
    };
    assert_eq!(mirror("mirrored"), mirrored);
    assert_eq!(mirror("mirrored") + mirror("skipped_sampling"), N as u64);
    assert_eq!(stat("split_mirror_shadows_in_flight"), 0);
    // Exactly the series that counted something, and the two defined with the configuration:
    // no override, no dispatch failure... ever happened, so none of their series exists.
    let mut defined: Vec<&str> = stats
        .keys()
        .filter_map(|name| name.strip_prefix("wasmcustom."))
        .collect();
    defined.sort_unstable();
    let requests = "split_mirror_requests_total;route=httpbin";
    let mirror_total = "split_mirror_mirror_total;route=httpbin;mirror=httpbin-shadow";
    assert_eq!(
        defined,
        [
            format!("{mirror_total};outcome=mirrored"),
            format!("{mirror_total};outcome=skipped_sampling"),
            format!("{requests};backend=httpbin-v1;reason=weight"),
            format!("{requests};backend=httpbin-v2;reason=weight"),
            "split_mirror_shadows_in_flight".to_string(),
            "split_mirror_unmatched_total".to_string(),
        ]
    );

    let prometheus = prometheus(&envoy);
    let label = |backend: &str, reason: &str| {
        format!("split_mirror_requests_total{{route=\"httpbin\",backend=\"{backend}\",reason=\"{reason}\"}}")
    };
    for backend in ["httpbin-v1", "httpbin-v2"] {
        let expected = counts.get(backend).copied().unwrap_or(0) as u64;
        assert_eq!(
            prometheus.get(&label(backend, "weight")),
            Some(&expected),
            "{backend}"
        );
    }
    let mirrored_line = "split_mirror_mirror_total{route=\"httpbin\",mirror=\"httpbin-shadow\",outcome=\"mirrored\"}";
    assert_eq!(prometheus.get(mirrored_line), Some(&mirrored));
    assert_eq!(prometheus.get("split_mirror_unmatched_total{}"), Some(&7));
    assert!(
        !prometheus
            .keys()
            .any(|line| line.contains("reason=\"override\"")),
        "a reason that never happened has no series"
    );
}

#[test]
fn response_header_names_the_chosen_backend_only_when_configured() {
    let [v1, v2] = Backend::start_each(["v1", "v2"]);
    let backends = json!([{"cluster": "v1", "weight": 1}, {"cluster": "v2", "weight": 1}]);
    let with = json!({"response_header": "x-split-backend", "routes": [{"name": "r", "backends": backends}]});
    let envoy = FrontProxy::new(&with, &[("v1", v1.port), ("v2", v2.port)]).start();
    for _ in 0..40 {
        let response = Request::get("/").send(envoy.port);
        assert_eq!(
            response.header("x-split-backend"),
            Some(response.served_by())
        );
    }
    drop(envoy);
    let without = json!({"routes": [{"name": "r", "backends": backends}]});
    let envoy = FrontProxy::new(&without, &[("v1", v1.port), ("v2", v2.port)]).start();
    assert_eq!(
        Request::get("/").send(envoy.port).header("x-split-backend"),
        None
    );
}
