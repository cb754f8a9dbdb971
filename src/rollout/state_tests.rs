//! The rollout's per-worker state on the in-memory proxy: aborts decided on one worker, read by
//! the others on their tick, kept across reconfigurations that keep the section.

use super::*;
use crate::proxy::double::FakeProxy;
use crate::random::Rng;
use crate::routing::RequestHeaders;
use serde_json::json;

const NOW: u64 = 1_800_000_000_000;
const CANARY: usize = 0;
const STABLE: usize = 1;

fn config(min_requests: u32) -> Config {
    let config = json!({"routes": [{"name": "r", "backends": [
        {"cluster": "canary", "weight": 50}, {"cluster": "stable", "weight": 50}],
        "rollout": {"canary": "canary", "guard": {
            "max_error_rate": 0.1, "min_requests": min_requests, "window_s": 10}}}]});
    Config::from_json(config.to_string().as_bytes()).unwrap()
}

/// `n` canary answers with `status` on `worker`, and as many good answers of the stable
/// backend.
fn answers(proxy: &FakeProxy, state: &Rollouts, config: &Config, n: usize, status: u16) {
    for _ in 0..n {
        let now = proxy.now_ms();
        state.record_answer(proxy, config, (0, CANARY), status, (now, None));
        state.record_answer(proxy, config, (0, STABLE), 200, (now, None));
    }
}

struct NoHeaders;

impl RequestHeaders for NoHeaders {
    fn header(&mut self, _name: &str) -> Option<Vec<u8>> {
        None
    }
}

/// How many of 1,000 weighted decisions `split` sends to the canary.
fn canary_decisions(config: &Config, split: Split<'_>) -> usize {
    let mut rng = Rng::from_seed(7);
    (0..1000)
        .filter(|_| {
            let decision = config.routes[0].decide_in(split, None, &mut NoHeaders, &mut rng);
            decision.backend == CANARY
        })
        .count()
}

fn aborted_gauge(proxy: &FakeProxy) -> Option<i64> {
    proxy.stat("split_mirror_rollout_aborted;route=r")
}

#[test]
fn abort_decided_on_one_worker_is_read_by_another_on_its_next_tick() {
    let config = config(20);
    let first = FakeProxy::new(NOW);
    let second = first.worker();
    let one = Rollouts::new(&first, &config, NOW);
    let two = Rollouts::new(&second, &config, NOW);
    two.tick(&second, &config, NOW);
    answers(&first, &one, &config, 19, 500);
    assert!(!one.route(0).unwrap().is_aborted(), "19 < min_requests");
    answers(&first, &one, &config, 1, 500);
    assert!(one.route(0).unwrap().is_aborted());
    assert_eq!(aborted_gauge(&first), Some(1));
    // The second worker saw no canary answer: it learns of the abort only from shared data,
    // and only on a tick at least a second after its last one.
    first.advance(999);
    two.tick(&second, &config, second.now_ms());
    assert!(
        !two.route(0).unwrap().is_aborted(),
        "read before its next tick"
    );
    let split = two.split(&second, 0, &config.routes[0], second.now_ms());
    assert!(
        canary_decisions(&config, split) > 400,
        "50 % before the abort"
    );
    first.advance(1);
    two.tick(&second, &config, second.now_ms());
    assert!(two.route(0).unwrap().is_aborted());
    let split = two.split(&second, 0, &config.routes[0], second.now_ms());
    assert_eq!(canary_decisions(&config, split), 0);
}

#[test]
fn abort_survives_a_reconfiguration_with_the_same_section_only() {
    let proxy = FakeProxy::new(NOW);
    let before = config(20);
    let state = Rollouts::new(&proxy, &before, NOW);
    answers(&proxy, &state, &before, 20, 500);
    assert!(state.route(0).unwrap().is_aborted());
    // A new configuration with the same rollout section (another worker, or a reloaded VM).
    let same = config(20);
    let again = Rollouts::new(&proxy.worker(), &same, NOW + 5_000);
    assert!(again.route(0).unwrap().is_aborted());
    assert_eq!(
        again.route(0).unwrap().shared_key(),
        state.route(0).unwrap().shared_key()
    );
    // A changed section is a new rollout: it starts afresh, and its gauge says so.
    let changed = config(21);
    let fresh = Rollouts::new(&proxy.worker(), &changed, NOW + 5_000);
    assert!(!fresh.route(0).unwrap().is_aborted());
    assert_eq!(aborted_gauge(&proxy), Some(0));
    fresh.tick(&proxy, &changed, NOW + 10_000);
    assert!(!fresh.route(0).unwrap().is_aborted());
}

#[test]
fn healthy_canary_is_not_aborted_and_answers_are_counted_by_class() {
    let config = config(20);
    let proxy = FakeProxy::new(NOW);
    let state = Rollouts::new(&proxy, &config, NOW);
    answers(&proxy, &state, &config, 100, 200);
    assert!(!state.route(0).unwrap().is_aborted());
    assert_eq!(
        proxy.shared_value(state.route(0).unwrap().shared_key()),
        None
    );
    let counter = |backend: &str, class: &str| {
        proxy.stat(&format!(
            "split_mirror_responses_total;route=r;backend={backend};class={class}"
        ))
    };
    assert_eq!(counter("canary", "2xx"), Some(100));
    assert_eq!(counter("stable", "2xx"), Some(100));
    // Series that never happened are never defined.
    assert_eq!(counter("canary", "5xx"), None);
}

#[test]
fn route_without_rollout_has_no_state_and_no_stats() {
    let config = json!({"routes": [{"name": "plain", "backends": [
        {"cluster": "a", "weight": 1}]}]});
    let config = Config::from_json(config.to_string().as_bytes()).unwrap();
    let proxy = FakeProxy::new(NOW);
    let state = Rollouts::new(&proxy, &config, NOW);
    assert!(!state.any && state.route(0).is_none());
    state.record_answer(&proxy, &config, (0, 0), 500, (NOW, None));
    state.tick(&proxy, &config, NOW);
    assert!(proxy.stat_names().is_empty());
}

fn latency_config() -> Config {
    let config = json!({"routes": [{"name": "r", "backends": [
        {"cluster": "canary", "weight": 50}, {"cluster": "stable", "weight": 50}],
        "rollout": {"canary": "canary", "guard": {
            "max_error_rate": 0.1, "min_requests": 1, "window_s": 10, "max_latency_ms": 100}}}]});
    Config::from_json(config.to_string().as_bytes()).unwrap()
}

#[test]
fn slow_canary_is_aborted_for_latency_and_counted() {
    let config = latency_config();
    let proxy = FakeProxy::new(NOW);
    let state = Rollouts::new(&proxy, &config, NOW);
    let mut aborted_at = None;
    for i in 1..=30 {
        let now = proxy.now_ms();
        state.record_answer(&proxy, &config, (0, CANARY), 200, (now, Some(now + 300)));
        state.record_answer(&proxy, &config, (0, STABLE), 200, (now, Some(now + 20)));
        if aborted_at.is_none() && state.route(0).unwrap().is_aborted() {
            aborted_at = Some(i);
        }
        proxy.advance(10);
    }
    let at = aborted_at.expect("not aborted");
    assert!(at <= 25, "aborted at the {at}th slow answer");
    assert_eq!(
        proxy.stat("split_mirror_rollout_aborts_total;route=r;reason=latency"),
        Some(1)
    );
    assert_eq!(
        proxy.stat("split_mirror_rollout_aborts_total;route=r;reason=5xx"),
        None
    );
    assert_eq!(
        proxy.stat("split_mirror_slow_responses_total;route=r;backend=canary"),
        Some(30)
    );
    assert_eq!(
        proxy.stat("split_mirror_slow_responses_total;route=r;backend=stable"),
        None
    );
}

#[test]
fn a_504_is_slow_and_5xx_and_fast_answers_are_not_slow() {
    let config = latency_config();
    let proxy = FakeProxy::new(NOW);
    let state = Rollouts::new(&proxy, &config, NOW);
    // Within the limit, and exactly at it: not slow.
    state.record_answer(&proxy, &config, (0, CANARY), 200, (NOW, Some(NOW + 99)));
    state.record_answer(&proxy, &config, (0, CANARY), 200, (NOW, Some(NOW + 100)));
    assert_eq!(
        proxy.stat("split_mirror_slow_responses_total;route=r;backend=canary"),
        None
    );
    // Envoy's timeout, whatever the clock says.
    state.record_answer(&proxy, &config, (0, CANARY), 504, (NOW, Some(NOW + 1)));
    assert_eq!(
        proxy.stat("split_mirror_slow_responses_total;route=r;backend=canary"),
        Some(1)
    );
    assert_eq!(
        proxy.stat("split_mirror_responses_total;route=r;backend=canary;class=5xx"),
        Some(1)
    );
}

#[test]
fn last_step_canary_is_judged_alone() {
    let config = json!({"routes": [{"name": "r", "backends": [
        {"cluster": "canary", "weight": 0}, {"cluster": "stable", "weight": 100}],
        "rollout": {"canary": "canary", "start": "2026-01-01T00:00:00Z", "steps": [{"weight": 100}],
            "guard": {"max_error_rate": 0.05, "min_requests": 1, "window_s": 30}}}]});
    let config = Config::from_json(config.to_string().as_bytes()).unwrap();
    let proxy = FakeProxy::new(NOW);
    let state = Rollouts::new(&proxy, &config, NOW);
    let _ = state.split(&proxy, 0, &config.routes[0], NOW);
    let needed = config.routes[0]
        .rollout
        .as_ref()
        .and_then(|r| r.guard.as_ref())
        .map(|g| g.errors.failures_to_threshold())
        .unwrap();
    for i in 1..=needed {
        assert!(!state.route(0).unwrap().is_aborted(), "aborted at {i}");
        state.record_answer(&proxy, &config, (0, CANARY), 503, (NOW, None));
    }
    assert!(state.route(0).unwrap().is_aborted());
}
