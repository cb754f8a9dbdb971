//! A route's `mirrors`: defaults, sampling percent, fields, mirrors Envoy sends.

use super::*;

fn mirror_error(mirror: serde_json::Value) -> String {
    error_of(one_route(
        json!({"name": "r", "backends": [{"cluster": "a"}], "mirrors": [mirror]}),
    ))
}

fn mirror_of(mirror: serde_json::Value) -> Mirror {
    let config = parse(one_route(
        json!({"name": "r", "backends": [{"cluster": "a"}], "mirrors": [mirror]}),
    ))
    .unwrap();
    config.routes[0].mirrors[0].clone()
}

#[test]
fn mirror_defaults_match_envoy_and_istio() {
    let mirror = mirror_of(json!({"cluster": "shadow"}));
    assert_eq!(mirror.per_million, 1_000_000);
    assert_eq!(mirror.host_suffix, "-shadow");
    assert_eq!(mirror.timeout_ms, 1000);
    assert_eq!(mirror.max_body_bytes, 1024 * 1024);
    assert_eq!(mirror.methods, None);
}

#[test]
fn mirror_percent_has_one_in_a_million_precision() {
    assert_eq!(
        mirror_of(json!({"cluster": "s", "percent": 20})).per_million,
        200_000
    );
    assert_eq!(
        mirror_of(json!({"cluster": "s", "percent": 0.0001})).per_million,
        1
    );
    assert_eq!(
        mirror_of(json!({"cluster": "s", "percent": 0.5})).per_million,
        5_000
    );
    assert_eq!(
        mirror_of(json!({"cluster": "s", "percent": 33.3333})).per_million,
        333_333
    );
    assert_eq!(
        mirror_of(json!({"cluster": "s", "percent": 0})).per_million,
        0
    );
    assert_eq!(
        mirror_of(json!({"cluster": "s", "percent": 100})).per_million,
        1_000_000
    );
}

#[test]
fn bad_mirror_percent_is_refused() {
    assert_eq!(
        mirror_error(json!({"cluster": "s", "percent": 101})),
        "route \"r\": mirrors[0].percent: expected a number 0..=100, got 101"
    );
    assert_eq!(
        mirror_error(json!({"cluster": "s", "percent": -1})),
        "route \"r\": mirrors[0].percent: expected a number 0..=100, got -1"
    );
    assert!(mirror_error(json!({"cluster": "s", "percent": 0.00001}))
        .starts_with("route \"r\": mirrors[0].percent: expected at most 4 decimals"));
    assert_eq!(
        mirror_error(json!({"cluster": "s", "percent": "20"})),
        "route \"r\": mirrors[0].percent: expected a number 0..=100, got \"20\""
    );
    // JSON has no NaN: a literal NaN is a syntax error.
    let message = Config::from_json(
        br#"{"routes":[{"name":"r","backends":[{"cluster":"a"}],"mirrors":[{"cluster":"s","percent":NaN}]}]}"#,
    )
    .unwrap_err()
    .0;
    assert!(message.starts_with("invalid JSON"), "{message}");
}

#[test]
fn bad_mirror_fields_are_refused() {
    assert!(mirror_error(json!({"cluster": "s", "percnt": 5}))
        .starts_with("route \"r\": mirrors[0].percnt: unknown field `percnt`"));
    assert_eq!(
        mirror_error(json!({"cluster": ""})),
        "route \"r\": mirrors[0].cluster: expected a non-empty cluster name"
    );
    assert_eq!(
        mirror_error(json!({"cluster": "s", "timeout_ms": 0})),
        "route \"r\": mirrors[0].timeout_ms: expected an integer 1..=600000, got 0"
    );
    assert_eq!(
        mirror_error(json!({"cluster": "s", "max_body_bytes": -1})),
        "route \"r\": mirrors[0].max_body_bytes: expected an integer 0..=67108864, got -1"
    );
    assert_eq!(
        mirror_error(json!({"cluster": "s", "host_suffix": "/x"})),
        "route \"r\": mirrors[0].host_suffix: expected letters, digits, `-` or `.`, got \"/x\""
    );
    assert_eq!(
        mirror_error(json!({"cluster": "s", "methods": []})),
        "route \"r\": mirrors[0].methods: expected at least one method (omit `methods` to mirror every method)"
    );
    assert_eq!(
        mirror_error(json!({"cluster": "s", "methods": ["GET", "G T"]})),
        "route \"r\": mirrors[0].methods[1]: expected an HTTP method such as \"GET\", got \"G T\""
    );
    let message = error_of(one_route(
        json!({"name": "r", "backends": [{"cluster": "a"}],
        "mirrors": [{"cluster": "s"}, {"cluster": "s"}]}),
    ));
    assert_eq!(
        message,
        "route \"r\": mirrors[1].cluster: \"s\" is already mirrors[0]"
    );
}

#[test]
fn mirror_methods_are_upper_cased_and_suffix_may_be_empty() {
    let mirror = mirror_of(json!({"cluster": "s", "methods": ["get", "Head"], "host_suffix": ""}));
    assert_eq!(
        mirror.methods,
        Some(vec!["GET".to_string(), "HEAD".to_string()])
    );
    assert_eq!(mirror.host_suffix, "");
}

#[test]
fn a_mirror_envoy_sends_names_its_header_and_keeps_only_sampling_options() {
    let mirror = mirror_of(json!({"cluster": "s", "percent": 10, "methods": ["GET"],
        "cluster_header": "X-Split-Mirror-Cluster"}));
    assert_eq!(
        mirror.cluster_header.as_deref(),
        Some("x-split-mirror-cluster")
    );
    assert_eq!(mirror.per_million, 100_000);
    assert_eq!(mirror_of(json!({"cluster": "s"})).cluster_header, None);
    for option in [
        json!({"timeout_ms": 50}),
        json!({"max_body_bytes": 10}),
        json!({"host_suffix": "-x"}),
    ] {
        let mut raw = json!({"cluster": "s", "cluster_header": "x-m"});
        let (name, value) = option.as_object().unwrap().iter().next().unwrap();
        raw[name] = value.clone();
        assert_eq!(
            mirror_error(raw),
            format!("route \"r\": mirrors[0].{name}: not used with `cluster_header`: Envoy's request \
                mirror policy sends the copy (set the timeout on the route, the body limit with the \
                connection manager)")
        );
    }
    assert_eq!(
        mirror_error(json!({"cluster": "s", "cluster_header": "bad header"})),
        "route \"r\": mirrors[0].cluster_header: expected an HTTP header name, got \"bad header\""
    );
    let two = error_of(one_route(
        json!({"name": "r", "backends": [{"cluster": "a"}],
        "mirrors": [{"cluster": "s", "cluster_header": "x-m"}, {"cluster": "t", "cluster_header": "X-M"}]}),
    ));
    assert_eq!(
        two,
        "route \"r\": mirrors[1].cluster_header: already the header of mirrors[0]: Envoy mirrors one \
         cluster per header"
    );
    let clash = error_of(one_route(
        json!({"name": "r", "backends": [{"cluster": "a"}],
        "mirrors": [{"cluster": "s", "cluster_header": "x-split-cluster"}]}),
    ));
    assert_eq!(
        clash,
        "route \"r\": mirrors[0].cluster_header: is the route_header: choose another name"
    );
}

#[test]
fn max_shadows_in_flight_is_bounded() {
    let route = json!({"name": "r", "backends": [{"cluster": "a"}]});
    let config = parse(json!({"routes": [route.clone()]})).unwrap();
    assert_eq!(config.max_shadows_in_flight, DEFAULT_MAX_SHADOWS_IN_FLIGHT);
    let message = error_of(json!({"max_shadows_in_flight": 0, "routes": [route]}));
    assert_eq!(
        message,
        "max_shadows_in_flight: expected an integer 1..=1000000, got 0"
    );
}
