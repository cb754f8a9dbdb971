//! The guard in a real Envoy, with backends that fail at random (seeded probability p), as
//! production fails: healthy and shared-failure canaries are never aborted over thousands of
//! answers, a bad one is aborted within what the simulation of docs/guard.md predicts, a hard-down
//! one (500s, or a refused connection's 503) within 25 answers, a slow one for `latency`, and at
//! the last step (no other live traffic) the canary is judged alone.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::backend::{Backend, Behavior};
use common::client::Request;
use common::envoy::{Envoy, FrontProxy};
use common::free_port;
use common::keepalive::burst;
use serde_json::{json, Value};
use split_mirror::rollout::cusum::Test;
use split_mirror::rollout::guard::Guard;
use split_mirror::rollout::run_length::{simulate, Scenario};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const LIMIT: f64 = 0.05;

fn guard(min_requests: u64) -> Value {
    json!({"max_error_rate": LIMIT, "min_requests": min_requests, "window_s": 30})
}

/// A route `name` (host `name`) splitting `canary_weight` % to `canary`, the rest to `stable`,
/// guarded (no steps: the weights are the configured ones).
fn guarded(name: &str, stable: &str, canary: &str, canary_weight: u32, guard: Value) -> Value {
    json!({"name": name, "hosts": [name],
        "backends": [{"cluster": stable, "weight": 100 - canary_weight},
                     {"cluster": canary, "weight": canary_weight}],
        "rollout": {"canary": canary, "guard": guard}})
}

/// The last step: the canary at 100 % since a minute ago.
fn last_step(name: &str, stable: &str, canary: &str, guard: Value) -> Value {
    json!({"name": name, "hosts": [name],
        "backends": [{"cluster": stable, "weight": 100}, {"cluster": canary, "weight": 0}],
        "rollout": {"canary": canary, "start": rfc3339_ago(60), "steps": [{"weight": 100}],
                    "guard": guard}})
}

/// `seconds` ago as RFC 3339 (whole seconds are enough here).
fn rfc3339_ago(seconds: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - seconds;
    let (days, secs) = ((now / 86_400) as i64, now % 86_400);
    // Howard Hinnant's civil_from_days.
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
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

fn wasm_stat(envoy: &Envoy, name: &str) -> u64 {
    envoy.stat(&format!("wasmcustom.{name}"))
}

fn aborted(envoy: &Envoy, route: &str) -> u64 {
    wasm_stat(
        envoy,
        &format!("split_mirror_rollout_aborted;route={route}"),
    )
}

fn abort_line(envoy: &Envoy, route: &str) -> Option<String> {
    let needle = format!("route \"{route}\": rollout aborted");
    envoy
        .log()
        .lines()
        .find(|l| l.contains(&needle))
        .map(str::to_string)
}

fn served(answers: &[(u16, String)], backend: &str) -> usize {
    answers.iter().filter(|(_, b)| b == backend).count()
}

/// Answers by status, to print.
fn statuses(answers: &[(u16, String)]) -> BTreeMap<u16, usize> {
    let mut counts = BTreeMap::new();
    for (status, _) in answers {
        *counts.entry(*status).or_insert(0) += 1;
    }
    counts
}

#[test]
fn healthy_shared_and_last_step_canaries_are_never_aborted() {
    // 1. A canary at 0.4× the limit (2 %) beside a clean stable, half the traffic.
    let stable = Backend::start("stable");
    let healthy = Backend::start_with("healthy", Behavior::failing_at_random(0.4 * LIMIT, 1));
    // 2. Both at 20 %.
    let stable_shared = Backend::start_with("stable-shared", Behavior::failing_at_random(0.2, 2));
    let canary_shared = Backend::start_with("canary-shared", Behavior::failing_at_random(0.2, 3));
    // 6. The last step: the canary alone at 0.4× the limit.
    let alone = Backend::start_with("alone", Behavior::failing_at_random(0.4 * LIMIT, 4));
    // 5. Latency: both answer in 20 ms, the limit is 100 ms.
    let stable_20ms =
        Backend::start_with("stable-20ms", Behavior::delayed(Duration::from_millis(20)));
    let canary_20ms =
        Backend::start_with("canary-20ms", Behavior::delayed(Duration::from_millis(20)));
    let clusters = [
        ("stable", stable.port),
        ("healthy", healthy.port),
        ("stable-shared", stable_shared.port),
        ("canary-shared", canary_shared.port),
        ("alone", alone.port),
        ("stable-20ms", stable_20ms.port),
        ("canary-20ms", canary_20ms.port),
    ];
    let latency_guard = json!({"max_error_rate": LIMIT, "min_requests": 20, "window_s": 30,
        "max_latency_ms": 100});
    let config = json!({"routes": [
        guarded("healthy", "stable", "healthy", 50, guard(20)),
        guarded("shared", "stable-shared", "canary-shared", 50, guard(20)),
        last_step("alone", "stable", "alone", guard(20)),
        guarded("even", "stable-20ms", "canary-20ms", 80, latency_guard),
    ]});
    let envoy = FrontProxy::new(&config, &clusters).start();
    let started = Instant::now();
    let limit = Duration::from_secs(120);
    // All four at once, each bounded in count and time.
    let runs: Vec<_> = [
        ("healthy", 21_000, 6),
        ("shared", 21_000, 6),
        ("alone", 10_000, 4),
        ("even", 6_600, 24),
    ]
    .into_iter()
    .map(|(host, count, threads)| {
        let port = envoy.port;
        std::thread::spawn(move || (host, burst(port, host, "/", count, threads, limit)))
    })
    .collect();
    let mut results = BTreeMap::new();
    for run in runs {
        let (host, answers) = run.join().unwrap();
        results.insert(host, answers);
    }
    let elapsed = started.elapsed().as_secs_f64();
    for (host, canary, at_least) in [
        ("healthy", "healthy", 10_000),
        ("shared", "canary-shared", 10_000),
        ("alone", "alone", 10_000),
        ("even", "canary-20ms", 5_000),
    ] {
        let answers = &results[host];
        let to_canary = served(answers, canary);
        eprintln!(
            "{host}: {} answers in {elapsed:.0} s, {to_canary} from the canary, {:?}",
            answers.len(),
            statuses(answers)
        );
        assert_eq!(abort_line(&envoy, host), None, "{host} aborted");
        assert_eq!(aborted(&envoy, host), 0, "{host} aborted");
        // Enough canary answers, and nothing left the canary.
        assert!(to_canary >= at_least, "{host}: {to_canary} canary answers");
    }
    assert!(
        served(&results["healthy"], "healthy") as f64 / results["healthy"].len() as f64 > 0.45,
        "the healthy canary's share fell"
    );
    // At least 200 canary answers a second on the 0.4× routes.
    assert!(
        10_000.0 / elapsed >= 200.0,
        "{elapsed:.0} s: too slow to prove the rate"
    );
}

/// The canary answers at `run` (probability of a 5xx) and takes `share` of the traffic; the
/// simulation of the same guard and traffic gives the 99th percentile of canary answers until
/// the abort.
fn simulated_p99(canary_share: f64, traffic_share: f64) -> u64 {
    let guard = Guard {
        max_error_rate: LIMIT,
        max_error_rate_millionths: (LIMIT * 1e6) as u64,
        min_requests: 1,
        window_s: 30,
        sensitivity: 2.0,
        false_abort_rate: 0.01,
        errors: Test::new(LIMIT, 2.0, 0.01),
        latency: None,
    };
    let scenario = Scenario {
        canary_share,
        others_share: 0.0,
        traffic_share,
        canary_rate: 100.0,
        answers: 100_000,
    };
    let result = simulate(&guard, scenario, 1000, 21);
    result.quantile(0.99).unwrap()
}

#[test]
fn canary_at_three_times_the_limit_is_aborted_within_the_simulated_p99() {
    let p99 = simulated_p99(3.0 * LIMIT, 0.5);
    let stable = Backend::start("stable");
    let canary = Backend::start_with("canary", Behavior::failing_at_random(3.0 * LIMIT, 7));
    let clusters = [("stable", stable.port), ("canary", canary.port)];
    let config = json!({"routes": [guarded("bad", "stable", "canary", 50, guard(1))]});
    let envoy = FrontProxy::new(&config, &clusters).start();
    // Batches of 40 requests (about 20 canary answers) until the abort shows in the log.
    let started = Instant::now();
    let mut sent = 0;
    while abort_line(&envoy, "bad").is_none() && sent < 10_000 {
        sent += burst(envoy.port, "bad", "/", 40, 2, Duration::from_secs(30)).len();
    }
    let rate = canary.count() as f64 / started.elapsed().as_secs_f64();
    let line = abort_line(&envoy, "bad").expect("not aborted");
    let received = canary.count();
    eprintln!("aborted after {received} canary answers ({rate:.0}/s); simulated p99 {p99}: {line}");
    assert!(line.contains("rollout aborted (5xx)"), "{line}");
    assert!(
        received as f64 <= p99 as f64 + rate + 40.0,
        "{received} canary answers, p99 {p99} + 1 s ({rate:.0}) + a batch"
    );
    assert_eq!(
        wasm_stat(
            &envoy,
            "split_mirror_rollout_aborts_total;route=bad;reason=5xx"
        ),
        1
    );
}

#[test]
fn hard_down_canaries_are_aborted_within_25_answers() {
    let stable = Backend::start("stable");
    let failing = Backend::start_with("failing", Behavior::failing());
    let last = Backend::start_with("last", Behavior::failing());
    let slow = Backend::start_with("slow", Behavior::delayed(Duration::from_millis(300)));
    let clusters = [
        ("stable", stable.port),
        ("failing", failing.port),
        // Nothing listens there: Envoy answers 503 for the refused connection.
        ("refused", free_port()),
        ("last", last.port),
        ("slow", slow.port),
    ];
    let slow_guard = json!({"max_error_rate": LIMIT, "min_requests": 5, "window_s": 30,
        "max_latency_ms": 100});
    let config = json!({"routes": [
        guarded("down", "stable", "failing", 50, guard(5)),
        guarded("refused", "stable", "refused", 50, guard(5)),
        last_step("last", "stable", "last", guard(5)),
        guarded("slow", "stable", "slow", 50, slow_guard),
    ]});
    let envoy = FrontProxy::new(&config, &clusters).start();
    for host in ["down", "refused", "last", "slow"] {
        // One request at a time: the count at the abort is exact.
        let request = Request::get("/").host(host);
        for _ in 0..if host == "last" { 40 } else { 80 } {
            request.send(envoy.port);
        }
    }
    let canary_answers = |route: &str, backend: &str, class: &str| {
        wasm_stat(
            &envoy,
            &format!("split_mirror_responses_total;route={route};backend={backend};class={class}"),
        )
    };
    assert!(envoy.wait_for_log("route \"slow\": rollout aborted"));
    for (route, received, reason) in [
        ("down", failing.count() as u64, "5xx"),
        (
            "refused",
            canary_answers("refused", "refused", "5xx"),
            "5xx",
        ),
        ("last", last.count() as u64, "5xx"),
        ("slow", slow.count() as u64, "latency"),
    ] {
        let line = abort_line(&envoy, route).unwrap_or_else(|| panic!("{route} not aborted"));
        eprintln!("{route}: {received} canary answers: {line}");
        assert!(
            line.contains(&format!("rollout aborted ({reason})")),
            "{line}"
        );
        assert!(
            received <= 25,
            "{route}: {received} canary answers before the abort"
        );
        assert_eq!(aborted(&envoy, route), 1);
        assert_eq!(
            wasm_stat(
                &envoy,
                &format!("split_mirror_rollout_aborts_total;route={route};reason={reason}")
            ),
            1
        );
    }
    assert!(abort_line(&envoy, "last").unwrap().contains("judged alone"));
    assert!(
        wasm_stat(
            &envoy,
            "split_mirror_slow_responses_total;route=slow;backend=slow"
        ) >= 1
    );
}
