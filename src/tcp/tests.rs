use super::*;
use crate::config::{Config, FilterKind};
use serde_json::json;

fn tcp_config(tcp_routes: serde_json::Value) -> Config {
    Config::from_json(json!({ "tcp_routes": tcp_routes }).to_string().as_bytes()).unwrap()
}

fn demo() -> Config {
    tcp_config(json!([
        {"name": "demo", "sni_hosts": ["rollouts-demo-vsvc.local", "*.Example.com"],
         "backends": [{"cluster": "stable", "weight": 80}, {"cluster": "canary", "weight": 20}]},
        {"name": "sticky", "sni_hosts": ["sticky.local"], "sticky": {"source_address": true},
         "backends": [{"cluster": "stable", "weight": 50}, {"cluster": "canary", "weight": 50}]},
    ]))
}

#[test]
fn sni_matches_exact_and_wildcard_ignoring_case() {
    let config = demo();
    let routes = &config.tcp_routes;
    assert_eq!(match_route(routes, b"rollouts-demo-vsvc.local"), Some(0));
    assert_eq!(match_route(routes, b"ROLLOUTS-demo-vsvc.LOCAL"), Some(0));
    assert_eq!(match_route(routes, b"a.example.com"), Some(0));
    assert_eq!(match_route(routes, b"example.com"), None);
    assert_eq!(match_route(routes, b"sticky.local"), Some(1));
    assert_eq!(match_route(routes, b"other.local"), None);
}

#[test]
fn connection_without_sni_matches_only_a_route_without_sni_hosts() {
    let config = demo();
    assert_eq!(match_route(&config.tcp_routes, b""), None);
    let catch_all = tcp_config(json!([
        {"name": "tls", "sni_hosts": ["a.local"], "backends": [{"cluster": "a"}]},
        {"name": "any", "backends": [{"cluster": "b"}]},
    ]));
    assert_eq!(match_route(&catch_all.tcp_routes, b""), Some(1));
    assert_eq!(match_route(&catch_all.tcp_routes, b"zzz"), Some(1));
    assert_eq!(match_route(&catch_all.tcp_routes, b"a.local"), Some(0));
}

#[test]
fn first_matching_route_wins() {
    let config = tcp_config(json!([
        {"name": "any", "backends": [{"cluster": "b"}]},
        {"name": "tls", "sni_hosts": ["a.local"], "backends": [{"cluster": "a"}]},
    ]));
    assert_eq!(match_route(&config.tcp_routes, b"a.local"), Some(0));
}

#[test]
fn weights_split_connections() {
    let config = demo();
    let mut rng = Rng::from_seed(7);
    let mut canary = 0;
    for _ in 0..20_000 {
        let (backend, reason) = choose_backend(&config.tcp_routes[0], || None, &mut rng);
        assert_eq!(reason, TcpReason::Weight);
        canary += backend;
    }
    let share = canary as f64 / 20_000.0;
    assert!((share - 0.2).abs() < 0.015, "{share}");
}

#[test]
fn non_sticky_route_never_reads_the_source_address() {
    let config = demo();
    let mut rng = Rng::from_seed(1);
    choose_backend(
        &config.tcp_routes[0],
        || panic!("source.address read"),
        &mut rng,
    );
}

#[test]
fn sticky_source_address_ignores_the_port() {
    let config = demo();
    let route = &config.tcp_routes[1];
    let mut rng = Rng::from_seed(3);
    for i in 0..200 {
        let ip = format!("127.0.{}.{}", 1 + i / 100, i % 100);
        let first = choose_backend(route, || Some(format!("{ip}:1000").into_bytes()), &mut rng);
        assert_eq!(first.1, TcpReason::Sticky);
        for port in [1, 40_000, 65_535] {
            let again = choose_backend(
                route,
                || Some(format!("{ip}:{port}").into_bytes()),
                &mut rng,
            );
            assert_eq!(first, again, "{ip}");
        }
    }
}

#[test]
fn sticky_ramp_moves_addresses_only_onto_the_canary() {
    let ramp = |canary: u32| {
        tcp_config(
            json!([{"name": "s", "sticky": {"source_address": true}, "backends": [
            {"cluster": "stable", "weight": 100 - canary}, {"cluster": "canary", "weight": canary}]}]),
        )
    };
    let (before, after) = (ramp(10), ramp(50));
    let mut rng = Rng::from_seed(5);
    for i in 0..1000 {
        let address = format!("10.0.{}.{}:5555", i / 250, i % 250).into_bytes();
        let b = choose_backend(&before.tcp_routes[0], || Some(address.clone()), &mut rng).0;
        let a = choose_backend(&after.tcp_routes[0], || Some(address.clone()), &mut rng).0;
        assert!(a == b || a == 1, "moved {b} -> {a}");
    }
}

#[test]
fn sticky_without_an_address_falls_back_to_the_weights() {
    let config = demo();
    let mut rng = Rng::from_seed(2);
    let (_, reason) = choose_backend(&config.tcp_routes[1], || None, &mut rng);
    assert_eq!(reason, TcpReason::Weight);
    let (_, reason) = choose_backend(&config.tcp_routes[1], || Some(Vec::new()), &mut rng);
    assert_eq!(reason, TcpReason::Weight);
}

#[test]
fn ip_of_strips_the_port_for_ipv4_and_ipv6() {
    assert_eq!(ip_of(b"127.0.1.5:43210"), b"127.0.1.5");
    assert_eq!(ip_of(b"[::1]:443"), b"::1");
    assert_eq!(ip_of(b"[2001:db8::7]:1"), b"2001:db8::7");
    assert_eq!(ip_of(b"[::1]"), b"::1");
    assert_eq!(ip_of(b"2001:db8::7"), b"2001:db8::7");
    assert_eq!(ip_of(b"10.1.2.3"), b"10.1.2.3");
    assert_eq!(ip_of(b""), b"");
}

#[test]
fn same_ip_in_both_notations_is_one_key() {
    let config = demo();
    let route = &config.tcp_routes[1];
    let mut rng = Rng::from_seed(9);
    for i in 0..100 {
        let with_port = format!("[2001:db8::{i:x}]:8080").into_bytes();
        let without = format!("2001:db8::{i:x}").into_bytes();
        assert_eq!(
            choose_backend(route, || Some(with_port), &mut rng),
            choose_backend(route, || Some(without), &mut rng)
        );
    }
}

#[test]
fn filter_kind_follows_the_root_id() {
    assert_eq!(
        FilterKind::from_root_id(b"split-mirror-tcp"),
        FilterKind::Tcp
    );
    assert_eq!(FilterKind::from_root_id(b"split-mirror"), FilterKind::Http);
    assert_eq!(FilterKind::from_root_id(b""), FilterKind::Http);
}

#[test]
fn reasons_index_in_order() {
    for (i, reason) in TcpReason::ALL.iter().enumerate() {
        assert_eq!(reason.index(), i);
    }
}

const START: &str = "2026-12-01T10:00:00Z";
/// `START` in ms since the epoch.
const START_MS: i64 = 1_796_119_200_000;

fn with_rollout(rollout: serde_json::Value, sticky: bool) -> Config {
    let mut route = json!({"name": "tls", "sni_hosts": ["tls.local"],
        "backends": [{"cluster": "canary", "weight": 0}, {"cluster": "stable-a", "weight": 60},
            {"cluster": "stable-b", "weight": 40}],
        "rollout": rollout});
    if sticky {
        route["sticky"] = json!({"source_address": true});
    }
    tcp_config(json!([route]))
}

fn ramp() -> serde_json::Value {
    json!({"canary": "canary", "start": START,
        "steps": [{"weight": 10, "hold_s": 60}, {"weight": 50, "hold_s": 60}, {"weight": 100}]})
}

#[test]
fn rollout_ramps_connections_by_the_clock() {
    let config = with_rollout(ramp(), false);
    let route = &config.tcp_routes[0];
    let schedule = &route.rollout.as_ref().unwrap().schedule;
    assert_eq!(schedule.start_ms, Some(START_MS));
    let mut rng = Rng::from_seed(3);
    let n = 20_000;
    for (now, expected) in [
        (START_MS - 1, 0.0),
        (START_MS, 0.10),
        (START_MS + 60_000, 0.50),
        (START_MS + 120_000, 1.0),
    ] {
        let step = schedule.span_at(now).step;
        let canary = (0..n)
            .filter(|_| choose_backend_at(route, step, false, || None, &mut rng).0 == 0)
            .count() as f64
            / f64::from(n);
        let sigma = (expected * (1.0 - expected) / f64::from(n)).sqrt();
        assert!(
            (canary - expected).abs() <= 4.0 * sigma + 1e-12,
            "at {now}: {canary} against {expected}"
        );
        // After an abort the canary gets no new connection, whatever the step.
        assert!((0..1000).all(|_| choose_backend_at(route, step, true, || None, &mut rng).0 != 0));
    }
}

#[test]
fn sticky_addresses_only_move_toward_the_canary_and_back_on_abort() {
    let config = with_rollout(ramp(), true);
    let route = &config.tcp_routes[0];
    let mut rng = Rng::from_seed(5);
    let addresses: Vec<Vec<u8>> = (0..2000)
        .map(|i| format!("10.0.{}.{}:4000", i / 256, i % 256).into_bytes())
        .collect();
    let at = |step: usize, aborted: bool, rng: &mut Rng| -> Vec<usize> {
        addresses
            .iter()
            .map(|a| choose_backend_at(route, step, aborted, || Some(a.clone()), rng).0)
            .collect()
    };
    let before = at(0, false, &mut rng);
    let steps: Vec<Vec<usize>> = (1..=3).map(|step| at(step, false, &mut rng)).collect();
    let aborted = at(2, true, &mut rng);
    for (i, address) in addresses.iter().enumerate() {
        let mut previous = before[i];
        for choices in &steps {
            // Either unchanged, or moved to the canary (backend 0).
            assert!(
                choices[i] == previous || choices[i] == 0,
                "{:?} moved from {previous} to {}",
                String::from_utf8_lossy(address),
                choices[i]
            );
            previous = choices[i];
        }
        // The abort sends every address back where the configured weights put it.
        assert_eq!(aborted[i], before[i]);
    }
    let on_canary = |choices: &Vec<usize>| choices.iter().filter(|&&b| b == 0).count();
    assert_eq!(on_canary(&steps[2]), addresses.len());
    assert!(on_canary(&steps[0]) > 100 && on_canary(&steps[0]) < 320);
}

#[test]
fn follow_names_a_guarded_http_route() {
    let http = |guard: bool| {
        let mut rollout = json!({"canary": "canary", "start": START, "steps": [{"weight": 20}]});
        if guard {
            rollout["guard"] = json!({"max_error_rate": 0.05, "min_requests": 20, "window_s": 30});
        }
        json!([{"name": "web", "backends": [{"cluster": "stable"}, {"cluster": "canary", "weight": 0}],
            "rollout": rollout}])
    };
    let tcp = |rollout: serde_json::Value| {
        json!([{"name": "tls", "backends": [{"cluster": "stable"}, {"cluster": "canary", "weight": 0}],
            "rollout": rollout}])
    };
    let load = |routes: serde_json::Value, tcp_routes: serde_json::Value| {
        Config::from_json(
            json!({"routes": routes, "tcp_routes": tcp_routes})
                .to_string()
                .as_bytes(),
        )
    };
    let config = load(
        http(true),
        tcp(json!({"canary": "canary", "follow": "web"})),
    )
    .unwrap();
    let rollout = config.tcp_routes[0].rollout.as_ref().unwrap();
    assert_eq!(rollout.follow, Some(0));
    assert!(rollout.schedule.steps.is_empty());
    for (routes, rollout, expected) in [
        (
            http(true),
            json!({"canary": "canary", "follow": "webb"}),
            "tcp_route \"tls\": rollout.follow: no HTTP route is named \"webb\" in `routes` of this configuration",
        ),
        (
            http(false),
            json!({"canary": "canary", "follow": "web"}),
            "tcp_route \"tls\": rollout.follow: route \"web\" has no rollout guard whose abort could be followed",
        ),
        (
            http(true),
            json!({"canary": "canary"}),
            "tcp_route \"tls\": rollout: give `steps` (with `start`), `follow`, or both; a canary alone does nothing",
        ),
        (
            http(true),
            json!({"canary": "canry", "follow": "web"}),
            "tcp_route \"tls\": rollout.canary: \"canry\" is not the cluster of one of this route's backends",
        ),
        (
            http(true),
            json!({"canary": "canary", "steps": [{"weight": 20}]}),
            "tcp_route \"tls\": rollout.start: required with `steps`: the RFC 3339 time step 1 begins",
        ),
        (
            http(true),
            json!({"canary": "canary", "guard": {}}),
            "tcp_route \"tls\": rollout.guard: unknown field `guard`, expected one of `canary`, `start`, `steps`, `follow`",
        ),
    ] {
        assert_eq!(load(routes, tcp(rollout.clone())).unwrap_err().0, expected, "{rollout}");
    }
}
