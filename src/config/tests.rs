use super::*;
use serde_json::json;

fn parse(value: serde_json::Value) -> Result<Config, ConfigError> {
    Config::from_json(value.to_string().as_bytes())
}

fn error_of(value: serde_json::Value) -> String {
    parse(value).unwrap_err().0
}

fn one_route(route: serde_json::Value) -> serde_json::Value {
    json!({"routes": [route]})
}

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
fn unknown_top_level_key_is_refused() {
    let message = error_of(json!({"route": [], "routes": []}));
    assert!(
        message.starts_with("route: unknown field `route`"),
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

mod tcp_routes {
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
            message.starts_with(
                "tcp_route \"tls\": backends[0].weight: expected an integer 0..=1000000"
            ),
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
}
