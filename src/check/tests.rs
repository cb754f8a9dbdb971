use super::*;

#[test]
fn shipped_schema_is_current() {
    let shipped = std::fs::read_to_string(SCHEMA_PATH).unwrap_or_default();
    assert!(
        shipped == schema(),
        "{SCHEMA_PATH} is stale: run `make schema` (cargo run --bin split-mirror -- schema > {SCHEMA_PATH})"
    );
}

#[test]
fn schema_carries_id_descriptions_defaults_and_ranges() {
    let schema: Value = serde_json::from_str(&schema()).unwrap();
    assert_eq!(schema["$id"], SCHEMA_ID);
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(schema["title"], "split-mirror configuration");
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(
        schema["properties"]["route_header"]["default"],
        "x-split-cluster"
    );
    assert_eq!(schema["$defs"]["Route"]["title"], "Route");
    let backend = &schema["$defs"]["Backend"];
    assert_eq!(backend["additionalProperties"], false);
    assert!(backend["properties"]["weight"]["description"]
        .as_str()
        .unwrap()
        .starts_with("Relative weight"));
    assert_eq!(backend["properties"]["weight"]["default"], 1);
    let weight = backend["properties"]["weight"].to_string();
    assert!(weight.contains("\"maximum\":1000000"), "{weight}");
}

#[test]
fn json_file_is_one_configuration_or_a_scenario() {
    let config = r#"{"routes": [{"name": "r", "backends": [{"cluster": "a"}]}]}"#;
    let found = configurations("plugin.json", config).unwrap();
    assert_eq!(
        found,
        vec![Found {
            place: String::new(),
            json: config.into(),
            kind: None
        }]
    );
    let scenario =
        format!(r#"{{"title": "t", "steps": [{{"config": {config}}}, {{"config": {config}}}]}}"#);
    let found = configurations("scenario.json", &scenario).unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!(found[1].place, "steps[1].config");
    assert!(configurations("bad.json", "{")
        .unwrap_err()
        .starts_with("invalid JSON"));
}

#[test]
fn yaml_finds_wasm_plugins_and_envoy_filters() {
    let yaml = r#"
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: {name: split}
spec:
  pluginConfig:
    routes:
    - name: r
      backends: [{cluster: a, weight: 50.0}]
---
static_resources:
  listeners:
  - filters:
    - name: envoy.filters.http.wasm
      typed_config:
        config:
          root_id: split-mirror
          configuration:
            "@type": type.googleapis.com/google.protobuf.StringValue
            value: '{"routes": [{"name": "e", "backends": [{"cluster": "b"}]}]}'
"#;
    let found = configurations("x.yaml", yaml).unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].place, "WasmPlugin split");
    assert!(Config::from_json(found[0].json.as_bytes()).is_ok());
    assert!(
        found[1].place.starts_with("document 1"),
        "{}",
        found[1].place
    );
    assert!(found[1].json.contains("\"e\""));
    assert!(configurations("empty.yaml", "a: 1\n").is_err());
}

#[test]
fn summary_shows_shares_tags_overrides_sticky_and_mirrors() {
    let config = Config::from_json(
        br#"{"routes": [{"name": "httpbin", "hosts": ["httpbin", "*.example.com"],
        "backends": [{"cluster": "v1", "weight": 90, "tag": "current"},
                     {"cluster": "v2", "weight": 10, "tag": "candidate"}],
        "overrides": [{"header": "x-canary", "value": "always", "backend": "v2"}],
        "sticky": {"cookie": "user", "set_cookie": true},
        "mirrors": [{"cluster": "shadow", "percent": 12.5, "methods": ["GET"]}]}]}"#,
    )
    .unwrap();
    let text = summary(&config);
    for expected in [
        "route \"httpbin\": httpbin, *.example.com; path prefix /",
        "backends: v1 90.00 % (tag current), v2 10.00 % (tag candidate)",
        "tagged hosts: current-httpbin -> v1, candidate-httpbin -> v2",
        "override: header x-canary = \"always\" -> v2",
        "sticky: cookie user (minted when missing)",
        "mirror: shadow 12.5 % (timeout 1000 ms, GET)",
    ] {
        assert!(text.contains(expected), "{expected:?} not in\n{text}");
    }
}

#[test]
fn plugin_name_and_root_id_choose_the_filter_kind() {
    let yaml = r#"
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: {name: tls}
spec:
  pluginName: split-mirror-tcp
  type: NETWORK
  pluginConfig:
    routes: [{name: web, backends: [{cluster: a}]}]
---
static_resources:
  listeners:
  - filter_chains:
    - filters:
      - typed_config:
          config:
            root_id: split-mirror-tcp
            configuration:
              "@type": type.googleapis.com/google.protobuf.StringValue
              value: '{"tcp_routes": [{"name": "t", "backends": [{"cluster": "a"}]}]}'
"#;
    let found = configurations("x.yaml", yaml).unwrap();
    assert_eq!(found[0].kind, Some(FilterKind::Tcp));
    let error = validate(&found[0]).unwrap_err().0;
    assert!(error.starts_with("tcp_routes: missing"), "{error}");
    assert_eq!(found[1].kind, Some(FilterKind::Tcp));
    let config = validate(&found[1]).unwrap();
    let text = summary(&config);
    assert_eq!(
        text,
        "tcp_route \"t\": any connection\n  backends: a 100.00 %\n"
    );
}
