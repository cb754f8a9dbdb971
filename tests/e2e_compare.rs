//! Shadow answers compared with the primary's in a real Envoy: backends answer JSON under the
//! test's control, and the filter's `split_mirror_compare_*` counters must say exactly which
//! requests differed, where, and which differences were noise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::backend::{Backend, Behavior, Recorded, Reply};
use common::client::Request;
use common::envoy::{Envoy, FrontProxy};
use common::free_port;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn config(compare: Value, extra: Value) -> Value {
    let mut mirror = json!({"cluster": "candidate", "percent": 100, "compare": compare});
    if let Value::Object(extra) = extra {
        for (k, v) in extra {
            mirror[k] = v;
        }
    }
    json!({"routes": [{"name": "api", "backends": [{"cluster": "primary"}], "mirrors": [mirror]}]})
}

fn json_reply(status: u16, body: Value) -> Reply {
    Reply {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.to_string().into_bytes(),
        chunked: false,
    }
}

/// The item a backend answers for `/items/N`: a price, a list of parts, and whatever `extra`
/// adds (ids, timestamps).
fn item(request: &Recorded, price_delta: u64) -> Value {
    let n: u64 = request
        .path
        .rsplit('/')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    json!({"id": n, "price": 10 * n + price_delta, "parts": [{"id": n, "name": "a"}, {"id": n + 1, "name": "b"}]})
}

fn result(envoy: &Envoy, result: &str) -> u64 {
    envoy.stat(&format!(
        "wasmcustom.split_mirror_compare_total;route=api;mirror=candidate;result={result}"
    ))
}

fn part(envoy: &Envoy, part: &str) -> u64 {
    envoy.stat(&format!(
        "wasmcustom.split_mirror_compare_diff_total;route=api;mirror=candidate;part={part}"
    ))
}

fn field(envoy: &Envoy, field: &str) -> u64 {
    envoy.stat(&format!(
        "wasmcustom.split_mirror_compare_fields_total;route=api;mirror=candidate;field={field}"
    ))
}

/// Waits until `total` comparisons are counted (each result), at most 10 s.
fn wait_for_results(envoy: &Envoy, total: u64) -> u64 {
    let results = [
        "same",
        "differ",
        "noise",
        "shadow_failed",
        "baseline_failed",
        "too_large",
        "primary_incomplete",
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = envoy.stats();
        let counted: u64 = results
            .iter()
            .map(|r| {
                stats
                    .get(&format!("wasmcustom.split_mirror_compare_total;route=api;mirror=candidate;result={r}"))
                    .copied()
                    .unwrap_or(0)
            })
            .sum();
        if counted >= total || Instant::now() > deadline {
            return counted;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn send(envoy: &Envoy, path: &str) {
    let response = Request::get(path).host("api").send(envoy.port);
    assert_eq!(response.served_by(), "primary", "{path}: {response:?}");
}

#[test]
fn identical_candidate_is_the_same_and_every_copy_is_compared() {
    let primary = Backend::start_with(
        "primary",
        Behavior::replying(|r| json_reply(200, item(r, 0))),
    );
    let candidate = Backend::start_with(
        "candidate",
        Behavior::replying(|r| json_reply(200, item(r, 0))),
    );
    let envoy = FrontProxy::new(
        &config(
            json!({"headers": ["content-type"], "body": "json"}),
            json!({}),
        ),
        &[("primary", primary.port), ("candidate", candidate.port)],
    )
    .start();
    for i in 0..60 {
        send(&envoy, &format!("/items/{i}"));
    }
    assert_eq!(wait_for_results(&envoy, 60), 60);
    assert_eq!(result(&envoy, "same"), 60);
    assert_eq!(candidate.count(), 60);
}

#[test]
fn status_regressions_are_counted_exactly() {
    let primary = Backend::start_with(
        "primary",
        Behavior::replying(|r| json_reply(200, item(r, 0))),
    );
    let candidate = Backend::start_with(
        "candidate",
        Behavior::replying(|r| {
            if r.path.starts_with("/fail/") {
                json_reply(500, json!({"error": "boom"}))
            } else {
                json_reply(200, item(r, 0))
            }
        }),
    );
    let envoy = FrontProxy::new(
        &config(json!({"body": "none"}), json!({})),
        &[("primary", primary.port), ("candidate", candidate.port)],
    )
    .start();
    for i in 0..40 {
        send(&envoy, &format!("/items/{i}"));
        if i % 4 == 0 {
            send(&envoy, &format!("/fail/{i}"));
        }
    }
    assert_eq!(wait_for_results(&envoy, 50), 50);
    assert_eq!(result(&envoy, "differ"), 10);
    assert_eq!(result(&envoy, "same"), 40);
    assert_eq!(part(&envoy, "status"), 10);
    assert_eq!(part(&envoy, "body"), 0);
    assert!(
        envoy.wait_for_log("split-mirror: compare route=api mirror=candidate differ: GET /fail/"),
        "{}",
        envoy.log_tail(20)
    );
}

#[test]
fn json_fields_ignores_order_and_chunked_bodies() {
    // The candidate changes /price on every third item, shuffles key order, puts its own /ts,
    // renumbers the parts' ids (ignored by a wildcard), and streams its body in 7-byte chunks.
    let primary = Backend::start_with(
        "primary",
        Behavior::replying(|r| {
            let mut body = item(r, 0);
            body["ts"] = json!(1);
            json_reply(200, body)
        }),
    );
    let candidate = Backend::start_with(
        "candidate",
        Behavior::replying(|r| {
            let original = item(r, 0);
            let n = original["id"].as_u64().unwrap();
            let price = original["price"].as_u64().unwrap() + u64::from(n % 3 == 0);
            let text = format!(
                r#"{{"ts": 2, "parts": [{{"name": "a", "id": {}}}, {{"id": {}, "name": "b"}}], "price": {price}, "id": {n}}}"#,
                n + 100,
                n + 200
            );
            Reply {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: text.into_bytes(),
                chunked: true,
            }
        }),
    );
    let envoy = FrontProxy::new(
        &config(
            json!({"body": "json", "ignore": ["/ts", "/parts/*/id"]}),
            json!({}),
        ),
        &[("primary", primary.port), ("candidate", candidate.port)],
    )
    .start();
    for i in 1..=30 {
        send(&envoy, &format!("/items/{i}"));
    }
    assert_eq!(wait_for_results(&envoy, 30), 30);
    assert_eq!(result(&envoy, "differ"), 10);
    assert_eq!(result(&envoy, "same"), 20);
    assert_eq!(part(&envoy, "body"), 10);
    assert_eq!(field(&envoy, "/price"), 10);
    assert_eq!(field(&envoy, "/ts"), 0);
}

#[test]
fn baseline_turns_shared_differences_into_noise() {
    let counter = Arc::new(AtomicU64::new(0));
    let random_id = move |r: &Recorded, delta: u64| {
        let mut body = item(r, delta);
        body["request_id"] = json!(counter.fetch_add(1, Ordering::SeqCst));
        json_reply(200, body)
    };
    let (p, b, c) = (random_id.clone(), random_id.clone(), random_id);
    let primary = Backend::start_with("primary", Behavior::replying(move |r| p(r, 0)));
    let baseline = Backend::start_with("baseline", Behavior::replying(move |r| b(r, 0)));
    // The candidate also regresses /price on /items/1..=5.
    let candidate = Backend::start_with(
        "candidate",
        Behavior::replying(move |r| {
            let n: u64 = r
                .path
                .rsplit('/')
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            c(r, u64::from(n <= 5))
        }),
    );
    let envoy = FrontProxy::new(
        &config(json!({"body": "json", "baseline": "baseline"}), json!({})),
        &[
            ("primary", primary.port),
            ("candidate", candidate.port),
            ("baseline", baseline.port),
        ],
    )
    .start();
    for i in 1..=20 {
        send(&envoy, &format!("/items/{i}"));
    }
    assert_eq!(wait_for_results(&envoy, 20), 20);
    assert_eq!(result(&envoy, "noise"), 15);
    assert_eq!(result(&envoy, "differ"), 5);
    assert_eq!(field(&envoy, "/price"), 5);
    assert_eq!(field(&envoy, "/request_id"), 0);
    assert_eq!(baseline.count(), 20);
}

#[test]
fn listed_headers_are_compared_and_others_ignored() {
    let primary = Backend::start_with(
        "primary",
        Behavior::replying(|_| Reply {
            status: 200,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("x-version".into(), "1".into()),
            ],
            body: b"{}".to_vec(),
            chunked: false,
        }),
    );
    let candidate = Backend::start_with(
        "candidate",
        Behavior::replying(|r| Reply {
            status: 200,
            headers: vec![
                (
                    "content-type".into(),
                    if r.path == "/text" {
                        "text/plain"
                    } else {
                        "application/json"
                    }
                    .into(),
                ),
                ("x-version".into(), "2".into()),
            ],
            body: b"{}".to_vec(),
            chunked: false,
        }),
    );
    let envoy = FrontProxy::new(
        &config(json!({"headers": ["Content-Type"]}), json!({})),
        &[("primary", primary.port), ("candidate", candidate.port)],
    )
    .start();
    send(&envoy, "/json");
    send(&envoy, "/text");
    assert_eq!(wait_for_results(&envoy, 2), 2);
    assert_eq!(result(&envoy, "same"), 1);
    assert_eq!(part(&envoy, "headers"), 1);
}

#[test]
fn limits_and_failures_are_not_differences() {
    let big = vec![b'x'; 4096];
    let primary_big = big.clone();
    let primary = Backend::start_with(
        "primary",
        Behavior::replying(move |r| Reply {
            status: 200,
            headers: vec![],
            body: if r.path == "/big" {
                primary_big.clone()
            } else {
                b"ok".to_vec()
            },
            chunked: false,
        }),
    );
    let candidate = Backend::start_with(
        "candidate",
        Behavior::replying(move |r| Reply {
            status: 200,
            headers: vec![],
            body: if r.path == "/big" {
                big.clone()
            } else {
                b"ok".to_vec()
            },
            chunked: false,
        }),
    );
    let envoy = FrontProxy::new(
        &config(json!({"body": "exact", "max_body_bytes": 1024}), json!({})),
        &[("primary", primary.port), ("candidate", candidate.port)],
    )
    .start();
    send(&envoy, "/big");
    send(&envoy, "/small");
    assert_eq!(wait_for_results(&envoy, 2), 2);
    assert_eq!(result(&envoy, "too_large"), 1);
    assert_eq!(result(&envoy, "same"), 1);

    // A shadow that is down: Envoy's own 503 is a failure, not a 503 answer.
    let primary = Backend::start("primary");
    let envoy = FrontProxy::new(
        &config(json!({}), json!({})),
        &[("primary", primary.port), ("candidate", free_port())],
    )
    .start();
    for _ in 0..5 {
        send(&envoy, "/x");
    }
    assert_eq!(wait_for_results(&envoy, 5), 5);
    assert_eq!(result(&envoy, "shadow_failed"), 5);
    assert_eq!(result(&envoy, "differ"), 0);
}

#[test]
fn a_slow_shadow_fails_without_slowing_the_primary() {
    let primary = Backend::start("primary");
    let candidate =
        Backend::start_with("candidate", Behavior::delayed(Duration::from_millis(1500)));
    let envoy = FrontProxy::new(
        &config(json!({}), json!({"timeout_ms": 200})),
        &[("primary", primary.port), ("candidate", candidate.port)],
    )
    .start();
    let mut latencies = Vec::new();
    for _ in 0..10 {
        let started = Instant::now();
        send(&envoy, "/slow");
        latencies.push(started.elapsed());
    }
    latencies.sort();
    assert!(
        latencies[5] < Duration::from_millis(200),
        "primary median {:?}",
        latencies[5]
    );
    assert_eq!(wait_for_results(&envoy, 10), 10);
    assert_eq!(result(&envoy, "shadow_failed"), 10);
}

#[test]
fn stripped_headers_never_reach_the_shadow() {
    let primary = Backend::start("primary");
    let candidate = Backend::start("candidate");
    let envoy = FrontProxy::new(
        &config(
            json!({}),
            json!({"strip_headers": ["Authorization", "cookie"]}),
        ),
        &[("primary", primary.port), ("candidate", candidate.port)],
    )
    .start();
    let response = Request::get("/secret")
        .host("api")
        .header("authorization", "Bearer s3cret")
        .header("cookie", "session=1")
        .header("x-keep", "yes")
        .send(envoy.port);
    assert_eq!(response.status, 200);
    assert_eq!(candidate.wait_for(1, Duration::from_secs(5)), 1);
    let copy = &candidate.requests()[0];
    assert_eq!(copy.header("authorization"), None);
    assert_eq!(copy.header("cookie"), None);
    assert_eq!(copy.header("x-keep").as_deref(), Some("yes"));
    let original = &primary.requests()[0];
    assert_eq!(
        original.header("authorization").as_deref(),
        Some("Bearer s3cret")
    );
    assert_eq!(original.header("cookie").as_deref(), Some("session=1"));
}

#[test]
fn a_shadow_that_really_answers_503_differs() {
    let primary = Backend::start("primary");
    let candidate = Backend::start_with(
        "candidate",
        Behavior {
            status: 503,
            ..Behavior::default()
        },
    );
    let envoy = FrontProxy::new(
        &config(json!({}), json!({})),
        &[("primary", primary.port), ("candidate", candidate.port)],
    )
    .start();
    for _ in 0..3 {
        send(&envoy, "/x");
    }
    assert_eq!(wait_for_results(&envoy, 3), 3);
    assert_eq!(result(&envoy, "differ"), 3);
    assert_eq!(part(&envoy, "status"), 3);
    assert_eq!(result(&envoy, "shadow_failed"), 0);
}

#[test]
fn bodies_that_are_not_json_are_compared_exactly_in_json_mode() {
    let text = |body: &'static str| Reply {
        status: 200,
        headers: vec![("content-type".into(), "text/plain".into())],
        body: body.as_bytes().to_vec(),
        chunked: false,
    };
    let primary = Backend::start_with("primary", Behavior::replying(move |_| text("hello")));
    let candidate = Backend::start_with(
        "candidate",
        Behavior::replying(move |r| text(if r.path == "/same" { "hello" } else { "hullo" })),
    );
    let envoy = FrontProxy::new(
        &config(json!({"body": "json"}), json!({})),
        &[("primary", primary.port), ("candidate", candidate.port)],
    )
    .start();
    send(&envoy, "/same");
    send(&envoy, "/other");
    assert_eq!(wait_for_results(&envoy, 2), 2);
    assert_eq!(result(&envoy, "same"), 1);
    assert_eq!(result(&envoy, "differ"), 1);
    assert_eq!(part(&envoy, "body"), 1);
}

#[test]
fn requests_with_bodies_are_compared_and_never_fail() {
    // The copy is finished in the body callbacks, where the request headers cannot be read again.
    let echo = |r: &Recorded| json_reply(200, json!({"length": r.body.len()}));
    let primary = Backend::start_with("primary", Behavior::replying(echo));
    let candidate = Backend::start_with("candidate", Behavior::replying(echo));
    let envoy = FrontProxy::new(
        &config(json!({"body": "json"}), json!({})),
        &[("primary", primary.port), ("candidate", candidate.port)],
    )
    .start();
    for (i, chunked) in [false, true, false, true].into_iter().enumerate() {
        let response = Request::new("POST", &format!("/orders?token=secret{i}"))
            .host("api")
            .body(vec![b'x'; 1000 + i], chunked)
            .send(envoy.port);
        assert_eq!(response.status, 200, "{response:?}");
        assert_eq!(response.served_by(), "primary");
    }
    assert_eq!(wait_for_results(&envoy, 4), 4);
    assert_eq!(result(&envoy, "same"), 4);
    assert!(!envoy.log().contains("panicked"), "{}", envoy.log_tail(20));
}

#[test]
fn empty_answers_are_compared_without_reading_a_body() {
    let empty = |_: &Recorded| Reply {
        status: 204,
        ..Reply::default()
    };
    let primary = Backend::start_with("primary", Behavior::replying(empty));
    let candidate = Backend::start_with("candidate", Behavior::replying(empty));
    let envoy = FrontProxy::new(
        &config(json!({"body": "exact"}), json!({})),
        &[("primary", primary.port), ("candidate", candidate.port)],
    )
    .start();
    for _ in 0..3 {
        let response = Request::get("/empty").host("api").send(envoy.port);
        assert_eq!(response.status, 204, "{response:?}");
    }
    assert_eq!(wait_for_results(&envoy, 3), 3);
    assert_eq!(result(&envoy, "same"), 3);
    assert!(!envoy.log().contains("panicked"), "{}", envoy.log_tail(20));
}
