//! Progressive delivery in a real Envoy: steps follow the wall clock, the guard aborts a failing
//! canary (and only a failing one), the abort holds on every worker and across a
//! reconfiguration that keeps the rollout, and sticky cohorts stay monotone through the steps.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::backend::{Backend, Behavior};
use common::client::{Connection, Request};
use common::envoy::{Envoy, FrontProxy};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// `offset_s` seconds from now as RFC 3339 (UTC, milliseconds).
fn rfc3339_in(offset_ms: i64) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let ms = now.as_millis() as i64 + offset_ms;
    let (days, ms_of_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Civil date from days since the epoch (Howard Hinnant's civil_from_days).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000
    )
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn sleep_until(at_ms: i64) {
    let wait = at_ms - now_ms();
    if wait > 0 {
        std::thread::sleep(Duration::from_millis(wait as u64));
    }
}

fn route(name: &str, backends: Value, rollout: Value) -> Value {
    json!({"name": name, "hosts": [name], "backends": backends, "rollout": rollout})
}

fn stable_and_canary() -> Value {
    json!([{"cluster": "stable", "weight": 100}, {"cluster": "canary", "weight": 0}])
}

/// A rollout metric of the filter; each one these tests read must exist (a rollout route's
/// gauges are published with its configuration), so a missing one fails rather than reads 0.
fn wasm_stat(envoy: &Envoy, name: &str) -> u64 {
    envoy.stat_required(&format!("wasmcustom.{name}"))
}

/// `n` requests to host `host` from `threads` client threads (many connections), counted by
/// the backend that answered.
fn spread(envoy: &Envoy, request: &Request, n: usize, threads: usize) -> BTreeMap<String, usize> {
    let port = envoy.port;
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let request = request.clone();
            let count = n / threads + usize::from(t < n % threads);
            std::thread::spawn(move || {
                let mut counts = BTreeMap::new();
                for _ in 0..count {
                    let served = request.send(port).served_by();
                    *counts.entry(served).or_insert(0) += 1;
                }
                counts
            })
        })
        .collect();
    let mut counts = BTreeMap::new();
    for worker in workers {
        for (backend, count) in worker.join().unwrap() {
            *counts.entry(backend).or_insert(0) += count;
        }
    }
    counts
}

fn share(counts: &BTreeMap<String, usize>, backend: &str) -> f64 {
    counts.get(backend).copied().unwrap_or(0) as f64 / counts.values().sum::<usize>() as f64
}

/// Four standard deviations of a share `p` over `n` draws.
fn four_sigma(p: f64, n: usize) -> f64 {
    4.0 * (p * (1.0 - p) / n as f64).sqrt()
}

#[test]
fn steps_follow_the_clock() {
    let [stable, canary] = Backend::start_each(["stable", "canary"]);
    let clusters = [("stable", stable.port), ("canary", canary.port)];
    // Envoy starts in about a second (more on a busy machine); the boundary route's step 1
    // begins 5 s from now.
    let boundary_start_ms = now_ms() + 5000;
    let config = json!({"routes": [
        // Started 100 s ago: step 1 (10 %, 30 s) is over, step 2 (40 %, 1000 s) applies.
        route("past", stable_and_canary(), json!({"canary": "canary", "start": rfc3339_in(-100_000),
            "steps": [{"weight": 10, "hold_s": 30}, {"weight": 40, "hold_s": 1000}, {"weight": 80}]})),
        // 50 % for 3 s, then 100 %.
        route("boundary", stable_and_canary(), json!({"canary": "canary",
            "start": rfc3339_in(boundary_start_ms - now_ms()),
            "steps": [{"weight": 50, "hold_s": 3}, {"weight": 100}]})),
        // Step 1 has no hold: 10 s after start it still applies, as it would forever.
        route("paused", stable_and_canary(), json!({"canary": "canary", "start": rfc3339_in(-10_000),
            "steps": [{"weight": 0}, {"weight": 100, "hold_s": 1}]})),
    ]});
    let envoy = FrontProxy::new(&config, &clusters).start();

    // Both sides of the boundary at start + 3 s (±300 ms for the clocks and the request).
    let boundary = boundary_start_ms + 3000;
    let mut before = BTreeMap::new();
    let mut after = BTreeMap::new();
    sleep_until(boundary_start_ms + 300);
    while now_ms() < boundary + 2000 {
        let sent = now_ms();
        let served = Request::get("/")
            .host("boundary")
            .send(envoy.port)
            .served_by();
        let answered = now_ms();
        let side = if answered < boundary - 300 {
            &mut before
        } else if sent > boundary + 300 {
            &mut after
        } else {
            continue;
        };
        *side.entry(served).or_insert(0) += 1;
    }
    let before_total: usize = before.values().sum();
    let before_share = share(&before, "canary");
    assert!(
        before_total >= 100 && (before_share - 0.5).abs() <= four_sigma(0.5, before_total),
        "50 % step: {before:?}"
    );
    let after_total: usize = after.values().sum();
    assert!(
        after_total >= 100 && !after.contains_key("stable"),
        "100 % step: {after:?}"
    );
    let past = spread(&envoy, &Request::get("/").host("past"), 1600, 4);
    let observed = share(&past, "canary");
    assert!(
        (observed - 0.40).abs() <= common::SHARE_TOLERANCE,
        "step 2 of `past`: canary share {observed:.3} over 1600, expected 0.40 ({past:?})"
    );
    assert_eq!(wasm_stat(&envoy, "split_mirror_rollout_step;route=past"), 2);
    assert_eq!(
        wasm_stat(&envoy, "split_mirror_rollout_canary_weight;route=past"),
        4000
    );

    let paused = spread(&envoy, &Request::get("/").host("paused"), 200, 4);
    assert_eq!(
        paused.get("canary"),
        None,
        "a step without hold_s ended: {paused:?}"
    );

    eprintln!("past: {past:?}; boundary before {before:?}, after {after:?}");
}

fn guard(min_requests: u64) -> Value {
    json!({"max_error_rate": 0.05, "min_requests": min_requests, "window_s": 30})
}

/// A canary at 50 % since 10 s ago, guarded, with an override header that reaches it.
fn guarded_route(name: &str, min_requests: u64, start_offset_ms: i64) -> Value {
    let mut route = route(
        name,
        stable_and_canary(),
        json!({"canary": "canary", "start": rfc3339_in(start_offset_ms),
            "steps": [{"weight": 50}], "guard": guard(min_requests)}),
    );
    route["overrides"] = json!([{"header": "x-canary", "value": "yes", "backend": "canary"}]);
    route
}

#[test]
fn failing_canary_aborts_and_overrides_still_reach_it() {
    let stable = Backend::start("stable");
    let canary = Backend::start_with("canary", Behavior::failing());
    let clusters = [("stable", stable.port), ("canary", canary.port)];
    let config = json!({"routes": [guarded_route("demo", 20, -10_000)]});
    let envoy = FrontProxy::new(&config, &clusters).start();

    // One request at a time: the 20th canary answer aborts.
    let request = Request::get("/").host("demo");
    for _ in 0..300 {
        request.send(envoy.port);
    }
    let at_abort = canary.count();
    assert!(
        at_abort <= 20,
        "canary got {at_abort} requests; the guard needs 20"
    );
    assert!(envoy.wait_for_log("rollout aborted"), "no abort logged");
    let log = envoy.log();
    let line = log.lines().find(|l| l.contains("rollout aborted")).unwrap();
    for part in [
        "route \"demo\"",
        "canary \"canary\"",
        "20 of 20 requests (100.0 %)",
        "last 30 s",
        "max_error_rate 0.05",
    ] {
        assert!(line.contains(part), "`{part}` missing from: {line}");
    }
    let after = spread(&envoy, &request, 400, 4);
    assert_eq!(after.get("canary"), None, "after the abort: {after:?}");
    assert_eq!(canary.count(), at_abort);

    let response = Request::get("/")
        .host("demo")
        .header("x-canary", "yes")
        .send(envoy.port);
    assert_eq!(response.served_by(), "canary");
    assert_eq!(response.status, 500);
    assert_eq!(
        wasm_stat(&envoy, "split_mirror_rollout_aborted;route=demo"),
        1
    );
    assert_eq!(
        wasm_stat(&envoy, "split_mirror_rollout_canary_weight;route=demo"),
        0
    );
    assert_eq!(
        wasm_stat(
            &envoy,
            "split_mirror_responses_total;route=demo;backend=canary;class=5xx"
        ),
        at_abort as u64 + 1
    );
    assert!(
        wasm_stat(
            &envoy,
            "split_mirror_responses_total;route=demo;backend=stable;class=2xx"
        ) >= 400
    );
}

#[test]
fn guard_does_not_abort_without_evidence_against_the_canary() {
    let stable_ten = Backend::start_with("stable", Behavior::failing_at_random(0.1, 11));
    let canary_clean = Backend::start("canary");
    let stable_twenty = Backend::start_with("stable", Behavior::failing_at_random(0.2, 12));
    let canary_twenty = Backend::start_with("canary", Behavior::failing_at_random(0.2, 13));
    let stable_few = Backend::start("stable");
    let canary_few = Backend::start_with("canary", Behavior::failing());
    let clusters = [
        ("stable-ten", stable_ten.port),
        ("canary-clean", canary_clean.port),
        ("stable-twenty", stable_twenty.port),
        ("canary-twenty", canary_twenty.port),
        ("stable-few", stable_few.port),
        ("canary-few", canary_few.port),
    ];
    let pair = |stable: &str, canary: &str| json!([{"cluster": stable, "weight": 50}, {"cluster": canary, "weight": 50}]);
    let guard_only =
        |canary: &str, min_requests: u64| json!({"canary": canary, "guard": guard(min_requests)});
    let config = json!({"routes": [
        route("stable-fails", pair("stable-ten", "canary-clean"), guard_only("canary-clean", 20)),
        route("both-fail", pair("stable-twenty", "canary-twenty"), guard_only("canary-twenty", 20)),
        route("few", pair("stable-few", "canary-few"), guard_only("canary-few", 400)),
    ]});
    let envoy = FrontProxy::new(&config, &clusters).start();
    for host in ["stable-fails", "both-fail", "few"] {
        let counts = spread(&envoy, &Request::get("/").host(host), 600, 3);
        let served_canary: usize = counts
            .iter()
            .filter(|(b, _)| b.starts_with("canary"))
            .map(|(_, c)| c)
            .sum();
        // Still 50 %: nothing aborted.
        assert!(
            (served_canary as f64 / 600.0 - 0.5).abs() <= four_sigma(0.5, 600),
            "{host}: {counts:?}"
        );
        assert_eq!(
            wasm_stat(
                &envoy,
                &format!("split_mirror_rollout_aborted;route={host}")
            ),
            0,
            "{host} aborted"
        );
    }
    assert!(canary_few.count() < 400);
    assert!(!envoy.log().contains("rollout aborted"));
}

/// The worker that holds each listener connection now: `worker_N.downstream_cx_active` per
/// worker of the front listener.
fn active_connections_by_worker(envoy: &Envoy, workers: u32) -> Vec<u64> {
    let listener = format!("listener.127.0.0.1_{}", envoy.port);
    (0..workers)
        .map(|w| envoy.stat_required(&format!("{listener}.worker_{w}.downstream_cx_active")))
        .collect()
}

/// Waits (at most 5 s) until the two workers hold `total` connections; the count per worker.
fn wait_for_connections(envoy: &Envoy, total: u64) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let active = active_connections_by_worker(envoy, 2);
        if active.iter().sum::<u64>() >= total || Instant::now() > deadline {
            return active;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The response header naming the backend the filter chose (`response_header`): what the
/// guard counts, even for an answer Envoy made itself (a local 503 names no server).
const CHOSEN: &str = "x-chosen";

/// Sends `request` on `connection` until the filter chose the canary `canary_answers` times
/// (at most `limit` requests) or `stop()` holds; the answers by chosen backend.
fn send_on(
    connection: &mut Connection,
    request: &Request,
    canary_answers: usize,
    limit: usize,
    stop: impl Fn() -> bool,
) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for _ in 0..limit {
        let chosen = connection.send(request).header(CHOSEN);
        *counts
            .entry(chosen.unwrap_or_else(|| "-".into()))
            .or_insert(0) += 1;
        if counts.get("canary").copied().unwrap_or(0) >= canary_answers || stop() {
            break;
        }
    }
    counts
}

/// Proves the shared-data propagation: worker A alone sees enough canary failures to abort;
/// worker B saw fewer than `min_requests` canary answers, so its own guard cannot abort, and
/// it still stops sending to the canary once it read A's abort on its tick. Were propagation
/// broken, B would keep its 50 % to the canary and, 15 failures later, abort on its own: a
/// second "rollout aborted" line.
///
/// Steering: Envoy with 2 workers, one listen socket and exact connection balance (each new
/// connection goes to the worker with the fewest). Connection A is opened and used first, so
/// it holds one worker; B, opened while A is held, goes to the other. Both are kept alive, so
/// each request stays on its connection's worker; the per-worker listener stats confirm it.
#[test]
fn abort_holds_on_every_worker() {
    const MIN_REQUESTS: usize = 20;
    const B_CANARY_ANSWERS: usize = 5;
    let stable = Backend::start("stable");
    let canary = Backend::start_with("canary", Behavior::failing());
    let clusters = [("stable", stable.port), ("canary", canary.port)];
    let config = json!({"response_header": CHOSEN,
        "routes": [guarded_route("demo", MIN_REQUESTS as u64, -10_000)]});
    let envoy = FrontProxy::new(&config, &clusters)
        .concurrency(2)
        .exact_balance()
        .start();
    let request = Request::get("/").host("demo");

    // No request before the counting starts: every canary answer of each worker is counted.
    let mut a = Connection::open(envoy.port);
    let after_a = wait_for_connections(&envoy, 1);
    let mut b = Connection::open(envoy.port);
    let after_b = wait_for_connections(&envoy, 2);
    assert_eq!(after_a.iter().sum::<u64>(), 1, "A: {after_a:?}");
    assert_eq!(after_b, [1, 1], "A and B are not on two workers");

    // B sees a few canary answers (its guard is live), well under min_requests.
    let b_before = send_on(&mut b, &request, B_CANARY_ANSWERS, 200, || false);
    assert_eq!(
        b_before.get("canary"),
        Some(&B_CANARY_ANSWERS),
        "{b_before:?}"
    );
    // A alone drives the abort: its 20th canary answer (the log line may follow a little later).
    let a_counts = send_on(&mut a, &request, usize::MAX, 400, || {
        envoy.log().contains("rollout aborted")
    });
    assert!(
        envoy.wait_for_log("rollout aborted"),
        "no abort: A got {a_counts:?}"
    );
    assert!(
        a_counts.get("canary").copied().unwrap_or(0) >= MIN_REQUESTS,
        "A: {a_counts:?}, B: {b_before:?}"
    );

    // B reads the abort on its next one-second tick.
    std::thread::sleep(Duration::from_millis(2200));
    let canary_before = canary.count();
    let mut b_after = BTreeMap::new();
    for _ in 0..200 {
        let chosen = b.send(&request).header(CHOSEN);
        *b_after
            .entry(chosen.unwrap_or_else(|| "-".into()))
            .or_insert(0) += 1;
    }
    assert_eq!(
        b_after.get("canary"),
        None,
        "B after A's abort: {b_after:?}"
    );
    assert_eq!(canary.count(), canary_before);
    assert_eq!(
        active_connections_by_worker(&envoy, 2),
        [1, 1],
        "A and B stayed on their workers"
    );
    let aborted_lines = envoy.log().matches("rollout aborted").count();
    assert_eq!(aborted_lines, 1, "{}", envoy.log_tail(20));
    eprintln!("A: {a_counts:?}; B before: {b_before:?}, after: {b_after:?}");
}

#[test]
fn reconfiguration_keeps_the_abort_and_a_new_start_resumes() {
    let stable = Backend::start("stable");
    let canary = Backend::start_with("canary", Behavior::failing());
    let clusters = [("stable", stable.port), ("canary", canary.port)];
    let route = guarded_route("demo", 20, -10_000);
    let proxy = |route: &Value, response_header: &str| {
        let config = json!({"response_header": response_header, "routes": [route]});
        FrontProxy::new(&config, &clusters).dynamic()
    };
    let envoy = proxy(&route, "x-chosen-a").start();
    let request = Request::get("/").host("demo");
    for _ in 0..200 {
        request.send(envoy.port);
    }
    assert!(envoy.wait_for_log("rollout aborted"), "no abort logged");

    // Another configuration (a different response header), the identical rollout section.
    assert!(envoy.update_filter_config(&proxy(&route, "x-chosen-b")));
    let before = canary.count();
    let after = spread(&envoy, &request, 300, 3);
    assert_eq!(after.get("canary"), None, "abort lost: {after:?}");
    assert_eq!(canary.count(), before);
    assert!(envoy.wait_for_log("rollout stays aborted"));

    // A new `start`: a different rollout, which ramps again and is judged afresh.
    let resumed = guarded_route("demo", 20, -5_000);
    assert!(envoy.update_filter_config(&proxy(&resumed, "x-chosen-b")));
    // 19 requests: the new rollout cannot abort again (it needs 20 canary answers).
    let counts = spread(&envoy, &request, 19, 1);
    let to_canary = counts.get("canary").copied().unwrap_or(0);
    assert!(to_canary >= 1, "the ramp did not resume: {counts:?}");
    assert_eq!(
        wasm_stat(&envoy, "split_mirror_rollout_aborted;route=demo"),
        0
    );
}

#[test]
fn sticky_cohorts_are_monotone_through_steps_and_return_after_abort() {
    let [stable_a, stable_b] = Backend::start_each(["stable-a", "stable-b"]);
    let canary = Backend::start_with("canary", Behavior::failing_under("/fail"));
    let clusters = [
        ("stable-a", stable_a.port),
        ("stable-b", stable_b.port),
        ("canary", canary.port),
    ];
    // The canary first in `backends`: the filter orders it last internally.
    let backends = json!([{"cluster": "canary", "weight": 0},
        {"cluster": "stable-a", "weight": 60}, {"cluster": "stable-b", "weight": 40}]);
    let hold_ms = 8000;
    let proxy = |start_in_ms: i64| {
        let mut route = route(
            "sticky",
            backends.clone(),
            json!({"canary": "canary", "start": rfc3339_in(start_in_ms),
                "steps": [{"weight": 10, "hold_s": 8}, {"weight": 25, "hold_s": 8}, {"weight": 50}],
                "guard": {"max_error_rate": 0.5, "min_requests": 20, "window_s": 2}}),
        );
        route["sticky"] = json!({"header": "x-user"});
        route["overrides"] = json!([{"header": "x-canary", "value": "yes", "backend": "canary"}]);
        FrontProxy::new(&json!({"routes": [route]}), &clusters).dynamic()
    };
    // Before start (an hour away), then the same rollout starting in a second.
    let envoy = proxy(3_600_000).start();

    let keys: Vec<String> = (0..1000).map(|i| format!("user-{i}")).collect();
    let assign = |path: &str| -> Vec<String> {
        let chunks: Vec<Vec<String>> = keys.chunks(125).map(<[String]>::to_vec).collect();
        let port = envoy.port;
        let threads: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                let path = path.to_string();
                std::thread::spawn(move || {
                    chunk
                        .iter()
                        .map(|key| {
                            Request::get(&path)
                                .host("sticky")
                                .header("x-user", key)
                                .send(port)
                                .served_by()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    };
    let canary_share =
        |a: &[String]| a.iter().filter(|b| *b == "canary").count() as f64 / a.len() as f64;

    let before = assign("/");
    assert_eq!(canary_share(&before), 0.0);
    let start_ms = now_ms() + 1000;
    assert!(envoy.update_filter_config(&proxy(start_ms - now_ms())));
    let mut previous = before.clone();
    for (step, expected) in [(0, 0.10), (1, 0.25), (2, 0.50)] {
        let round_at = start_ms + step * hold_ms + 500;
        sleep_until(round_at);
        let now = assign("/");
        assert!(
            now_ms() < round_at + hold_ms - 1000,
            "step {step}: the round took too long"
        );
        for ((key, was), is) in keys.iter().zip(&previous).zip(&now) {
            assert!(
                was == is || is == "canary",
                "step {step}: {key} moved {was} -> {is}"
            );
        }
        let observed = canary_share(&now);
        assert!(
            (observed - expected).abs() <= common::SHARE_TOLERANCE,
            "step {step}: canary share {observed:.3}, expected {expected}"
        );
        previous = now;
    }
    // Abort: 25 failing override requests, each beside a request of a key a stable backend
    // holds (the guard compares the canary with the others over the same answers: without
    // theirs it would wait for 128 canary answers before judging the canary alone).
    let on_stable = keys
        .iter()
        .zip(&previous)
        .find(|(_, backend)| *backend != "canary")
        .map(|(key, _)| key.clone())
        .unwrap();
    for _ in 0..25 {
        Request::get("/fail")
            .host("sticky")
            .header("x-canary", "yes")
            .send(envoy.port);
        Request::get("/")
            .host("sticky")
            .header("x-user", &on_stable)
            .send(envoy.port);
    }
    assert!(envoy.wait_for_log("rollout aborted"), "no abort logged");
    let after = assign("/");
    assert_eq!(
        after, before,
        "after the abort keys are not back where they were"
    );
}

#[test]
fn envoy_local_replies_count_as_canary_failures() {
    let stable = Backend::start("stable");
    // Nothing listens there: Envoy answers 503 itself (connection refused).
    let clusters = [("stable", stable.port), ("canary", common::free_port())];
    let config = json!({"routes": [guarded_route("demo", 20, -10_000)]});
    let envoy = FrontProxy::new(&config, &clusters).start();
    let request = Request::get("/").host("demo");
    let mut local_replies = 0;
    for _ in 0..200 {
        let response = request.send(envoy.port);
        if response.status == 503 {
            local_replies += 1;
        }
    }
    assert!(envoy.wait_for_log("rollout aborted"), "no abort logged");
    assert!(
        (20..=25).contains(&local_replies),
        "{local_replies} local 503s before the abort"
    );
    assert_eq!(
        wasm_stat(
            &envoy,
            "split_mirror_responses_total;route=demo;backend=canary;class=5xx"
        ),
        local_replies
    );
}
