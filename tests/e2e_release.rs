//! Release control in a real Envoy: overrides, Knative-style tags and sticky cohorts that only
//! move toward the canary, across config updates, processes and workers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::backend::Backend;
use common::client::{count_by_backend, Request};
use common::envoy::{Envoy, FrontProxy, ROUTE_HEADER};
use serde_json::{json, Value};
use std::collections::BTreeMap;

fn release_config(canary_weight: i64, extra: Value) -> Value {
    let mut route = json!({
        "name": "httpbin",
        "hosts": ["httpbin"],
        "backends": [
            {"cluster": "v1", "weight": 100 - canary_weight, "tag": "current"},
            {"cluster": "v2", "weight": canary_weight, "tag": "candidate"}
        ]
    });
    for (key, value) in extra.as_object().unwrap() {
        route[key] = value.clone();
    }
    json!({"routes": [route]})
}

fn start(config: &Value, v1: &Backend, v2: &Backend) -> Envoy {
    FrontProxy::new(config, &[("v1", v1.port), ("v2", v2.port)]).start()
}

#[test]
fn override_header_and_cookie_reach_a_weight_zero_backend() {
    let [v1, v2] = Backend::start_each(["v1", "v2"]);
    let overrides = json!({"overrides": [
        {"header": "x-canary", "value": "always", "backend": "v2"},
        {"cookie": "canary", "value": "1", "backend": "v2"}
    ]});
    let envoy = start(&release_config(0, overrides), &v1, &v2);
    let by_header = Request::get("/").header("x-canary", "always");
    assert_eq!(
        count_by_backend(envoy.port, &by_header, 100).get("v2"),
        Some(&100)
    );
    let by_cookie = Request::get("/").header("cookie", "session=x; canary=1");
    assert_eq!(
        count_by_backend(envoy.port, &by_cookie, 100).get("v2"),
        Some(&100)
    );
    let without = Request::get("/")
        .header("x-canary", "sometimes")
        .header("cookie", "canary=0");
    assert_eq!(
        count_by_backend(envoy.port, &without, 100).get("v1"),
        Some(&100)
    );
    assert_eq!(v2.count(), 200);
    // The route header rule still holds: the client cannot name the cluster directly.
    let forged = Request::get("/").header(ROUTE_HEADER, "v2");
    assert_eq!(
        count_by_backend(envoy.port, &forged, 50).get("v1"),
        Some(&50)
    );
}

#[test]
fn tags_by_host_and_header_reach_a_weight_zero_backend() {
    let [v1, v2] = Backend::start_each(["v1", "v2"]);
    let envoy = start(
        &release_config(0, json!({"tag_header": "x-split-tag"})),
        &v1,
        &v2,
    );
    let by_host = Request::get("/").host("candidate-httpbin:10000");
    assert_eq!(
        count_by_backend(envoy.port, &by_host, 50).get("v2"),
        Some(&50)
    );
    let by_header = Request::get("/").header("x-split-tag", "candidate");
    assert_eq!(
        count_by_backend(envoy.port, &by_header, 50).get("v2"),
        Some(&50)
    );
    let current = Request::get("/").host("current-httpbin");
    assert_eq!(
        count_by_backend(envoy.port, &current, 20).get("v1"),
        Some(&20)
    );
    // An unknown tag falls back to the weights (v1 at 100 %).
    let unknown = Request::get("/").header("x-split-tag", "nightly");
    assert_eq!(
        count_by_backend(envoy.port, &unknown, 50).get("v1"),
        Some(&50)
    );
    let fallback =
        "wasmcustom.split_mirror_requests_total;route=httpbin;backend=v1;reason=fallback";
    assert_eq!(envoy.stat(fallback), 50);
    assert_eq!(
        envoy.stat("wasmcustom.split_mirror_requests_total;route=httpbin;backend=v2;reason=tag"),
        100
    );
}

const KEYS: usize = 1000;

/// The backend each of the sticky keys lands on.
fn assignments(port: u16) -> Vec<String> {
    (0..KEYS)
        .map(|i| {
            let response = Request::get("/")
                .header("x-user-id", format!("user-{i}"))
                .send(port);
            assert_eq!(response.status, 200);
            response.served_by()
        })
        .collect()
}

fn canary_share(assignment: &[String]) -> f64 {
    assignment.iter().filter(|b| *b == "v2").count() as f64 / assignment.len() as f64
}

#[test]
fn sticky_keys_only_move_toward_the_canary_and_agree_across_proxies() {
    let [v1, v2] = Backend::start_each(["v1", "v2"]);
    let sticky = || json!({"sticky": {"header": "x-user-id"}});
    let proxy = |weight| {
        FrontProxy::new(
            &release_config(weight, sticky()),
            &[("v1", v1.port), ("v2", v2.port)],
        )
        .dynamic()
    };
    let envoy = proxy(10).start();

    let mut steps: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    let mut previous: Option<Vec<String>> = None;
    for weight in [10, 25, 50] {
        if weight != 10 {
            assert!(
                envoy.update_filter_config(&proxy(weight)),
                "update to {weight} refused"
            );
        }
        let now = assignments(envoy.port);
        let share = canary_share(&now);
        assert!(
            (share - weight as f64 / 100.0).abs() <= 0.05,
            "weight {weight}: canary share {share}"
        );
        if let Some(before) = &previous {
            for (key, (b, a)) in before.iter().zip(&now).enumerate() {
                assert!(
                    b == a || a == "v2",
                    "ramp to {weight}: user-{key} moved {b} -> {a}"
                );
                assert!(
                    !(b == "v2" && a != "v2"),
                    "user-{key} left the canary on a ramp up"
                );
            }
        }
        previous = Some(now.clone());
        steps.insert(weight, now);
    }

    // Rollback 50 -> 10: keys only leave the canary, none joins it, and each lands where the
    // 10 % step had it.
    assert!(envoy.update_filter_config(&proxy(10)));
    let rolled_back = assignments(envoy.port);
    for (key, (b, a)) in steps[&50].iter().zip(&rolled_back).enumerate() {
        assert!(
            b == a || (b == "v2" && a == "v1"),
            "rollback: user-{key} moved {b} -> {a}"
        );
    }
    assert_eq!(rolled_back, steps[&10]);

    // A second Envoy process, and one with two workers, agree key by key.
    let other = FrontProxy::new(
        &release_config(10, sticky()),
        &[("v1", v1.port), ("v2", v2.port)],
    )
    .start();
    assert_eq!(
        assignments(other.port),
        steps[&10],
        "a second proxy disagrees"
    );
    drop(other);
    let two_workers = FrontProxy::new(
        &release_config(10, sticky()),
        &[("v1", v1.port), ("v2", v2.port)],
    )
    .concurrency(2)
    .start();
    assert_eq!(
        assignments(two_workers.port),
        steps[&10],
        "an Envoy with two workers disagrees"
    );
}

#[test]
fn minted_sticky_cookie_keeps_the_client_on_its_backend() {
    let [v1, v2] = Backend::start_each(["v1", "v2"]);
    let config = release_config(
        50,
        json!({"sticky": {"cookie": "split-user", "set_cookie": true}}),
    );
    let envoy = start(&config, &v1, &v2);
    for _ in 0..20 {
        let first = Request::get("/").send(envoy.port);
        let set_cookie = first
            .header("set-cookie")
            .expect("no Set-Cookie on a request without the cookie");
        assert!(
            set_cookie.contains("; Path=/; Max-Age=2592000; HttpOnly; SameSite=Lax"),
            "{set_cookie}"
        );
        let cookie = set_cookie.split(';').next().unwrap().to_string();
        for _ in 0..5 {
            let again = Request::get("/").header("cookie", &cookie).send(envoy.port);
            assert_eq!(again.served_by(), first.served_by(), "cookie {cookie}");
            assert_eq!(
                again.header("set-cookie"),
                None,
                "a cookie was minted again"
            );
        }
    }
}
