//! The worker's logic on the in-memory proxy: the outbox and its cap, the tick, and the
//! comparison's life in every order its answers can arrive.

use super::*;
use crate::compare::answers::{PrimaryAnswer, ShadowAnswer, UPSTREAM_TIME_HEADER};
use crate::config::Config;
use crate::metrics::MirrorOutcome;
use crate::metrics::{compare_counter, mirror_counter};
use crate::mirror::outbox::{IDLE_TICKS_BEFORE_STOP, OUTBOX_TICK};
use crate::mirror::Skip;
use crate::proxy::double::{FakeHeaders, FakeProxy};
use crate::random::Rng;
use serde_json::{json, Value};
use std::time::Duration;

const NOW: u64 = 1_800_000_000_000;

fn new_worker(proxy: &FakeProxy, cap: usize, mirror: Value) -> Worker {
    let config = json!({"max_shadows_in_flight": cap, "routes": [{"name": "r",
        "backends": [{"cluster": "a"}], "mirrors": [mirror]}]});
    let config = Config::from_json(config.to_string().as_bytes()).unwrap();
    Worker::new(proxy, config, Rng::from_seed(1))
}

fn compared(baseline: bool) -> Value {
    let mut compare = json!({"body": "json", "headers": ["content-type"]});
    if baseline {
        compare["baseline"] = json!("base");
    }
    json!({"cluster": "shadow", "timeout_ms": 500, "compare": compare})
}

/// A request with `body` for mirror 0 of route 0: its copy handed to the worker.
fn request(proxy: &FakeProxy, worker: &Worker, body: &[u8]) -> Option<PrimaryAnswer> {
    let length = body.len().to_string();
    let headers: Vec<(&[u8], &[u8])> = vec![
        (b":method", b"POST"),
        (b":path", b"/orders?id=1"),
        (b":authority", b"api"),
        (b"content-length", length.as_bytes()),
    ];
    let mut copy = MirrorCopy::new(worker, 0, vec![0], headers).unwrap();
    copy.body.push(body);
    let mut primary = None;
    worker.finish_copy(proxy, copy, Vec::new(), &mut primary);
    primary
}

fn mirror_stat(proxy: &FakeProxy, outcome: MirrorOutcome) -> i64 {
    proxy
        .stat(&mirror_counter("r", "shadow", outcome))
        .unwrap_or(0)
}

fn result_stat(proxy: &FakeProxy, result: &str) -> i64 {
    proxy
        .stat(&compare_counter("r", "shadow", result))
        .unwrap_or(0)
}

/// An answer as the proxy hands it over.
struct Answered {
    status: &'static str,
    body: &'static str,
}

impl ShadowAnswer for Answered {
    fn sizes(&self) -> (usize, usize, usize) {
        (3, self.body.len(), 0)
    }

    fn header(&self, name: &str) -> Option<String> {
        match name {
            ":status" => Some(self.status.to_string()),
            "content-type" => Some("application/json".to_string()),
            UPSTREAM_TIME_HEADER => Some("3".to_string()),
            _ => None,
        }
    }

    fn trailer(&self, _name: &str) -> Option<String> {
        None
    }

    fn body(&self, size: usize) -> Option<Vec<u8>> {
        Some(self.body.as_bytes()[..size].to_vec())
    }
}

/// No answer at all (reset, refused, timed out in the proxy).
struct NoAnswer;

impl ShadowAnswer for NoAnswer {
    fn sizes(&self) -> (usize, usize, usize) {
        (0, 0, 0)
    }
    fn header(&self, _name: &str) -> Option<String> {
        None
    }
    fn trailer(&self, _name: &str) -> Option<String> {
        None
    }
    fn body(&self, _size: usize) -> Option<Vec<u8>> {
        None
    }
}

/// The primary's answer streaming past, complete.
fn primary_answers(primary: &mut PrimaryAnswer, body: &str) {
    let header = |name: &str| match name {
        ":status" => Some("200".to_string()),
        "content-type" => Some("application/json".to_string()),
        _ => None,
    };
    primary.headers(header, false);
    primary.body_chunk(body.len(), true, |size| {
        Some(body.as_bytes()[..size].to_vec())
    });
}

fn token_for(proxy: &FakeProxy, cluster: &str) -> u32 {
    let calls = proxy.dispatched();
    calls.iter().find(|c| c.cluster == cluster).unwrap().token
}

#[test]
fn outbox_never_exceeds_the_cap_and_counts_the_skipped() {
    let proxy = FakeProxy::new(NOW);
    let worker = new_worker(&proxy, 3, json!({"cluster": "shadow", "timeout_ms": 500}));
    for _ in 0..5 {
        assert!(request(&proxy, &worker, b"{}").is_none());
    }
    assert_eq!(
        worker.outbox.queued(),
        3,
        "queued shadows count against the cap"
    );
    assert_eq!(
        mirror_stat(&proxy, MirrorOutcome::Skipped(Skip::InFlightCap)),
        2
    );
    worker.tick(&proxy);
    assert_eq!(proxy.dispatched().len(), 3);
    assert_eq!(worker.outbox.in_flight(), 3);
    assert_eq!(mirror_stat(&proxy, MirrorOutcome::Mirrored), 3);
    assert_eq!(proxy.stat(crate::metrics::SHADOWS_IN_FLIGHT), Some(3));
    // In flight counts too: nothing more until one finishes.
    request(&proxy, &worker, b"{}");
    assert_eq!(
        mirror_stat(&proxy, MirrorOutcome::Skipped(Skip::InFlightCap)),
        3
    );
    let first = proxy.dispatched()[0].token;
    worker.shadow_answered(&proxy, first, &NoAnswer);
    assert_eq!(worker.outbox.in_flight(), 2);
    request(&proxy, &worker, b"{}");
    assert_eq!(worker.outbox.queued(), 1);
    worker.tick(&proxy);
    assert_eq!(worker.outbox.in_flight(), 3);
    // Past their timeout the proxy has given up on them: the slots are free again.
    proxy.advance(500);
    worker.tick(&proxy);
    assert_eq!(worker.outbox.in_flight(), 0);
    assert_eq!(proxy.stat(crate::metrics::SHADOWS_IN_FLIGHT), Some(0));
}

#[test]
fn outbox_stays_under_the_cap_whatever_the_order_of_events() {
    let proxy = FakeProxy::new(NOW);
    let worker = new_worker(&proxy, 4, json!({"cluster": "shadow", "timeout_ms": 50}));
    let mut rng = Rng::from_seed(42);
    let (mut queued, mut skipped) = (0, 0);
    for _ in 0..2000 {
        match rng.below(4) {
            0 | 1 => {
                let before = mirror_stat(&proxy, MirrorOutcome::Skipped(Skip::InFlightCap));
                request(&proxy, &worker, b"{}");
                let after = mirror_stat(&proxy, MirrorOutcome::Skipped(Skip::InFlightCap));
                if after > before {
                    skipped += 1;
                } else {
                    queued += 1;
                }
            }
            2 => worker.tick(&proxy),
            _ => {
                if let Some(call) = proxy.dispatched().last() {
                    worker.shadow_answered(&proxy, call.token, &NoAnswer);
                }
            }
        }
        proxy.advance(rng.below(5));
        assert!(worker.outbox.in_flight() + worker.outbox.queued() <= 4);
    }
    assert!(
        queued > 100 && skipped > 100,
        "{queued} queued, {skipped} skipped"
    );
    assert_eq!(
        mirror_stat(&proxy, MirrorOutcome::Skipped(Skip::InFlightCap)),
        skipped
    );
}

#[test]
fn tick_runs_while_there_is_work_and_stops_after_a_second_idle() {
    let proxy = FakeProxy::new(NOW);
    let worker = new_worker(&proxy, 10, json!({"cluster": "shadow"}));
    assert_eq!(proxy.tick(), None, "no tick before the first shadow");
    request(&proxy, &worker, b"");
    request(&proxy, &worker, b"");
    assert_eq!(proxy.tick(), Some(OUTBOX_TICK));
    assert_eq!(proxy.tick_sets(), 1, "armed once, not per shadow");
    worker.tick(&proxy);
    assert_eq!(proxy.dispatched().len(), 2);
    for _ in 0..IDLE_TICKS_BEFORE_STOP - 1 {
        worker.tick(&proxy);
    }
    assert_eq!(proxy.tick(), Some(OUTBOX_TICK));
    worker.tick(&proxy);
    assert_eq!(proxy.tick(), Some(Duration::ZERO));
    request(&proxy, &worker, b"");
    assert_eq!(proxy.tick(), Some(OUTBOX_TICK));
}

#[test]
fn refused_tick_or_dispatch_is_counted_as_dispatch_failed() {
    let proxy = FakeProxy::new(NOW);
    let worker = new_worker(&proxy, 10, json!({"cluster": "shadow"}));
    proxy.refuse_tick.set(true);
    request(&proxy, &worker, b"");
    assert_eq!(worker.outbox.queued(), 0);
    proxy.refuse_tick.set(false);
    request(&proxy, &worker, b"");
    proxy.refuse_dispatch.set(true);
    worker.tick(&proxy);
    assert_eq!(mirror_stat(&proxy, MirrorOutcome::DispatchFailed), 2);
    assert_eq!(worker.outbox.in_flight(), 0);
}

/// Every order the three answers of a comparison can arrive in, and a copy that never
/// answers: the right result, counted once, and nothing left behind.
#[test]
fn comparison_ends_right_in_every_order_and_leaves_nothing_pending() {
    // (baseline?, shadow body, order of: p = primary, c = candidate, b = baseline, result)
    let cases = [
        (false, r#"{"a":1}"#, "pc", "same"),
        (false, r#"{"a":1}"#, "cp", "same"),
        (false, r#"{"a":2}"#, "pc", "differ"),
        (false, r#"{"a":2}"#, "cp", "differ"),
        (true, r#"{"a":2}"#, "pcb", "differ"),
        (true, r#"{"a":2}"#, "cpb", "differ"),
        (true, r#"{"a":2}"#, "bcp", "differ"),
        (true, r#"{"a":2}"#, "cbp", "differ"),
        (false, r#"{"a":1}"#, "p", "shadow_failed"),
        (true, r#"{"a":1}"#, "pc", "baseline_failed"),
        (false, r#"{"a":1}"#, "c", "primary_incomplete"),
    ];
    for (baseline, shadow_body, order, result) in cases {
        let proxy = FakeProxy::new(NOW);
        let worker = new_worker(&proxy, 10, compared(baseline));
        let mut primary = request(&proxy, &worker, b"{}").expect("comparison opened");
        worker.tick(&proxy);
        let candidate = token_for(&proxy, "shadow");
        let base = baseline.then(|| token_for(&proxy, "base"));
        primary_answers(&mut primary, r#"{"a":1}"#);
        for step in order.chars() {
            assert_eq!(result_stat(&proxy, result), 0, "{order}: reported early");
            match step {
                'p' => worker.primary_done(&proxy, &primary),
                'c' => {
                    let answer = Answered {
                        status: "200",
                        body: shadow_body,
                    };
                    worker.shadow_answered(&proxy, candidate, &answer);
                }
                'b' => {
                    // The baseline runs the primary's version: the shadow's difference is its own.
                    let answer = Answered {
                        status: "200",
                        body: r#"{"a":1}"#,
                    };
                    worker.shadow_answered(&proxy, base.unwrap(), &answer);
                }
                _ => unreachable!(),
            }
        }
        if order.len() < 2 + usize::from(baseline) {
            // A missing answer: given up at the deadline (timeout + the primary's grace).
            proxy.advance(500 + 30_000);
            worker.tick(&proxy);
        }
        assert_eq!(
            result_stat(&proxy, result),
            1,
            "{order} with baseline {baseline}"
        );
        let pending = worker.comparisons.pending.borrow();
        assert!(pending.is_empty(), "{order}: left pending");
        assert!(!pending.is_compared(candidate));
        assert!(base.map_or(true, |t| !pending.is_compared(t)));
        assert_eq!(worker.outbox.in_flight(), 0, "{order}: a slot left taken");
    }
}

#[test]
fn primary_body_is_buffered_only_for_a_comparison_that_opened() {
    let proxy = FakeProxy::new(NOW);
    // Cap 1: the pending table holds one comparison.
    let worker = new_worker(&proxy, 1, compared(false));
    let first = request(&proxy, &worker, b"{}").expect("opened");
    assert!(first.buffers_body());
    assert!(
        request(&proxy, &worker, b"{}").is_none(),
        "table full: nothing kept"
    );
    assert_eq!(
        mirror_stat(&proxy, MirrorOutcome::Skipped(Skip::InFlightCap)),
        1
    );
    // A body over the mirror's max_body_bytes: no copy, no comparison, nothing kept.
    let proxy = FakeProxy::new(NOW);
    let mut mirror = compared(false);
    mirror["max_body_bytes"] = json!(4);
    let worker = new_worker(&proxy, 10, mirror);
    assert!(request(&proxy, &worker, b"{\"a\": 1}").is_none());
    assert_eq!(
        mirror_stat(&proxy, MirrorOutcome::Skipped(Skip::BodyTooLarge)),
        1
    );
    assert!(worker.comparisons.pending.borrow().is_empty());
    // A copy the outbox refuses: the comparison is dropped, nothing kept.
    proxy.refuse_tick.set(true);
    assert!(request(&proxy, &worker, b"{}").is_none());
    assert!(worker.comparisons.pending.borrow().is_empty());
}

#[test]
fn comparison_without_body_keeps_no_body() {
    let proxy = FakeProxy::new(NOW);
    let mirror = json!({"cluster": "shadow", "compare": {"headers": ["content-type"]}});
    let worker = new_worker(&proxy, 10, mirror);
    let primary = request(&proxy, &worker, b"{}").expect("opened");
    assert!(!primary.buffers_body());
}

fn routes(proxy: &FakeProxy, config: Value) -> Worker {
    let config = Config::from_json(config.to_string().as_bytes()).unwrap();
    Worker::new(proxy, config, Rng::from_seed(3))
}

#[test]
fn route_header_is_always_the_filters_choice() {
    let proxy = FakeProxy::new(NOW);
    let worker = routes(
        &proxy,
        json!({"routes": [{"name": "r", "hosts": ["api"],
        "backends": [{"cluster": "a", "weight": 1}, {"cluster": "b", "weight": 0}]}]}),
    );
    let request = FakeHeaders::new(&[(":authority", "api"), ("x-split-cluster", "b")]);
    let routed = worker.route_request(&proxy, &request).unwrap();
    assert_eq!((routed.route, routed.backend), (0, 0));
    assert_eq!(request.get("x-split-cluster").as_deref(), Some("a"));
    // No route: the client's header is removed.
    let request = FakeHeaders::new(&[(":authority", "other"), ("x-split-cluster", "b")]);
    assert!(worker.route_request(&proxy, &request).is_none());
    assert_eq!(request.get("x-split-cluster"), None);
    assert_eq!(proxy.stat(crate::metrics::UNMATCHED), Some(1));
}

#[test]
fn mirror_sent_by_envoy_gets_its_header_set_or_removed() {
    let proxy = FakeProxy::new(NOW);
    let worker = routes(
        &proxy,
        json!({"routes": [{"name": "r", "backends": [{"cluster": "a"}],
        "mirrors": [
            {"cluster": "in", "cluster_header": "x-mirror-in", "percent": 100},
            {"cluster": "out", "cluster_header": "x-mirror-out", "percent": 0}]}]}),
    );
    let request = FakeHeaders::new(&[(":authority", "api"), ("x-mirror-out", "out")]);
    let route = &worker.config.routes[0];
    assert!(worker.start_mirror(&proxy, &request, (0, route)).is_none());
    assert_eq!(request.get("x-mirror-in").as_deref(), Some("in"));
    assert_eq!(
        request.get("x-mirror-out"),
        None,
        "a client cannot ask for a copy"
    );
    assert_eq!(
        request.reads.get(),
        0,
        "no header read without a method filter"
    );
}

#[test]
fn copy_starts_with_the_requests_headers_and_a_too_long_declared_body_keeps_nothing() {
    let proxy = FakeProxy::new(NOW);
    let worker = routes(
        &proxy,
        json!({"routes": [{"name": "r", "backends": [{"cluster": "a"}],
        "mirrors": [{"cluster": "shadow", "max_body_bytes": 10, "methods": ["POST"]}]}]}),
    );
    let route = &worker.config.routes[0];
    let get = FakeHeaders::new(&[(":method", "GET"), (":path", "/")]);
    assert!(worker.start_mirror(&proxy, &get, (0, route)).is_none());
    let post = FakeHeaders::new(&[
        (":method", "POST"),
        (":path", "/"),
        ("content-length", "11"),
    ]);
    let copy = worker.start_mirror(&proxy, &post, (0, route)).unwrap();
    assert_eq!(copy.mirrors, [0]);
    assert!(!copy.body.wants(1), "declared over the limit: nothing kept");
    let mut primary = None;
    worker.finish_copy(&proxy, copy, Vec::new(), &mut primary);
    assert_eq!(mirror_stat_of(&proxy, "shadow", Skip::BodyTooLarge), 1);
    assert_eq!(mirror_stat_of(&proxy, "shadow", Skip::Method), 1);
}

fn mirror_stat_of(proxy: &FakeProxy, mirror: &str, skip: Skip) -> i64 {
    let name = mirror_counter("r", mirror, MirrorOutcome::Skipped(skip));
    proxy.stat(&name).unwrap_or(0)
}

#[test]
fn response_gets_the_cookie_and_backend_name_and_a_rollout_counts_it() {
    let proxy = FakeProxy::new(NOW);
    let worker = routes(
        &proxy,
        json!({"response_header": "x-backend", "routes": [{"name": "r",
        "sticky": {"cookie": "sid", "set_cookie": true},
        "backends": [{"cluster": "a", "weight": 1}, {"cluster": "c", "weight": 0}],
        "rollout": {"canary": "c", "guard": {"max_error_rate": 0.1, "min_requests": 10, "window_s": 10}}}]}),
    );
    let request = FakeHeaders::new(&[(":path", "/")]);
    let mut routed = worker.route_request(&proxy, &request).unwrap();
    assert_eq!(routed.rollout_at, Some(NOW));
    let response = FakeHeaders::new(&[(":status", "503")]);
    worker.respond(&proxy, &response, &mut routed);
    assert_eq!(response.get("x-backend").as_deref(), Some("a"));
    let cookie = response.get("set-cookie").unwrap();
    assert!(
        cookie.starts_with("sid=") && cookie.contains("Max-Age=2592000"),
        "{cookie}"
    );
    let answers = "split_mirror_responses_total;route=r;backend=a;class=5xx";
    assert_eq!(proxy.stat(answers), Some(1));
    // Counted once per request, however often the callback runs.
    worker.respond(&proxy, &response, &mut routed);
    assert_eq!(proxy.stat(answers), Some(1));
    assert_eq!(response.all("set-cookie").len(), 1);
}
