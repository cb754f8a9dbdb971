//! The route index (crate::route_index) through `Config::match_route`, against a linear search.

use super::*;
use crate::config::Config;
use crate::hosts::host_of;
use crate::random::Rng;
use serde_json::{json, Value};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

fn config(value: &Value) -> Config {
    Config::from_json(value.to_string().as_bytes()).unwrap()
}

fn request<'a>(authority: &'a [u8], path: &'a [u8]) -> RequestView<'a> {
    RequestView { authority, path }
}

/// The lookup before the index: every route in order, the first whose path and hosts (or
/// tagged hosts) match. The oracle the index must agree with.
fn linear_match_route<'c>(config: &'c Config, request: &RequestView) -> Option<RouteMatch<'c>> {
    let host = host_of(request.authority);
    config.routes.iter().enumerate().find_map(|(index, route)| {
        if !route.matches_path(request.path) {
            return None;
        }
        let tagged_backend =
            if route.hosts.is_empty() || route.hosts.iter().any(|p| p.matches(host)) {
                None
            } else {
                let (_, backend) = route
                    .tagged_hosts
                    .iter()
                    .find(|(tagged, _)| host.eq_ignore_ascii_case(tagged.as_bytes()))?;
                Some(*backend)
            };
        Some(RouteMatch {
            index,
            route,
            tagged_backend,
        })
    })
}

/// `(route name, tagged backend)` the index finds for `authority` and `path`.
fn found(config: &Config, authority: &[u8], path: &str) -> Option<(String, Option<usize>)> {
    config
        .match_route(&request(authority, path.as_bytes()))
        .map(|m| (m.route.name.clone(), m.tagged_backend))
}

fn route(name: &str, hosts: &[&str], path_prefix: &str) -> Value {
    json!({"name": name, "hosts": hosts, "path_prefix": path_prefix,
           "backends": [{"cluster": "v1"}]})
}

fn hostless(name: &str) -> Value {
    json!({"name": name, "backends": [{"cluster": "v1"}]})
}

fn named(name: &str) -> Option<(String, Option<usize>)> {
    Some((name.to_string(), None))
}

#[test]
fn earlier_hostless_route_wins_over_later_exact_host() {
    let config = config(&json!({"routes": [
        route("api", &["httpbin"], "/api"),
        hostless("any"),
        route("httpbin", &["httpbin"], "/"),
    ]}));
    assert_eq!(found(&config, b"httpbin", "/api/x"), named("api"));
    assert_eq!(found(&config, b"httpbin", "/"), named("any"));
}

#[test]
fn path_prefix_is_checked_for_each_candidate() {
    let config = config(&json!({"routes": [
        route("v2", &["h"], "/api/v2"),
        route("api", &["*.h", "h"], "/api"),
        route("rest", &["h"], "/"),
    ]}));
    assert_eq!(found(&config, b"h", "/api/v2/x"), named("v2"));
    assert_eq!(found(&config, b"h", "/api/v1"), named("api"));
    assert_eq!(found(&config, b"h", "/"), named("rest"));
    assert_eq!(found(&config, b"a.h", "/api/v2"), named("api"));
    assert_eq!(found(&config, b"a.h", "/"), None);
}

#[test]
fn exact_host_lookup_ignores_case_and_port() {
    let config = config(&json!({"routes": [
        route("r", &["HttpBin.Example", "[::1]"], "/"),
    ]}));
    for host in [
        &b"httpbin.example"[..],
        b"HTTPBIN.EXAMPLE:8080",
        b"hTtPbIn.ExAmPlE:80",
        b"[::1]:10000",
    ] {
        assert_eq!(found(&config, host, "/"), named("r"), "{host:?}");
    }
    assert_eq!(found(&config, b"httpbin.example.", "/"), None);
    assert_eq!(found(&config, b"httpbin", "/"), None);
}

#[test]
fn wildcard_does_not_match_apex() {
    let config = config(&json!({"routes": [route("r", &["*.example.com"], "/")]}));
    assert_eq!(found(&config, b"example.com", "/"), None);
    assert_eq!(found(&config, b".example.com", "/"), None);
    assert_eq!(found(&config, b"badexample.com", "/"), None);
    assert_eq!(found(&config, b"a.example.com", "/"), named("r"));
}

#[test]
fn wildcard_matches_subdomains_at_any_depth_and_case() {
    let config = config(&json!({"routes": [
        route("deep", &["*.a.example"], "/"),
        route("shallow", &["*.example"], "/"),
    ]}));
    assert_eq!(found(&config, b"x.A.Example:443", "/"), named("deep"));
    assert_eq!(found(&config, b"x.y.z.a.example", "/"), named("deep"));
    assert_eq!(found(&config, b"a.example", "/"), named("shallow"));
    assert_eq!(found(&config, b"\xff.example", "/"), named("shallow"));
    assert_eq!(found(&config, b"example", "/"), None);
}

#[test]
fn earlier_wildcard_wins_over_later_exact_host() {
    let config = config(&json!({"routes": [
        route("wild", &["*.example"], "/"),
        route("exact", &["a.example"], "/"),
    ]}));
    assert_eq!(found(&config, b"a.example", "/"), named("wild"));
}

#[test]
fn earlier_tagged_host_wins_over_later_exact_host() {
    let config = config(&json!({"routes": [
        {"name": "release", "hosts": ["httpbin"], "backends": [
            {"cluster": "v1", "tag": "stable"}, {"cluster": "v2", "tag": "canary"}]},
        route("literal", &["canary-httpbin"], "/"),
    ]}));
    assert_eq!(
        found(&config, b"Canary-HttpBin:80", "/"),
        Some(("release".to_string(), Some(1)))
    );
    assert_eq!(found(&config, b"nightly-httpbin", "/"), None);
}

#[test]
fn route_hosts_take_precedence_over_its_own_tagged_host() {
    // `canary-a.example` is both a tagged host of the route and one of its wildcard's hosts.
    let config = config(&json!({"routes": [
        {"name": "r", "hosts": ["a.example", "*.example"], "backends": [
            {"cluster": "v1"}, {"cluster": "v2", "tag": "canary"}]},
    ]}));
    assert_eq!(found(&config, b"canary-a.example", "/"), named("r"));
}

#[test]
fn tag_spellings_that_collide_pick_the_first_backend() {
    // Tag `c` + host `b-a` and tag `c-b` + host `a` both spell `c-b-a`.
    let config = config(&json!({"routes": [
        {"name": "r", "hosts": ["b-a", "a"], "backends": [
            {"cluster": "v1", "tag": "c"}, {"cluster": "v2", "tag": "c-b"}]},
    ]}));
    assert_eq!(
        found(&config, b"c-b-a", "/"),
        Some(("r".to_string(), Some(0)))
    );
}

#[test]
fn last_of_ten_thousand_routes_is_found() {
    let mut routes: Vec<Value> = (0..10_000)
        .map(|n| route(&format!("r{n}"), &[&format!("host-{n}.example")], "/"))
        .collect();
    routes.push(hostless("catch-all"));
    let config = config(&json!({ "routes": routes }));
    assert_eq!(found(&config, b"host-9999.example", "/"), named("r9999"));
    assert_eq!(found(&config, b"HOST-0.example:1", "/"), named("r0"));
    assert_eq!(
        found(&config, b"host-10000.example", "/"),
        named("catch-all")
    );
}

#[test]
fn hostless_routes_are_kept_in_order() {
    let config = config(&json!({"routes": [
        route("api", &[], "/api"),
        hostless("rest"),
    ]}));
    assert_eq!(found(&config, b"", "/api"), named("api"));
    assert_eq!(found(&config, b"", "/"), named("rest"));
    assert_eq!(found(&config, b"", ""), named("rest"));
}

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

/// The system allocator, counting this thread's allocations (for the no-allocation test).
struct CountingAllocator;

// SAFETY: forwards to `System` unchanged; the counter is a const-initialized thread local,
// which does not allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

#[test]
fn lookup_does_not_allocate() {
    let long_host = format!("{}.a.example", "x".repeat(300));
    let config = config(&json!({"routes": [
        route("wild", &["*.a.example"], "/api"),
        {"name": "tagged", "hosts": ["h.example"], "backends": [{"cluster": "v1", "tag": "t"}]},
        hostless("rest"),
    ]}));
    let requests = [
        request(long_host.as_bytes(), b"/api"),
        request(b"T-H.EXAMPLE:80", b"/"),
        request(b"\xffunknown", b"/"),
    ];
    let before = ALLOCATIONS.with(Cell::get);
    let mut found = [None; 3];
    for (slot, request) in found.iter_mut().zip(&requests) {
        *slot = config.match_route(request).map(|m| m.index);
    }
    assert_eq!(ALLOCATIONS.with(Cell::get), before);
    assert_eq!(found, [Some(0), Some(1), Some(2)]);
}

// --- The index against the linear search, on random route lists and requests ---

const EXACT_HOSTS: [&str; 7] = [
    "a.example",
    "b.a.example",
    "example",
    "b-a.example",
    "canary-a.example",
    "x.y",
    "[::1]",
];
const WILDCARDS: [&str; 3] = ["*.a.example", "*.example", "*.y"];
const TAGS: [&str; 4] = ["canary", "c", "c-b", "v2"];
const PATH_PREFIXES: [&str; 3] = ["/", "/api", "/api/v2"];
const PATHS: [&str; 6] = ["/", "/api", "/api/v2/users", "/ap", "", "/API"];

fn pick<'a>(rng: &mut Rng, items: &[&'a str]) -> &'a str {
    items[rng.below(items.len() as u64) as usize]
}

fn one_in(rng: &mut Rng, n: u64) -> bool {
    rng.below(n) == 0
}

fn random_case(rng: &mut Rng, text: &str) -> String {
    text.chars()
        .map(|c| {
            if one_in(rng, 2) {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

/// 1 to 12 routes mixing exact, wildcard, tagged and hostless ones, with overlapping hosts.
fn random_config(rng: &mut Rng) -> Value {
    let count = 1 + rng.below(12);
    let routes: Vec<Value> = (0..count)
        .map(|n| {
            let mut route = json!({"name": format!("r{n}")});
            if !one_in(rng, 4) {
                let hosts: Vec<String> = (0..1 + rng.below(3))
                    .map(|_| {
                        let host = if one_in(rng, 3) {
                            pick(rng, &WILDCARDS)
                        } else {
                            pick(rng, &EXACT_HOSTS)
                        };
                        random_case(rng, host)
                    })
                    .collect();
                route["hosts"] = json!(hosts);
            }
            if !one_in(rng, 3) {
                route["path_prefix"] = json!(pick(rng, &PATH_PREFIXES));
            }
            let mut tags: Vec<&str> = TAGS.to_vec();
            let backends: Vec<Value> = (0..1 + rng.below(3))
                .map(|b| {
                    let mut backend = json!({"cluster": format!("b{b}")});
                    if !one_in(rng, 3) {
                        let tag = tags.remove(rng.below(tags.len() as u64) as usize);
                        backend["tag"] = json!(random_case(rng, tag));
                    }
                    backend
                })
                .collect();
            route["backends"] = json!(backends);
            route
        })
        .collect();
    json!({ "routes": routes })
}

/// An authority from the configs' own pool and its neighbours, in random case and port.
fn random_authority(rng: &mut Rng) -> Vec<u8> {
    let host: Vec<u8> = match rng.below(8) {
        0 | 1 => pick(rng, &EXACT_HOSTS).into(),
        // Under a wildcard's domain, or `.domain` itself (an empty subdomain).
        2 => {
            let domain = pick(rng, &WILDCARDS).trim_start_matches('*');
            format!("{}{domain}", pick(rng, &["q", "p.q", ""])).into()
        }
        3 | 4 => format!("{}-{}", pick(rng, &TAGS), pick(rng, &EXACT_HOSTS)).into(),
        5 => format!("nightly-{}", pick(rng, &EXACT_HOSTS)).into(),
        6 => pick(rng, &["unknown.test", "", "a", "y", ".y", "ample", "a:b:c"]).into(),
        _ => {
            let mut bytes = pick(rng, &["\u{e9}.example", "a.example", "canary-x.y"])
                .as_bytes()
                .to_vec();
            bytes.insert(rng.below(bytes.len() as u64) as usize, 0xff);
            bytes
        }
    };
    let mut host: Vec<u8> = host
        .into_iter()
        .map(|b| {
            if one_in(rng, 2) {
                b.to_ascii_uppercase()
            } else {
                b
            }
        })
        .collect();
    if one_in(rng, 3) {
        host.extend_from_slice(b":8080");
    }
    host
}

#[test]
fn index_finds_the_same_route_as_the_linear_search() {
    let mut rng = Rng::from_seed(14);
    let (mut tagged, mut unmatched) = (0, 0);
    for case in 0..5_000 {
        let json = random_config(&mut rng);
        let config = config(&json);
        for _ in 0..40 {
            let authority = random_authority(&mut rng);
            let path = pick(&mut rng, &PATHS);
            let request = request(&authority, path.as_bytes());
            let expected =
                linear_match_route(&config, &request).map(|m| (m.index, m.tagged_backend));
            let actual = config
                .match_route(&request)
                .map(|m| (m.index, m.tagged_backend));
            assert_eq!(
                actual,
                expected,
                "case {case}: authority {:?}, path {path:?}, config {json}",
                String::from_utf8_lossy(&authority)
            );
            tagged += usize::from(matches!(expected, Some((_, Some(_)))));
            unmatched += usize::from(expected.is_none());
        }
    }
    // The generator reaches the interesting outcomes, not only the catch-alls.
    assert!(
        tagged > 1_000 && unmatched > 1_000,
        "{tagged} tagged, {unmatched} unmatched"
    );
}
