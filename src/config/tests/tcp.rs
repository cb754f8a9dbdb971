//! The network filter's `tcp_routes`.

use super::*;

fn tcp(route: serde_json::Value) -> serde_json::Value {
    json!({"tcp_routes": [route]})
}

fn backends() -> serde_json::Value {
    json!([{"cluster": "stable", "weight": 80}, {"cluster": "canary", "weight": 20}])
}

#[test]
fn issue_example_parses() {
    let config = parse(json!({"tcp_routes": [{
        "name": "rollouts-demo-tls",
        "sni_hosts": ["rollouts-demo-vsvc.local"],
        "backends": backends(),
        "sticky": {"source_address": true}
    }]}))
    .unwrap();
    let route = &config.tcp_routes[0];
    assert_eq!(route.clusters, ["stable", "canary"]);
    assert_eq!(route.split.total(), 100);
    assert!(route.sticky_source_address);
    assert!(config.routes.is_empty());
    assert!(config.check_kind(FilterKind::Tcp).is_ok());
}

#[test]
fn one_json_serves_both_filters() {
    let config = parse(json!({
        "routes": [{"name": "web", "backends": [{"cluster": "a"}]}],
        "tcp_routes": [{"name": "tls", "backends": [{"cluster": "a"}]}]
    }))
    .unwrap();
    assert!(config.check_kind(FilterKind::Http).is_ok());
    assert!(config.check_kind(FilterKind::Tcp).is_ok());
    assert!(!config.tcp_routes[0].sticky_source_address);
}

#[test]
fn network_filter_without_tcp_routes_is_refused() {
    let config = parse(one_route(
        json!({"name": "web", "backends": [{"cluster": "a"}]}),
    ))
    .unwrap();
    let message = config.check_kind(FilterKind::Tcp).unwrap_err().0;
    assert!(
        message.starts_with("tcp_routes: missing: loaded as the network filter"),
        "{message}"
    );
}

#[test]
fn http_filter_without_routes_is_refused() {
    let config = parse(tcp(json!({"name": "tls", "backends": backends()}))).unwrap();
    let message = config.check_kind(FilterKind::Http).unwrap_err().0;
    assert!(
        message.starts_with("routes: missing: the HTTP filter needs `routes`"),
        "{message}"
    );
}

#[test]
fn neither_routes_nor_tcp_routes_is_refused() {
    let message = error_of(json!({"route_header": "x-a"}));
    assert!(message.starts_with("missing field `routes`"), "{message}");
    assert!(message.contains("tcp_routes"), "{message}");
}

#[test]
fn empty_lists_are_refused() {
    assert_eq!(
        error_of(json!({"tcp_routes": []})),
        "tcp_routes: expected at least one route, got an empty list"
    );
    let tcp_route = json!([{"name": "tls", "backends": backends()}]);
    assert_eq!(
        error_of(json!({"routes": [], "tcp_routes": tcp_route})),
        "routes: expected at least one route, got an empty list"
    );
    assert_eq!(
        error_of(tcp(json!({"name": "tls", "backends": []}))),
        "tcp_route \"tls\": backends: expected at least one backend, got an empty list"
    );
    let message = error_of(tcp(
        json!({"name": "tls", "sni_hosts": [], "backends": backends()}),
    ));
    assert!(
        message.starts_with("tcp_route \"tls\": sni_hosts: expected at least one host"),
        "{message}"
    );
}

#[test]
fn weight_errors_name_the_route_and_field() {
    let message = error_of(tcp(
        json!({"name": "tls", "backends": [{"cluster": "a", "weight": -5}]}),
    ));
    assert_eq!(
        message,
        "tcp_route \"tls\": backends[0].weight: expected an integer 0..=1000000, got -5"
    );
    let message = error_of(tcp(
        json!({"name": "tls", "backends": [{"cluster": "a", "weight": 1000001}]}),
    ));
    assert!(
        message
            .starts_with("tcp_route \"tls\": backends[0].weight: expected an integer 0..=1000000"),
        "{message}"
    );
    let message = error_of(tcp(json!({"name": "tls", "backends": [
        {"cluster": "a", "weight": 0}, {"cluster": "b", "weight": 0}]})));
    assert_eq!(message, "tcp_route \"tls\": backends: the weights sum to 0; give at least one backend a weight above 0");
}

#[test]
fn names_are_unique_and_labels() {
    let route = json!({"name": "tls", "backends": backends()});
    assert_eq!(
        error_of(json!({"tcp_routes": [route.clone(), route]})),
        "tcp_route \"tls\": name: duplicate route name (tcp_routes[0] and tcp_routes[1])"
    );
    assert_eq!(
        error_of(tcp(json!({"name": "a b", "backends": backends()}))),
        "tcp_routes[0]: name: \"a b\" contains `;`, `=` or whitespace, which cannot label metrics"
    );
    assert_eq!(
        error_of(tcp(
            json!({"name": "tls", "backends": [{"cluster": "a"}, {"cluster": "a"}]})
        )),
        "tcp_route \"tls\": backends[1].cluster: \"a\" is already backends[0]"
    );
}

#[test]
fn unknown_keys_are_refused_with_the_route_name() {
    let message = error_of(tcp(
        json!({"name": "tls", "hosts": ["a"], "backends": backends()}),
    ));
    assert!(
        message.starts_with("tcp_route \"tls\": hosts: unknown field `hosts`"),
        "{message}"
    );
    let message = error_of(tcp(
        json!({"name": "tls", "backends": [{"cluster": "a", "tag": "x"}]}),
    ));
    assert!(
        message.starts_with("tcp_route \"tls\": backends[0].tag: unknown field `tag`"),
        "{message}"
    );
    let message = error_of(tcp(
        json!({"name": "tls", "backends": backends(), "sticky": {"header": "x"}}),
    ));
    assert!(
        message.starts_with("tcp_route \"tls\": sticky.header: unknown field `header`"),
        "{message}"
    );
}

#[test]
fn bad_sni_hosts_are_refused() {
    let message = error_of(tcp(
        json!({"name": "tls", "sni_hosts": ["a.*.com"], "backends": backends()}),
    ));
    assert!(
        message.starts_with("tcp_route \"tls\": sni_hosts[0]: only a leading"),
        "{message}"
    );
    let message = error_of(tcp(
        json!({"name": "tls", "sni_hosts": ["a.local:443"], "backends": backends()}),
    ));
    assert!(
        message.starts_with("tcp_route \"tls\": sni_hosts[0]: give the host without a port"),
        "{message}"
    );
}

#[test]
fn sticky_needs_source_address() {
    let message = error_of(tcp(
        json!({"name": "tls", "backends": backends(), "sticky": {}}),
    ));
    assert!(
        message.starts_with("tcp_route \"tls\": sticky: missing field `source_address`"),
        "{message}"
    );
    let config = parse(tcp(
        json!({"name": "tls", "backends": backends(), "sticky": {"source_address": false}}),
    ))
    .unwrap();
    assert!(!config.tcp_routes[0].sticky_source_address);
}
