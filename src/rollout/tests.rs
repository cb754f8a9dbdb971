use super::*;
use crate::config::Config;
use crate::routing::sticky::sticky_backend;
use serde_json::json;

const START: &str = "2026-12-01T10:00:00Z";
const START_MS: i64 = 1_796_119_200_000;

fn rollout(rollout: serde_json::Value) -> Config {
    let config = json!({"routes": [{"name": "r", "backends": [
        {"cluster": "canary", "weight": 0}, {"cluster": "a", "weight": 60},
        {"cluster": "b", "weight": 20}], "rollout": rollout}]});
    Config::from_json(config.to_string().as_bytes()).unwrap()
}

fn steps_config() -> Config {
    rollout(json!({"canary": "canary", "start": START, "steps": [
        {"weight": 20, "hold_s": 10}, {"weight": 40.5, "hold_s": 20}, {"weight": 60},
        {"weight": 100}]}))
}

#[test]
fn steps_follow_the_clock() {
    let config = steps_config();
    let rollout = config.routes[0].rollout.as_ref().unwrap();
    let step_at = |offset_s: i64| rollout.span_at(START_MS + offset_s * 1000).step;
    assert_eq!(step_at(-1), 0);
    assert_eq!(step_at(0), 1);
    assert_eq!(step_at(9), 1);
    assert_eq!(step_at(10), 2);
    assert_eq!(step_at(29), 2);
    assert_eq!(step_at(30), 3);
    // Step 3 has no hold: it holds until the configuration changes; step 4 never comes.
    assert_eq!(step_at(10_000_000), 3);
    assert_eq!(
        rollout.span_at(START_MS + 12_000),
        StepSpan {
            step: 2,
            from_ms: START_MS + 10_000,
            until_ms: START_MS + 30_000
        }
    );
    assert_eq!(rollout.span_at(START_MS + 40_000).until_ms, i64::MAX);
    assert_eq!(rollout.span_at(0).from_ms, i64::MIN);
}

#[test]
fn last_step_holds_forever() {
    let config = rollout(json!({"canary": "canary", "start": START, "steps": [
        {"weight": 20, "hold_s": 1}, {"weight": 50, "hold_s": 1}]}));
    let rollout = config.routes[0].rollout.as_ref().unwrap();
    assert_eq!(rollout.span_at(START_MS + 1_000_000_000).step, 2);
}

#[test]
fn step_clock_recomputes_only_at_boundaries_and_when_time_goes_back() {
    let config = steps_config();
    let rollout = config.routes[0].rollout.as_ref().unwrap();
    let mut clock = StepClock::default();
    assert_eq!(clock.step_at(rollout, START_MS - 5), 0);
    assert_eq!(clock.step_at(rollout, START_MS + 9_999), 1);
    assert_eq!(clock.step_at(rollout, START_MS + 10_000), 2);
    assert_eq!(clock.step_at(rollout, START_MS + 1), 1);
    assert_eq!(clock.step_at(rollout, START_MS + 100_000), 3);
}

#[test]
fn canary_gets_the_step_share_and_others_keep_their_proportions() {
    let config = steps_config();
    let rollout = config.routes[0].rollout.as_ref().unwrap();
    // Canary last: order is a, b, canary.
    assert_eq!(rollout.order, vec![1, 2, 0]);
    let table = rollout.table(2, false);
    let total = table.total() as f64;
    let shares: Vec<f64> = table
        .cumulative()
        .iter()
        .scan(0, |previous, &end| {
            let weight = end - *previous;
            *previous = end;
            Some(weight as f64 / total)
        })
        .collect();
    assert!((shares[2] - 0.405).abs() < 1e-12, "{shares:?}");
    assert!((shares[0] - 0.595 * 0.75).abs() < 1e-12, "{shares:?}");
    assert!((shares[1] - 0.595 * 0.25).abs() < 1e-12, "{shares:?}");
    assert_eq!(rollout.canary_share(2, false), 4050);
    assert_eq!(rollout.canary_share(0, false), 0);
    assert_eq!(rollout.canary_share(2, true), 0);
    assert_eq!(
        rollout.table(2, true).cumulative(),
        &[600_000, 800_000, 800_000]
    );
    assert_eq!(rollout.table(0, false).cumulative(), &[60, 80, 80]);
}

#[test]
fn full_step_sends_everything_to_the_canary() {
    assert_eq!(step_weights(&[60, 20], FULL_SHARE), vec![0, 0, 800_000]);
    assert_eq!(step_weights(&[0, 0], 2_500), vec![7_500, 7_500, 5_000]);
}

fn positions(config: &Config, step: usize, aborted: bool, keys: &[String]) -> Vec<usize> {
    let rollout = config.routes[0].rollout.as_ref().unwrap();
    let table = rollout.table(step, aborted);
    keys.iter()
        .map(|k| rollout.backend_at(sticky_backend(k.as_bytes(), table.cumulative())))
        .collect()
}

#[test]
fn sticky_keys_only_move_onto_the_canary_through_the_steps_and_back_after_abort() {
    // The canary is first in `backends`: the internal order puts it last.
    let config = rollout(json!({"canary": "canary", "start": START, "steps": [
        {"weight": 10, "hold_s": 10}, {"weight": 25, "hold_s": 10}, {"weight": 50}]}));
    let keys: Vec<String> = (0..5_000).map(|i| format!("user-{i}")).collect();
    let before = positions(&config, 0, false, &keys);
    let mut previous = before.clone();
    for step in 1..=3 {
        let now = positions(&config, step, false, &keys);
        for (p, n) in previous.iter().zip(&now) {
            assert!(p == n || *n == 0, "step {step}: key moved {p} -> {n}");
        }
        let share = now.iter().filter(|&&b| b == 0).count() as f64 / keys.len() as f64;
        let expected = [0.0, 0.10, 0.25, 0.50][step];
        assert!((share - expected).abs() < 0.03, "step {step}: {share}");
        previous = now;
    }
    assert_eq!(positions(&config, 3, true, &keys), before);
}

#[test]
fn numbers_are_written_without_float_formatting() {
    assert_eq!(fixed(1234, 1), "123.4");
    assert_eq!(fixed(5, 3), "0.005");
    assert_eq!(fixed(7, 0), "7");
    assert_eq!(decimal(50_000, 6), "0.05");
    assert_eq!(decimal(1_000_000, 6), "1");
    assert_eq!(decimal(201_250, 4), "20.125");
    assert_eq!(percent_text(20, 20), "100.0");
    assert_eq!(percent_text(1, 3), "33.3");
    assert_eq!(percent_text(2, 3), "66.7");
    assert_eq!(percent_text(0, 0), "0.0");
}
