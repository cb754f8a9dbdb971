//! Top-level fields and routes: names, hosts, path prefixes, the route header.

use super::*;

#[test]
fn example_from_readme_parses() {
    let config = parse(json!({
        "route_header": "x-split-cluster",
        "routes": [{
            "name": "httpbin",
            "hosts": ["httpbin", "httpbin.httpbin", "httpbin.httpbin.svc.cluster.local"],
            "path_prefix": "/",
            "backends": [
                {"cluster": "httpbin-v1", "weight": 50},
                {"cluster": "httpbin-v2", "weight": 50}
            ]
        }]
    }))
    .unwrap();
    assert_eq!(config.route_header, "x-split-cluster");
    assert_eq!(config.routes[0].hosts.len(), 3);
    assert_eq!(config.routes[0].split.total(), 100);
}

#[test]
fn defaults_apply() {
    let config = parse(one_route(
        json!({"name": "r", "backends": [{"cluster": "a"}]}),
    ))
    .unwrap();
    assert_eq!(config.route_header, DEFAULT_ROUTE_HEADER);
    assert_eq!(config.response_header, None);
    let route = &config.routes[0];
    assert!(route.hosts.is_empty());
    assert_eq!(route.path_prefix, "/");
    assert_eq!(route.backends[0].weight, 1);
}

#[test]
fn response_header_is_checked() {
    let route = json!({"name": "r", "backends": [{"cluster": "a"}]});
    let config =
        parse(json!({"response_header": "X-Split-Backend", "routes": [route.clone()]})).unwrap();
    assert_eq!(config.response_header.as_deref(), Some("x-split-backend"));
    assert_eq!(
        error_of(json!({"response_header": "a b", "routes": [route]})),
        "response_header: expected an HTTP header name, got \"a b\""
    );
}

#[test]
fn route_header_is_lower_cased() {
    let config = parse(json!({"route_header": "X-Canary-Cluster",
        "routes": [{"name": "r", "backends": [{"cluster": "a"}]}]}))
    .unwrap();
    assert_eq!(config.route_header, "x-canary-cluster");
}

#[test]
fn unknown_top_level_key_is_refused() {
    let message = error_of(json!({"route": [], "routes": []}));
    assert!(
        message.starts_with("route: unknown field `route`"),
        "{message}"
    );
}

#[test]
fn route_without_name_is_named_by_index() {
    let message = error_of(json!({"routes": [
        {"name": "ok", "backends": [{"cluster": "a"}]},
        {"backends": [{"cluster": "a"}]}
    ]}));
    assert_eq!(message, "routes[1]: missing field `name`");
    let message = error_of(one_route(
        json!({"name": "", "backends": [{"cluster": "a"}]}),
    ));
    assert_eq!(message, "routes[0]: name: expected a non-empty string");
}

#[test]
fn duplicate_route_names_are_refused() {
    let route = json!({"name": "httpbin", "backends": [{"cluster": "a"}]});
    let message = error_of(json!({"routes": [route.clone(), route]}));
    assert_eq!(
        message,
        "route \"httpbin\": name: duplicate route name (routes[0] and routes[1])"
    );
}

#[test]
fn empty_lists_are_refused() {
    assert_eq!(
        error_of(json!({"routes": []})),
        "routes: expected at least one route, got an empty list"
    );
    assert_eq!(
        error_of(one_route(json!({"name": "r", "backends": []}))),
        "route \"r\": backends: expected at least one backend, got an empty list"
    );
    assert_eq!(
        error_of(one_route(json!({"name": "r"}))),
        "route \"r\": missing field `backends`"
    );
}

#[test]
fn bad_host_and_path_are_refused() {
    let message = error_of(one_route(
        json!({"name": "r", "hosts": ["ok", "a:80"], "backends": [{"cluster": "a"}]}),
    ));
    assert!(
        message.starts_with("route \"r\": hosts[1]: give the host without a port"),
        "{message}"
    );
    let message = error_of(one_route(
        json!({"name": "r", "path_prefix": "api", "backends": [{"cluster": "a"}]}),
    ));
    assert_eq!(
        message,
        "route \"r\": path_prefix: expected a path starting with `/`, got \"api\""
    );
}

#[test]
fn bad_route_header_is_refused() {
    for bad in ["", ":authority", "x split", "Host"] {
        let message = error_of(json!({"route_header": bad,
            "routes": [{"name": "r", "backends": [{"cluster": "a"}]}]}));
        assert!(message.starts_with("route_header: "), "{bad}: {message}");
    }
}

#[test]
fn names_that_cannot_label_metrics_are_refused() {
    assert_eq!(
        error_of(one_route(
            json!({"name": "a;b", "backends": [{"cluster": "v1"}]})
        )),
        "routes[0]: name: \"a;b\" contains `;`, `=` or whitespace, which cannot label metrics"
    );
    assert_eq!(
        error_of(one_route(json!({"name": "r", "backends": [{"cluster": "v 1"}]}))),
        "route \"r\": backends[0].cluster: \"v 1\" contains `;`, `=` or whitespace, which cannot label metrics"
    );
    assert!(error_of(one_route(
        json!({"name": "r", "backends": [{"cluster": "v1"}],
        "mirrors": [{"cluster": "s=1"}]})
    ))
    .starts_with("route \"r\": mirrors[0].cluster: \"s=1\" contains"));
    // Istio's cluster names are fine.
    parse(one_route(json!({"name": "r", "backends": [
        {"cluster": "outbound|8000|v1|httpbin.httpbin.svc.cluster.local"}]})))
    .unwrap();
}

#[test]
fn errors_name_the_route_even_when_its_name_comes_later() {
    let message = Config::from_json(
        br#"{"routes": [{"backends": [{"cluster": "a", "weight": -1}], "name": "late"}]}"#,
    )
    .unwrap_err()
    .0;
    assert_eq!(
        message,
        "route \"late\": backends[0].weight: expected an integer 0..=1000000, got -1"
    );
}
