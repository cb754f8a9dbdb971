//! The HTTP filter over HTTP/2: a real h2c client (tests/common/h2_client.py, PyPI `h2`) sends
//! every request as a stream of one connection to Envoy (upstreams stay HTTP/1.1). The split is
//! per stream, not per connection; overrides and sticky keys are read from HTTP/2 headers; a
//! client-sent route header never wins.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::backend::Backend;
use common::envoy::{Envoy, FrontProxy, ROUTE_HEADER};
use common::repo_root;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::{Command, Stdio};

/// Request headers of one stream.
fn stream(authority: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = [
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", authority),
        (":path", "/"),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    headers.sort_by_key(|(k, _)| !k.starts_with(':'));
    headers
}

/// Sends every request as a stream of one h2c connection; the `x-served-by` of each answer.
fn h2_served_by(envoy: &Envoy, requests: &[Vec<(String, String)>]) -> Vec<String> {
    let mut child = Command::new(repo_root().join(".venv/bin/python"))
        .arg(repo_root().join("tests/common/h2_client.py"))
        .arg(envoy.port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let body = serde_json::to_vec(requests).unwrap();
        child.stdin.take().unwrap().write_all(&body).unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "h2_client.py (pip install h2: `make envoy`): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let responses: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    responses
        .iter()
        .map(|r| {
            assert_eq!(r[":status"], "200", "{r}");
            r["x-served-by"].as_str().unwrap_or("").to_string()
        })
        .collect()
}

fn counts(served: &[String]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for s in served {
        *counts.entry(s.clone()).or_insert(0) += 1;
    }
    counts
}

fn route(backends: Value, extra: Value) -> Value {
    let mut route = json!({"name": "httpbin", "hosts": ["httpbin"], "backends": backends});
    if let (Some(route), Some(extra)) = (route.as_object_mut(), extra.as_object()) {
        route.extend(extra.clone());
    }
    json!({ "routes": [route] })
}

fn weights(v1: u32, v2: u32) -> Value {
    json!([{"cluster": "v1", "weight": v1}, {"cluster": "v2", "weight": v2}])
}

#[test]
fn streams_of_one_connection_split_by_weight() {
    let [v1, v2] = Backend::start_each(["v1", "v2"]);
    let envoy = FrontProxy::new(
        &route(weights(80, 20), json!({})),
        &[("v1", v1.port), ("v2", v2.port)],
    )
    .start();
    let requests = vec![stream("httpbin", &[]); 2000];
    let counts = counts(&h2_served_by(&envoy, &requests));
    common::assert_split("v1", &counts, "v1", 0.8);
    common::assert_split("v2", &counts, "v2", 0.2);
    // One HTTP/2 connection carried them all: the split is per stream.
    assert_eq!(envoy.stat("http.front.downstream_cx_http2_total"), 1);
    assert_eq!(envoy.stat("http.front.downstream_rq_http2_total"), 2000);
    eprintln!("2,000 streams on one h2c connection: {counts:?}");
}

#[test]
fn overrides_and_sticky_keys_come_from_http2_headers() {
    let [v1, v2] = Backend::start_each(["v1", "v2"]);
    let config = route(
        weights(50, 50),
        json!({"overrides": [{"header": "x-canary", "value": "always", "backend": "v2"}],
               "sticky": {"header": "x-user-id"}}),
    );
    let envoy = FrontProxy::new(&config, &[("v1", v1.port), ("v2", v2.port)]).start();
    let forced = vec![stream("httpbin", &[("x-canary", "always"), ("x-user-id", "u1")]); 100];
    assert!(h2_served_by(&envoy, &forced).iter().all(|s| s == "v2"));
    // 100 users, 3 streams each, interleaved on one connection: each user on one backend.
    let users: Vec<String> = (0..100).map(|i| format!("user-{i}")).collect();
    let requests: Vec<_> = (0..3)
        .flat_map(|_| users.iter().map(|u| stream("httpbin", &[("x-user-id", u)])))
        .collect();
    let served = h2_served_by(&envoy, &requests);
    for (i, user) in users.iter().enumerate() {
        let mine: Vec<&String> = (0..3).map(|round| &served[round * 100 + i]).collect();
        assert!(mine.iter().all(|s| *s == mine[0]), "{user}: {mine:?}");
    }
    let v2_users = served[..100].iter().filter(|s| *s == "v2").count();
    assert!(
        (25..=75).contains(&v2_users),
        "{v2_users}/100 users on v2 at 50 %"
    );
}

#[test]
fn client_sent_route_header_never_wins_over_http2() {
    let [v1, v2, secret] = Backend::start_each(["v1", "v2", "secret"]);
    let envoy = FrontProxy::new(
        &route(weights(100, 0), json!({})),
        &[("v1", v1.port), ("v2", v2.port), ("secret", secret.port)],
    )
    .start();
    let mut requests = Vec::new();
    for authority in ["httpbin", "unmatched.example"] {
        for value in ["secret", "v2"] {
            requests.extend(vec![stream(authority, &[(ROUTE_HEADER, value)]); 20]);
        }
    }
    let served = h2_served_by(&envoy, &requests);
    assert!(served.iter().all(|s| s == "v1"), "{:?}", counts(&served));
    assert_eq!(secret.count(), 0);
    assert!(v1.requests().iter().all(|r| {
        r.header_count(ROUTE_HEADER) == 0 || r.header(ROUTE_HEADER).as_deref() == Some("v1")
    }));
}
