use super::*;
use serde_json::json;
use std::collections::HashMap;

fn config(value: serde_json::Value) -> Config {
    Config::from_json(value.to_string().as_bytes()).unwrap()
}

/// Test double for the host's request headers; counts lookups.
#[derive(Default)]
struct Headers {
    values: HashMap<String, Vec<u8>>,
    lookups: usize,
}

impl Headers {
    fn with(pairs: &[(&str, &str)]) -> Self {
        Headers {
            values: pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect(),
            lookups: 0,
        }
    }
}

impl RequestHeaders for Headers {
    fn header(&mut self, name: &str) -> Option<Vec<u8>> {
        self.lookups += 1;
        self.values.get(name).cloned()
    }
}

fn matched<'c>(config: &'c Config, authority: &str, path: &str) -> Option<&'c str> {
    let request = RequestView {
        authority: authority.as_bytes(),
        path: path.as_bytes(),
    };
    config.match_route(&request).map(|m| m.route.name.as_str())
}

fn two_routes() -> Config {
    config(json!({"routes": [
        {"name": "api", "hosts": ["httpbin"], "path_prefix": "/api",
         "backends": [{"cluster": "api-v1"}]},
        {"name": "httpbin", "hosts": ["httpbin", "*.example.com", "[::1]"],
         "backends": [{"cluster": "v1"}]},
        {"name": "catch-all", "backends": [{"cluster": "v1"}]}
    ]}))
}

#[test]
fn first_matching_route_wins() {
    let config = two_routes();
    assert_eq!(matched(&config, "httpbin", "/api/x"), Some("api"));
    assert_eq!(matched(&config, "httpbin", "/status"), Some("httpbin"));
    assert_eq!(matched(&config, "other", "/api"), Some("catch-all"));
}

#[test]
fn host_match_ignores_port_and_case() {
    let config = two_routes();
    assert_eq!(matched(&config, "HTTPBIN:10000", "/"), Some("httpbin"));
    assert_eq!(matched(&config, "[::1]:8080", "/"), Some("httpbin"));
    assert_eq!(matched(&config, "a.Example.COM:443", "/"), Some("httpbin"));
}

#[test]
fn no_route_when_nothing_matches() {
    let config = config(json!({"routes": [
        {"name": "httpbin", "hosts": ["httpbin"], "backends": [{"cluster": "v1"}]}
    ]}));
    assert_eq!(matched(&config, "other", "/"), None);
    assert_eq!(matched(&config, "", "/"), None);
    assert_eq!(matched(&config, "a:b:c", "/"), None);
}

#[test]
fn path_prefix_is_a_byte_prefix_of_path_with_query() {
    let config = config(json!({"routes": [
        {"name": "r", "path_prefix": "/api", "backends": [{"cluster": "v1"}]}
    ]}));
    assert_eq!(matched(&config, "h", "/api?x=1"), Some("r"));
    assert_eq!(matched(&config, "h", "/apix"), Some("r"));
    assert_eq!(matched(&config, "h", "/ap"), None);
    assert_eq!(matched(&config, "h", ""), None);
}

#[test]
fn default_prefix_matches_without_a_path_and_hosts_need_the_authority() {
    let any = config(json!({"routes": [{"name": "r", "backends": [{"cluster": "v1"}]}]}));
    assert!(!any.needs_path && !any.needs_authority);
    assert_eq!(matched(&any, "", ""), Some("r"));
    assert_eq!(matched(&any, "", "*"), Some("r"));
    let hosts =
        config(json!({"routes": [{"name": "r", "hosts": ["h"], "backends": [{"cluster": "v1"}]}]}));
    assert!(!hosts.needs_path && hosts.needs_authority);
    assert!(two_routes().needs_path);
}

fn release_route() -> Config {
    config(json!({"routes": [{
        "name": "httpbin",
        "hosts": ["httpbin", "httpbin.default.svc", "*.example.com"],
        "backends": [
            {"cluster": "v1", "weight": 100, "tag": "current"},
            {"cluster": "v2", "weight": 0, "tag": "Candidate"}
        ],
        "overrides": [
            {"header": "x-canary", "value": "always", "backend": "v2"},
            {"cookie": "canary", "value": "1", "backend": "v2"},
            {"header": "x-beta", "prefix": "beta-", "backend": "v2"}
        ],
        "tag_header": "x-split-tag",
        "sticky": {"header": "x-user-id"}
    }]}))
}

fn decide(config: &Config, authority: &str, headers: &[(&str, &str)]) -> Decision {
    let request = RequestView {
        authority: authority.as_bytes(),
        path: b"/",
    };
    let found = config.match_route(&request).unwrap();
    let mut rng = Rng::from_seed(9);
    found
        .route
        .decide(found.tagged_backend, &mut Headers::with(headers), &mut rng)
}

#[test]
fn weights_decide_without_release_rules() {
    let config = config(json!({"routes": [{"name": "r", "backends": [
        {"cluster": "a", "weight": 0}, {"cluster": "b", "weight": 3}
    ]}]}));
    let decision = decide(&config, "h", &[]);
    assert_eq!(
        decision,
        Decision {
            backend: 1,
            reason: Reason::Weight,
            mint_cookie: None
        }
    );
}

#[test]
fn route_without_rules_reads_no_header() {
    let config = config(json!({"routes": [{"name": "r", "backends": [{"cluster": "a"}]}]}));
    let found = config
        .match_route(&RequestView {
            authority: b"h",
            path: b"/",
        })
        .unwrap();
    let mut headers = Headers::default();
    found
        .route
        .decide(None, &mut headers, &mut Rng::from_seed(1));
    assert_eq!(headers.lookups, 0);
}

#[test]
fn override_header_and_cookie_reach_a_weight_zero_backend() {
    let config = release_route();
    let by_header = decide(&config, "httpbin", &[("x-canary", "always")]);
    assert_eq!((by_header.backend, by_header.reason), (1, Reason::Override));
    let by_cookie = decide(&config, "httpbin", &[("cookie", "a=b; canary=1")]);
    assert_eq!((by_cookie.backend, by_cookie.reason), (1, Reason::Override));
    let by_prefix = decide(&config, "httpbin", &[("x-beta", "beta-42")]);
    assert_eq!((by_prefix.backend, by_prefix.reason), (1, Reason::Override));
    let no_match = decide(
        &config,
        "httpbin",
        &[("x-canary", "ALWAYS"), ("cookie", "canary=0")],
    );
    assert_eq!(no_match.backend, 0);
}

#[test]
fn tagged_host_selects_its_backend_and_still_matches_the_route() {
    let config = release_route();
    for host in [
        "candidate-httpbin:10000",
        "CANDIDATE-httpbin",
        "candidate-httpbin.default.svc",
    ] {
        let decision = decide(&config, host, &[]);
        assert_eq!(
            (decision.backend, decision.reason),
            (1, Reason::Tag),
            "{host}"
        );
    }
    assert_eq!(decide(&config, "current-httpbin", &[]).backend, 0);
    // Unknown tags in the host do not match the route at all.
    let request = RequestView {
        authority: b"nightly-httpbin",
        path: b"/",
    };
    assert!(config.match_route(&request).is_none());
    // Wildcard hosts make no tagged hosts.
    assert!(config.routes[0]
        .tagged_hosts
        .iter()
        .all(|(h, _)| !h.contains('*')));
}

#[test]
fn tag_header_selects_and_unknown_tag_falls_back() {
    let config = release_route();
    let tagged = decide(&config, "httpbin", &[("x-split-tag", "candidate")]);
    assert_eq!((tagged.backend, tagged.reason), (1, Reason::Tag));
    let unknown = decide(
        &config,
        "httpbin",
        &[("x-split-tag", "nightly"), ("x-user-id", "u1")],
    );
    assert_eq!(
        unknown.reason,
        Reason::Sticky,
        "an unknown tag goes on to the next rules"
    );
    let unknown = decide(&config, "httpbin", &[("x-split-tag", "nightly")]);
    assert_eq!((unknown.backend, unknown.reason), (0, Reason::Fallback));
}

#[test]
fn sticky_key_decides_and_missing_key_falls_back() {
    let config = release_route();
    let sticky = decide(&config, "httpbin", &[("x-user-id", "u-1")]);
    assert_eq!((sticky.backend, sticky.reason), (0, Reason::Sticky));
    let empty = decide(&config, "httpbin", &[("x-user-id", "")]);
    assert_eq!(empty.reason, Reason::Fallback);
    let missing = decide(&config, "httpbin", &[]);
    assert_eq!(missing.reason, Reason::Fallback);
}

#[test]
fn sticky_cookie_can_be_minted_and_then_sticks() {
    let config = config(json!({"routes": [{"name": "r", "backends": [
        {"cluster": "a", "weight": 50}, {"cluster": "b", "weight": 50}],
        "sticky": {"cookie": "split", "set_cookie": true}}]}));
    let minted = decide(&config, "h", &[]);
    let key = minted.mint_cookie.clone().unwrap();
    assert_eq!(key.len(), 32);
    assert_eq!(minted.reason, Reason::Sticky);
    let cookie = format!("split={key}");
    let again = decide(&config, "h", &[("cookie", &cookie)]);
    assert_eq!((again.backend, again.mint_cookie), (minted.backend, None));
}
