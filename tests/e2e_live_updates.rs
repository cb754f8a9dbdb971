//! Live configuration updates under steady load: 20 LDS updates (weight steps 0 → 100 → 0,
//! mirrors on and off, 3 invalid ones) while ~200 requests per second flow. No request fails,
//! every invalid update is refused with the filter's message, and the share follows each step.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::backend::Backend;
use common::client::Request;
use common::envoy::FrontProxy;
use common::load::Load;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// One step: the canary weight (negative = an invalid config) and whether the mirror is on.
fn steps() -> Vec<(i64, bool)> {
    let mut steps = Vec::new();
    for (i, weight) in [0, 20, 40, 60, 80, 100, 80, 60, 40, 20, 0]
        .into_iter()
        .enumerate()
    {
        steps.push((weight, i % 2 == 1));
    }
    // Three different invalid updates (Envoy would not re-run an identical refused config).
    steps.insert(3, (-1, false));
    steps.insert(8, (-2, true));
    steps.insert(12, (-3, false));
    while steps.len() < 20 {
        steps.push((50, true));
    }
    steps
}

fn config(step: (i64, bool)) -> Value {
    let (weight, mirror) = step;
    let (canary, stable) = if weight < 0 {
        (weight, 100)
    } else {
        (weight, 100 - weight)
    };
    let mirrors = if mirror {
        json!([{"cluster": "shadow", "percent": 50}])
    } else {
        json!([])
    };
    json!({"routes": [{"name": "httpbin", "backends": [
        {"cluster": "v1", "weight": stable}, {"cluster": "v2", "weight": canary}], "mirrors": mirrors}]})
}

/// Answers counted in each step's window: at a 50 % share, ±0.12 is then 4σ (0.12 / sqrt(0.25 / 280)).
const WINDOW_REQUESTS: usize = 280;

/// The time after an accepted update before its window starts (connections still draining).
const SETTLE: Duration = Duration::from_millis(200);

#[test]
fn twenty_updates_under_load_fail_no_request() {
    let [v1, v2, shadow] = Backend::start_each(["v1", "v2", "shadow"]);
    let clusters = [("v1", v1.port), ("v2", v2.port), ("shadow", shadow.port)];
    let proxy = |step| FrontProxy::new(&config(step), &clusters).dynamic();
    let steps = steps();
    let envoy = proxy(steps[0]).start();

    // ~200 requests/s, bounded by count and time.
    let load = Load::start(
        Request::get("/"),
        envoy.port,
        Duration::from_millis(4),
        30_000,
        Duration::from_secs(240),
    );

    let mut windows: Vec<(i64, Instant, Instant)> = Vec::new();
    let mut serving = steps[0].0;
    let mut since = Instant::now();
    for (i, &step) in steps.iter().enumerate().skip(1) {
        // Each window holds at least WINDOW_REQUESTS answers however fast this machine is (a
        // fixed 1.5 s gave ~100 on a throttled VM), so the share check keeps its 4σ.
        load.wait_for(WINDOW_REQUESTS, since + SETTLE, Duration::from_secs(10));
        let before_update = Instant::now();
        windows.push((serving, since + SETTLE, before_update));
        let accepted = envoy.update_filter_config(&proxy(step));
        if step.0 >= 0 {
            assert!(
                accepted,
                "step {i}: valid update refused:\n{}",
                envoy.log_tail(20)
            );
            serving = step.0;
            since = Instant::now();
        } else {
            assert!(!accepted, "step {i}: invalid update accepted");
            let message = format!(
                "route \"httpbin\": backends[1].weight: expected an integer 0..=1000000, got {}",
                step.0
            );
            assert!(
                envoy.wait_for_log(&message),
                "step {i}: the filter's message is not in the log"
            );
        }
    }
    load.wait_for(WINDOW_REQUESTS, since + SETTLE, Duration::from_secs(10));
    windows.push((serving, since + SETTLE, Instant::now()));
    let records = load.stop();
    let failed: Vec<_> = records
        .iter()
        .filter(|(_, status, _)| *status != 200)
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        records.len(),
        &failed[..failed.len().min(5)]
    );
    let refusals = steps.iter().filter(|(weight, _)| *weight < 0).count();
    for (weight, from, to) in windows {
        let in_window: Vec<_> = records
            .iter()
            .filter(|(at, _, _)| *at >= from && *at < to)
            .collect();
        assert!(
            in_window.len() >= WINDOW_REQUESTS,
            "only {} requests in a window",
            in_window.len()
        );
        let share = in_window
            .iter()
            .filter(|(_, _, served)| served == "v2")
            .count() as f64
            / in_window.len() as f64;
        let expected = weight as f64 / 100.0;
        let tolerance = if weight == 0 || weight == 100 {
            0.0
        } else {
            0.12
        };
        assert!(
            (share - expected).abs() <= tolerance,
            "canary {weight} %: observed {share:.3} over {}",
            in_window.len()
        );
    }
    eprintln!(
        "{} requests, 0 failed, {} updates ({refusals} refused)",
        records.len(),
        steps.len() - 1
    );
    assert!(shadow.count() > 0);
}
