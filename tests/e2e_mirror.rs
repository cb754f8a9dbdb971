//! Mirroring in a real Envoy: sampling bands, what the shadow receives, bodies, several mirrors,
//! broken shadows that must not touch the primary, the methods allowlist and the in-flight cap.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::backend::{Backend, Behavior};
use common::client::Request;
use common::envoy::{Envoy, FrontProxy, ROUTE_HEADER};
use common::free_port;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn mirror_config(mirrors: Value) -> Value {
    json!({"routes": [{"name": "httpbin", "backends": [{"cluster": "v1"}], "mirrors": mirrors}]})
}

fn counter(envoy: &Envoy, mirror: &str, outcome: &str) -> u64 {
    envoy.stat(&format!(
        "wasmcustom.split_mirror_mirror_total;route=httpbin;mirror={mirror};outcome={outcome}"
    ))
}

/// The Gateway API percentage-mirror conformance band, n·p ± 3·sqrt(n·p·(1−p)): what the
/// issue's sampling test asks for.
const CONFORMANCE_SIGMAS: f64 = 3.0;

/// The other statistical checks use 4σ, as every share check of the suite does: at 3σ a correct
/// filter fails each check in 0.27 % of runs, and a flaky suite blocks every landing.
const SUITE_SIGMAS: f64 = 4.0;

/// `count` within n·p ± sigmas·sqrt(n·p·(1−p)).
fn assert_in_band(label: &str, count: usize, n: usize, p: f64, sigmas: f64) {
    let mean = n as f64 * p;
    let spread = sigmas * (n as f64 * p * (1.0 - p)).sqrt();
    assert!(
        (count as f64 - mean).abs() <= spread,
        "{label}: {count} shadows for {n} requests at {p}: outside {mean:.1} ± {spread:.1}"
    );
}

/// The copies of 500 requests mirrored at 20 % to `shadow`: inside the band, each decision counted.
fn assert_twenty_percent_of_500(label: &str, envoy: &Envoy, shadow: &Backend, sigmas: f64) {
    let copies = shadow.settled_count(Duration::from_millis(300));
    assert_in_band(label, copies, 500, 0.20, sigmas);
    assert_eq!(counter(envoy, "shadow", "mirrored"), copies as u64);
    assert_eq!(
        counter(envoy, "shadow", "skipped_sampling"),
        500 - copies as u64
    );
}

fn send_all_ok(port: u16, request: &Request, n: usize) {
    for i in 0..n {
        let response = request.send(port);
        assert_eq!(response.status, 200, "primary {i}: {response:?}");
        assert_eq!(
            response.served_by(),
            "v1",
            "primary {i} answered by the wrong backend"
        );
    }
}

#[test]
fn percent_sampling_stays_in_the_conformance_band() {
    let [v1, shadow, rare] = Backend::start_each(["v1", "shadow", "rare"]);
    let config = mirror_config(
        json!([{"cluster": "shadow", "percent": 20}, {"cluster": "rare", "percent": 0.5}]),
    );
    let envoy = FrontProxy::new(
        &config,
        &[
            ("v1", v1.port),
            ("shadow", shadow.port),
            ("rare", rare.port),
        ],
    )
    .start();
    send_all_ok(envoy.port, &Request::get("/get"), 500);
    assert_twenty_percent_of_500("20 %", &envoy, &shadow, CONFORMANCE_SIGMAS);

    send_all_ok(envoy.port, &Request::get("/get"), 1500);
    let half_percent = rare.settled_count(Duration::from_millis(300));
    assert_in_band("0.5 %", half_percent, 2000, 0.005, CONFORMANCE_SIGMAS);
    assert_eq!(v1.count(), 2000);
}

#[test]
fn shadow_gets_method_path_query_and_suffixed_host_without_route_header() {
    let [v1, shadow, plain] = Backend::start_each(["v1", "shadow", "plain"]);
    let config =
        mirror_config(json!([{"cluster": "shadow"}, {"cluster": "plain", "host_suffix": ""}]));
    let envoy = FrontProxy::new(
        &config,
        &[
            ("v1", v1.port),
            ("shadow", shadow.port),
            ("plain", plain.port),
        ],
    )
    .start();
    let hosts = [
        ("httpbin", "httpbin-shadow"),
        ("httpbin:8000", "httpbin-shadow:8000"),
        ("[::1]:80", "[::1]-shadow:80"),
    ];
    for (host, _) in hosts {
        let request = Request::get("/anything/a?x=1&y=%20")
            .host(host)
            .header(ROUTE_HEADER, "forged")
            .header("x-trace", "t1");
        send_all_ok(envoy.port, &request, 20);
    }
    assert_eq!(shadow.wait_for(60, Duration::from_secs(5)), 60);
    assert_eq!(plain.wait_for(60, Duration::from_secs(5)), 60);
    let received = shadow.requests();
    for (i, (_, shadow_host)) in hosts.iter().enumerate() {
        let for_host: Vec<_> = received
            .iter()
            .filter(|r| r.header("host").as_deref() == Some(shadow_host))
            .collect();
        assert_eq!(for_host.len(), 20, "shadow host {shadow_host} (case {i})");
    }
    for request in received.iter().chain(plain.requests().iter()) {
        assert_eq!(request.method, "GET");
        assert_eq!(request.path, "/anything/a?x=1&y=%20");
        assert_eq!(
            request.header_count(ROUTE_HEADER),
            0,
            "route header reached the shadow"
        );
        assert_eq!(request.header("x-split-mirror").as_deref(), Some("1"));
        assert_eq!(request.header("x-trace").as_deref(), Some("t1"));
        assert_eq!(request.header_count("host"), 1);
    }
    let plain_hosts: Vec<String> = plain
        .requests()
        .iter()
        .filter_map(|r| r.header("host"))
        .collect();
    assert!(
        plain_hosts.iter().any(|h| h == "httpbin:8000"),
        "empty host_suffix changed the host: {plain_hosts:?}"
    );
    // The primary never sees the marker.
    assert!(v1
        .requests()
        .iter()
        .all(|r| r.header_count("x-split-mirror") == 0));
}

#[test]
fn envoy_sends_the_copy_when_a_mirror_names_a_cluster_header() {
    const HEADER: &str = "x-split-mirror-cluster";
    let [v1, shadow] = Backend::start_each(["v1", "shadow"]);
    let config = mirror_config(
        json!([{"cluster": "shadow", "percent": 20, "methods": ["POST"], "cluster_header": HEADER}]),
    );
    let envoy = FrontProxy::new(&config, &[("v1", v1.port), ("shadow", shadow.port)])
        .mirror_cluster_header(HEADER)
        .start();
    // Clients asking for a copy themselves are ignored: only the filter's draw decides.
    let body: Vec<u8> = (0..10 * 1024).map(|i| (i % 251) as u8).collect();
    let post = Request::new("POST", "/anything?x=1")
        .host("httpbin:8000")
        .header(HEADER, "shadow")
        .body(body.clone(), false);
    send_all_ok(envoy.port, &post, 500);
    send_all_ok(
        envoy.port,
        &Request::get("/get").header(HEADER, "shadow"),
        50,
    );
    assert_twenty_percent_of_500("20 % sent by Envoy", &envoy, &shadow, SUITE_SIGMAS);
    assert_eq!(counter(&envoy, "shadow", "skipped_method"), 50);
    for copy in shadow.requests() {
        assert_eq!(
            (copy.method.as_str(), copy.path.as_str()),
            ("POST", "/anything?x=1")
        );
        assert_eq!(copy.header("host").as_deref(), Some("httpbin-shadow:8000"));
        assert_eq!(copy.body, body);
    }
    assert_eq!(v1.count(), 550);
    // Envoy's copies are not the filter's: nothing in flight on its side.
    let in_flight = envoy
        .stats()
        .get("wasmcustom.split_mirror_shadows_in_flight")
        .copied();
    assert_eq!(in_flight, Some(0));
}

#[test]
fn bodies_arrive_byte_identical_and_oversized_ones_are_not_mirrored() {
    let [v1, shadow, small] = Backend::start_each(["v1", "shadow", "small"]);
    let config = mirror_config(json!([
        {"cluster": "shadow", "max_body_bytes": 4 * 1024 * 1024},
        {"cluster": "small", "max_body_bytes": 1024 * 1024}
    ]));
    let envoy = FrontProxy::new(
        &config,
        &[
            ("v1", v1.port),
            ("shadow", shadow.port),
            ("small", small.port),
        ],
    )
    .start();
    let sizes = [0usize, 10 * 1024, 2 * 1024 * 1024];
    let mut sent = Vec::new();
    for &size in &sizes {
        for (method, chunked) in [("POST", false), ("PUT", true)] {
            let body: Vec<u8> = (0..size).map(|i| (i * 7 + size) as u8).collect();
            let response = Request::new(method, "/upload")
                .body(body.clone(), chunked)
                .send(envoy.port);
            assert_eq!(response.status, 200, "{method} {size} B chunked={chunked}");
            sent.push((method, size, body));
        }
    }
    assert_eq!(
        shadow.wait_for(sent.len(), Duration::from_secs(10)),
        sent.len()
    );
    let (primary, copies) = (v1.requests(), shadow.requests());
    for (method, size, body) in &sent {
        let matches = |r: &&common::backend::Recorded| r.method == *method && r.body.len() == *size;
        assert_eq!(
            &primary.iter().find(matches).expect("primary missing").body,
            body,
            "primary {method} {size}"
        );
        assert_eq!(
            &copies.iter().find(matches).expect("shadow missing").body,
            body,
            "shadow {method} {size}"
        );
    }
    // The 2 MiB bodies exceed the small mirror's 1 MiB: not mirrored, counted, primary intact.
    assert_eq!(small.settled_count(Duration::from_millis(300)), 4);
    assert_eq!(counter(&envoy, "small", "skipped_body_too_large"), 2);
    assert_eq!(counter(&envoy, "small", "mirrored"), 4);
    assert_eq!(counter(&envoy, "shadow", "mirrored"), 6);
}

#[test]
fn two_mirrors_on_one_route_both_get_their_share() {
    let [v1, a, b] = Backend::start_each(["v1", "a", "b"]);
    let config = mirror_config(json!([{"cluster": "a", "percent": 50}, {"cluster": "b"}]));
    let envoy = FrontProxy::new(&config, &[("v1", v1.port), ("a", a.port), ("b", b.port)]).start();
    send_all_ok(envoy.port, &Request::get("/"), 400);
    assert_eq!(b.wait_for(400, Duration::from_secs(5)), 400);
    assert_in_band(
        "50 %",
        a.settled_count(Duration::from_millis(300)),
        400,
        0.5,
        SUITE_SIGMAS,
    );
}

/// Latencies of `n` primary requests in ms, sorted; each must be a 200 from `v1`.
fn primary_latencies(port: u16, n: usize) -> Vec<f64> {
    let mut latencies: Vec<f64> = (0..n)
        .map(|i| {
            let start = Instant::now();
            let response = Request::get("/").send(port);
            assert_eq!(response.status, 200, "primary {i}: {response:?}");
            assert_eq!(response.served_by(), "v1");
            start.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    latencies
}

#[test]
fn broken_shadows_never_touch_the_primary() {
    let v1 = Backend::start("v1");
    let failing = Backend::start_with(
        "failing",
        Behavior {
            status: 500,
            ..Behavior::default()
        },
    );
    let sleepy = Backend::start_with("sleepy", Behavior::delayed(Duration::from_millis(3000)));
    let closed_port = free_port();
    let healthy = Backend::start("healthy");
    let clusters = [
        ("v1", v1.port),
        ("healthy", healthy.port),
        ("down", closed_port),
        ("failing", failing.port),
        ("sleepy", sleepy.port),
    ];
    for shadow in ["healthy", "down", "failing", "sleepy"] {
        let config = mirror_config(json!([{"cluster": shadow, "timeout_ms": 1000}]));
        let envoy = FrontProxy::new(&config, &clusters).start();
        let latencies = primary_latencies(envoy.port, 200);
        let median = latencies[latencies.len() / 2];
        // Latency figures are the benchmark's job (`make bench`); this only proves the primary
        // never waits for its shadow. A primary held for the sleeping shadow would take its whole
        // 1 s timeout, so a median far below that holds however loaded the machine is.
        eprintln!(
            "shadow {shadow}: primary median {median:.2} ms, p99 {:.2} ms",
            latencies[latencies.len() * 99 / 100]
        );
        assert!(
            median < 250.0,
            "shadow {shadow}: primary median {median:.2} ms"
        );
        std::thread::sleep(Duration::from_millis(100)); // the last copies leave on the next tick
        assert_eq!(counter(&envoy, shadow, "mirrored"), 200, "shadow {shadow}");
    }
    assert!(failing.count() >= 200);
}

#[test]
fn methods_allowlist_skips_other_methods() {
    let [v1, shadow] = Backend::start_each(["v1", "shadow"]);
    let config = mirror_config(json!([{"cluster": "shadow", "methods": ["GET", "HEAD"]}]));
    let envoy = FrontProxy::new(&config, &[("v1", v1.port), ("shadow", shadow.port)]).start();
    send_all_ok(
        envoy.port,
        &Request::new("POST", "/write").body(b"x".to_vec(), false),
        10,
    );
    send_all_ok(envoy.port, &Request::get("/read"), 10);
    assert_eq!(shadow.settled_count(Duration::from_millis(300)), 10);
    assert!(shadow.requests().iter().all(|r| r.method == "GET"));
    assert_eq!(counter(&envoy, "shadow", "skipped_method"), 10);
}

#[test]
fn in_flight_cap_bounds_slow_shadows_and_counts_the_rest() {
    let v1 = Backend::start("v1");
    let sleepy = Backend::start_with("sleepy", Behavior::delayed(Duration::from_millis(2000)));
    let config = json!({"max_shadows_in_flight": 5, "routes": [{"name": "httpbin",
        "backends": [{"cluster": "v1"}], "mirrors": [{"cluster": "sleepy", "timeout_ms": 3000}]}]});
    let envoy = FrontProxy::new(&config, &[("v1", v1.port), ("sleepy", sleepy.port)]).start();
    send_all_ok(envoy.port, &Request::get("/"), 20);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(counter(&envoy, "sleepy", "mirrored"), 5);
    assert_eq!(counter(&envoy, "sleepy", "skipped_in_flight_cap"), 15);
    assert_eq!(envoy.stat("wasmcustom.split_mirror_shadows_in_flight"), 5);
    assert_eq!(sleepy.count(), 5);
    // Once the slow answers are in, the slots are free again.
    std::thread::sleep(Duration::from_millis(2800));
    let in_flight = envoy
        .stats()
        .get("wasmcustom.split_mirror_shadows_in_flight")
        .copied();
    assert_eq!(in_flight, Some(0));
    send_all_ok(envoy.port, &Request::get("/"), 1);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(counter(&envoy, "sleepy", "mirrored"), 6);
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[test]
fn sleeping_shadow_under_load_keeps_the_cap_and_memory_bounded() {
    let v1 = Backend::start("v1");
    // The shadow sleeps far past its timeout: every copy holds a slot until Envoy gives up.
    let sleepy = Backend::start_with("sleepy", Behavior::delayed(Duration::from_secs(5)));
    let config = json!({"max_shadows_in_flight": 50, "routes": [{"name": "httpbin",
        "backends": [{"cluster": "v1"}], "mirrors": [{"cluster": "sleepy", "timeout_ms": 300}]}]});
    let envoy = FrontProxy::new(&config, &[("v1", v1.port), ("sleepy", sleepy.port)]).start();
    let body = vec![7u8; 16 * 1024];
    send_all_ok(
        envoy.port,
        &Request::new("POST", "/").body(body.clone(), false),
        200,
    );
    let rss_before = rss_kib(envoy.pid());
    let mut max_in_flight = 0;
    let started = Instant::now();
    let mut sent = 0;
    while started.elapsed() < Duration::from_secs(4) {
        send_all_ok(
            envoy.port,
            &Request::new("POST", "/").body(body.clone(), false),
            50,
        );
        sent += 50;
        max_in_flight = max_in_flight.max(envoy.stat("wasmcustom.split_mirror_shadows_in_flight"));
    }
    let rss_after = rss_kib(envoy.pid());
    let (mirrored, capped) = (
        counter(&envoy, "sleepy", "mirrored"),
        counter(&envoy, "sleepy", "skipped_in_flight_cap"),
    );
    eprintln!(
        "{sent} requests under load: max in flight {max_in_flight}, mirrored {mirrored}, skipped by the cap {capped}, RSS {rss_before} -> {rss_after} KiB"
    );
    assert!(
        max_in_flight <= 50,
        "the in-flight cap did not hold: {max_in_flight}"
    );
    assert!(capped > 0, "nothing was skipped by the cap");
    assert!(
        mirrored > 50,
        "slots were not freed by the timeouts ({mirrored} mirrored)"
    );
    assert!(
        rss_after < rss_before + 20 * 1024,
        "RSS grew from {rss_before} to {rss_after} KiB"
    );
}
