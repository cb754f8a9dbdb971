//! A route's `backends`: weights, clusters, unknown keys.

use super::*;

#[test]
fn negative_weight_names_route_and_field() {
    let message = error_of(one_route(json!({"name": "httpbin", "backends": [
        {"cluster": "httpbin-v1", "weight": 50},
        {"cluster": "httpbin-v2", "weight": -5}
    ]})));
    assert_eq!(
        message,
        "route \"httpbin\": backends[1].weight: expected an integer 0..=1000000, got -5"
    );
}

#[test]
fn weight_above_maximum_is_refused() {
    let message = error_of(one_route(
        json!({"name": "r", "backends": [{"cluster": "a", "weight": 1_000_001}]}),
    ));
    assert_eq!(
        message,
        "route \"r\": backends[0].weight: expected an integer 0..=1000000, got 1000001"
    );
}

#[test]
fn fractional_weight_is_refused_but_whole_float_accepted() {
    let message = error_of(one_route(
        json!({"name": "r", "backends": [{"cluster": "a", "weight": 1.5}]}),
    ));
    assert_eq!(
        message,
        "route \"r\": backends[0].weight: expected an integer 0..=1000000, got 1.5"
    );
    let config = parse(one_route(
        json!({"name": "r", "backends": [{"cluster": "a", "weight": 50.0}]}),
    ))
    .unwrap();
    assert_eq!(config.routes[0].backends[0].weight, 50);
}

#[test]
fn weight_of_wrong_type_is_refused() {
    let message = error_of(one_route(
        json!({"name": "r", "backends": [{"cluster": "a", "weight": "50"}]}),
    ));
    assert_eq!(
        message,
        "route \"r\": backends[0].weight: expected an integer 0..=1000000, got \"50\""
    );
}

#[test]
fn unknown_key_in_backend_is_refused() {
    let message = error_of(one_route(
        json!({"name": "r", "backends": [{"cluster": "a", "wieght": 5}]}),
    ));
    assert!(
        message.starts_with("route \"r\": backends[0].wieght: unknown field `wieght`"),
        "{message}"
    );
}

#[test]
fn wrong_type_names_field() {
    let message = error_of(one_route(
        json!({"name": "r", "backends": [{"cluster": 5}]}),
    ));
    assert_eq!(
        message,
        "route \"r\": backends[0].cluster: expected a string, got 5"
    );
    let message = error_of(json!({"routes": {"name": "r"}}));
    assert_eq!(message, "routes: expected an array, got an object");
}

#[test]
fn all_zero_weights_are_refused() {
    let message = error_of(one_route(json!({"name": "r", "backends": [
        {"cluster": "a", "weight": 0}, {"cluster": "b", "weight": 0}
    ]})));
    assert_eq!(
        message,
        "route \"r\": backends: the weights sum to 0; give at least one backend a weight above 0"
    );
}

#[test]
fn empty_or_repeated_cluster_is_refused() {
    assert_eq!(
        error_of(one_route(
            json!({"name": "r", "backends": [{"cluster": ""}]})
        )),
        "route \"r\": backends[0].cluster: expected a non-empty cluster name"
    );
    assert_eq!(
        error_of(one_route(
            json!({"name": "r", "backends": [{"cluster": "a"}, {"cluster": "a"}]})
        )),
        "route \"r\": backends[1].cluster: \"a\" is already backends[0]"
    );
}
