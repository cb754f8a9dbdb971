//! How the document is read: JSON syntax, numbers from Istio structs, duplicate keys, nulls, nesting.

use super::*;

#[test]
fn invalid_json_reports_position() {
    let message = Config::from_json(b"{\"routes\": [").unwrap_err().0;
    assert!(message.starts_with("invalid JSON: "), "{message}");
    assert!(message.contains("line 1"), "{message}");
    let message = Config::from_json(b"").unwrap_err().0;
    assert!(message.starts_with("invalid JSON: "), "{message}");
    let message = Config::from_json(
        b"{\"routes\": [{\"name\": \"r\", \"backends\": [{\"cluster\": \"a\"}]}]} x",
    )
    .unwrap_err()
    .0;
    assert!(
        message.starts_with("invalid JSON: trailing characters"),
        "{message}"
    );
}

#[test]
fn non_object_config_is_refused_clearly() {
    assert_eq!(
        error_of(json!(5)),
        "expected a JSON object with `routes`, got 5"
    );
}

#[test]
fn numbers_from_istio_structs_are_accepted() {
    // protobuf Struct numbers are doubles; Go's protojson can print them with exponents.
    let config = Config::from_json(
        br#"{"max_shadows_in_flight": 1e+03, "routes": [{"name": "r",
            "backends": [{"cluster": "a", "weight": 50.0}, {"cluster": "b", "weight": 1e+06}],
            "mirrors": [{"cluster": "s", "max_body_bytes": 1.048576e+06, "percent": 2.5e1}]}]}"#,
    )
    .unwrap();
    assert_eq!(config.max_shadows_in_flight, 1000);
    assert_eq!(config.routes[0].backends[1].weight, 1_000_000);
    assert_eq!(config.routes[0].mirrors[0].max_body_bytes, 1_048_576);
    assert_eq!(config.routes[0].mirrors[0].per_million, 250_000);
}

#[test]
fn duplicate_keys_and_nulls() {
    let message = Config::from_json(
        br#"{"routes": [{"name": "r", "name": "s", "backends": [{"cluster": "a"}]}]}"#,
    )
    .unwrap_err()
    .0;
    assert_eq!(message, "route \"r\": name: duplicate field `name`");
    // null means absent, as for an omitted optional field.
    let config = Config::from_json(br#"{"route_header": null, "routes": [{"name": "r", "backends": [{"cluster": "a", "weight": null}]}]}"#).unwrap();
    assert_eq!(config.route_header, DEFAULT_ROUTE_HEADER);
    assert_eq!(config.routes[0].backends[0].weight, 1);
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    let deep = "[".repeat(100_000);
    let in_a_weight =
        format!(r#"{{"routes": [{{"name": "r", "backends": [{{"cluster": "a", "weight": {deep}"#);
    let message = Config::from_json(in_a_weight.as_bytes()).unwrap_err().0;
    assert!(
        message.starts_with("invalid JSON: recursion limit exceeded"),
        "{message}"
    );
    // Read leniently to name the route of an error, the document is still bounded.
    let after_an_error = format!(r#"{{"routes": [{{"name": 5, "x": {deep}"#);
    let message = Config::from_json(after_an_error.as_bytes()).unwrap_err().0;
    assert!(
        message.starts_with("routes[0]: name: expected a string"),
        "{message}"
    );
    let message = Config::from_json(deep.as_bytes()).unwrap_err().0;
    assert_eq!(
        message,
        "expected a JSON object with `routes`, got an array"
    );
}
