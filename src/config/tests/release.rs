//! Release control: overrides, tags, sticky keys.

use super::*;

fn route_with(extra: serde_json::Value) -> serde_json::Value {
    let mut route = json!({"name": "r", "hosts": ["httpbin"], "backends": [
        {"cluster": "v1", "weight": 100, "tag": "current"},
        {"cluster": "v2", "weight": 0, "tag": "candidate"}
    ]});
    for (key, value) in extra.as_object().unwrap() {
        route[key] = value.clone();
    }
    one_route(route)
}

#[test]
fn release_rules_compile() {
    let config = parse(route_with(json!({
        "overrides": [{"header": "X-Canary", "value": "always", "backend": "v2"},
                      {"cookie": "canary", "present": true, "backend": "v2"}],
        "tag_header": "x-split-tag",
        "sticky": {"cookie": "uid", "set_cookie": true}
    })))
    .unwrap();
    let route = &config.routes[0];
    assert_eq!(route.overrides.len(), 2);
    assert_eq!(route.overrides[0].backend, 1);
    assert_eq!(
        route.tags,
        vec![("current".into(), 0), ("candidate".into(), 1)]
    );
    assert_eq!(
        route.tagged_hosts,
        vec![
            ("current-httpbin".into(), 0),
            ("candidate-httpbin".into(), 1)
        ]
    );
    assert_eq!(route.tag_header.as_deref(), Some("x-split-tag"));
    assert!(route.sticky.as_ref().unwrap().set_cookie);
}

#[test]
fn override_errors_name_the_field() {
    let cases = [
        (json!({"header": "x-canary", "value": "1", "backend": "v3"}),
         "route \"r\": overrides[0].backend: \"v3\" is not the cluster of one of this route's backends"),
        (json!({"value": "1", "backend": "v2"}),
         "route \"r\": overrides[0].header: expected `header` or `cookie`"),
        (json!({"header": "x", "cookie": "y", "value": "1", "backend": "v2"}),
         "route \"r\": overrides[0].cookie: give `header` or `cookie`, not both"),
        (json!({"header": "x", "value": "1", "prefix": "2", "backend": "v2"}),
         "route \"r\": overrides[0].value: give exactly one of `value`, `prefix` or `present`"),
        (json!({"header": "x", "backend": "v2"}),
         "route \"r\": overrides[0].value: give exactly one of `value`, `prefix` or `present`"),
        (json!({"header": "bad header", "value": "1", "backend": "v2"}),
         "route \"r\": overrides[0].header: expected an HTTP header name, got \"bad header\""),
        (json!({"cookie": "a;b", "value": "1", "backend": "v2"}),
         "route \"r\": overrides[0].cookie: expected a cookie name, got \"a;b\""),
    ];
    for (rule, expected) in cases {
        assert_eq!(error_of(route_with(json!({"overrides": [rule]}))), expected);
    }
    let message = error_of(route_with(
        json!({"overrides": [{"header": "x", "value": "1", "backend": "v2", "weight": 1}]}),
    ));
    assert!(
        message.starts_with("route \"r\": overrides[0].weight: unknown field `weight`"),
        "{message}"
    );
}

#[test]
fn tag_errors_name_the_field() {
    let message = error_of(one_route(json!({"name": "r", "backends": [
        {"cluster": "a", "tag": "blue"}, {"cluster": "b", "tag": "Blue"}]})));
    assert_eq!(
        message,
        "route \"r\": backends[1].tag: \"blue\" is already the tag of backends[0]"
    );
    let message = error_of(one_route(
        json!({"name": "r", "backends": [{"cluster": "a", "tag": "a.b"}]}),
    ));
    assert_eq!(
        message,
        "route \"r\": backends[0].tag: expected a DNS label (letters, digits, `-`), got \"a.b\""
    );
    let message = error_of(route_with(json!({"tag_header": ""})));
    assert_eq!(
        message,
        "route \"r\": tag_header: expected an HTTP header name, got \"\""
    );
}

#[test]
fn sticky_errors_name_the_field() {
    assert_eq!(
        error_of(route_with(
            json!({"sticky": {"header": "x-user", "set_cookie": true}})
        )),
        "route \"r\": sticky.set_cookie: only a `cookie` sticky key can be minted"
    );
    assert_eq!(
        error_of(route_with(json!({"sticky": {}}))),
        "route \"r\": sticky.header: expected `header` or `cookie`"
    );
    assert!(error_of(route_with(json!({"sticky": {"hdr": "x"}})))
        .starts_with("route \"r\": sticky.hdr: unknown field `hdr`"));
}
