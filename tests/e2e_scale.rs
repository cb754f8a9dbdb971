//! Route lookup at gateway scale in a real Envoy: 2,000 exact-host routes among wildcard,
//! tagged, path-prefixed and catch-all routes; the first matching route in config order wins.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::backend::Backend;
use common::client::Request;
use common::envoy::FrontProxy;
use common::load::Load;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const EXACT_ROUTES: usize = 2_000;

fn one_backend(name: &str, hosts: &[&str], cluster: &str) -> Value {
    json!({"name": name, "hosts": hosts, "backends": [{"cluster": cluster}]})
}

/// Even exact routes go to `even`, odd ones to `odd`: a neighbouring route answering shows.
fn exact_route(n: usize) -> Value {
    let cluster = if n % 2 == 0 { "even" } else { "odd" };
    let host = format!("host-{n}.example");
    if n == 7 {
        return json!({"name": format!("host-{n}"), "hosts": [host], "backends": [
            {"cluster": cluster, "tag": "stable"},
            {"cluster": "canary", "weight": 0, "tag": "canary"}]});
    }
    one_backend(&format!("host-{n}"), &[&host], cluster)
}

/// In order: an early path-prefixed route, a deep wildcard, the exact routes, a wildcard over
/// all of them, a route shadowed by an earlier exact one, and the catch-all.
fn scale_config() -> Value {
    let mut routes = vec![
        json!({"name": "early-api", "hosts": ["host-1500.example"], "path_prefix": "/api",
               "backends": [{"cluster": "api"}]}),
        one_backend("deep", &["*.deep.example"], "deep"),
    ];
    routes.extend((0..EXACT_ROUTES).map(exact_route));
    routes.push(one_backend("wild", &["*.example"], "wild"));
    routes.push(one_backend("shadowed", &["host-42.example"], "shadowed"));
    routes.push(json!({"name": "catch-all", "backends": [{"cluster": "catch-all"}]}));
    json!({ "routes": routes })
}

#[test]
fn two_thousand_routes_keep_first_match_order() {
    let backends = Backend::start_each([
        "even",
        "odd",
        "canary",
        "api",
        "deep",
        "wild",
        "shadowed",
        "catch-all",
    ]);
    let clusters: Vec<(&str, u16)> = backends.iter().map(|b| (b.name.as_str(), b.port)).collect();
    let envoy = FrontProxy::new(&scale_config(), &clusters).start();
    // (host, path, backend that must answer, route counted)
    let cases = [
        ("host-0.example", "/", "even", "host-0"),
        ("host-1999.example:10000", "/", "odd", "host-1999"),
        ("HOST-1000.Example", "/status", "even", "host-1000"),
        ("host-1500.example", "/api/users", "api", "early-api"),
        ("host-1500.example", "/", "even", "host-1500"),
        ("a.deep.example", "/", "deep", "deep"),
        ("deep.example", "/", "wild", "wild"),
        ("host-2000.example", "/", "wild", "wild"),
        ("www.host-3.example", "/", "wild", "wild"),
        ("canary-host-7.example", "/", "canary", "host-7"),
        ("stable-host-7.example", "/", "odd", "host-7"),
        ("host-42.example", "/", "even", "host-42"),
        ("example", "/", "catch-all", "catch-all"),
        ("unknown.test", "/", "catch-all", "catch-all"),
    ];
    for (host, path, backend, _) in cases {
        let response = Request::get(path).host(host).send(envoy.port);
        assert_eq!(response.status, 200, "{host}{path}: {response:?}");
        assert_eq!(response.served_by(), backend, "{host}{path}");
    }
    let shadowed = backends.iter().find(|b| b.name == "shadowed").unwrap();
    assert_eq!(
        shadowed.count(),
        0,
        "a later route took an earlier route's host"
    );
    // The filter counted each request under the route that won, not only the right cluster.
    let stats = envoy.stats();
    for (host, path, backend, route) in cases {
        let reason = if host.starts_with("canary-") || host.starts_with("stable-") {
            "tag"
        } else {
            "weight"
        };
        let counter = format!("split_mirror_requests_total;route={route};backend={backend}");
        let counter = format!("wasmcustom.{counter};reason={reason}");
        assert!(
            stats.get(&counter).is_some_and(|&n| n > 0),
            "{host}{path}: {counter} not counted"
        );
    }
    assert_eq!(
        stats
            .get("wasmcustom.split_mirror_unmatched_total")
            .copied(),
        Some(0)
    );
}

/// 10,000 exact-host routes, 80/20 each; `last_canary` is the last route's canary weight.
fn ten_thousand_routes(last_canary: u32) -> Value {
    let routes: Vec<Value> = (0..10_000)
        .map(|n| {
            let canary = if n == 9_999 { last_canary } else { 20 };
            json!({"name": format!("r{n}"), "hosts": [format!("host-{n}.example")],
                   "backends": [{"cluster": "stable", "weight": 100 - canary},
                                {"cluster": "canary", "weight": canary}]})
        })
        .collect();
    json!({ "routes": routes })
}

#[test]
fn a_weight_change_in_ten_thousand_routes_under_load_fails_no_request() {
    let [stable, canary] = Backend::start_each(["stable", "canary"]);
    let clusters = [("stable", stable.port), ("canary", canary.port)];
    let proxy = |weight| FrontProxy::new(&ten_thousand_routes(weight), &clusters).dynamic();
    let envoy = proxy(20).start();
    // Requests to the last route, bounded by count and time.
    let request = Request::get("/").host("host-9999.example");
    let load = Load::start(
        request,
        envoy.port,
        Duration::from_millis(2),
        20_000,
        Duration::from_secs(60),
    );
    std::thread::sleep(Duration::from_millis(1000));
    let update_started = Instant::now();
    assert!(
        envoy.update_filter_config(&proxy(100)),
        "the update was refused:\n{}",
        envoy.log_tail(20)
    );
    let applied_after = update_started.elapsed();
    // Once the new listener serves, the last route sends everything to the canary.
    std::thread::sleep(Duration::from_millis(2000));
    let settled = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    let records = load.stop();
    let failed = records
        .iter()
        .filter(|(_, status, _)| *status != 200)
        .count();
    assert_eq!(failed, 0, "{failed} of {} requests failed", records.len());
    let after: Vec<_> = records.iter().filter(|(at, _, _)| *at > settled).collect();
    assert!(
        after.len() > 50,
        "only {} requests after the update",
        after.len()
    );
    assert!(
        after.iter().all(|(_, _, served)| served == "canary"),
        "the last route's new weight is not in force"
    );
    println!(
        "{} requests, none failed; the update was applied in {applied_after:?}",
        records.len()
    );
}
