//! The import's three outputs: the configuration as JSON, as Envoy's wasm filter
//! `configuration` block, or as Istio WasmPlugins with the VirtualServices that route each
//! backend by the route header.

use super::model::OutConfig;
use super::naming::Destination;
use super::Imported;
use serde_yaml_ng::{Mapping, Value as Yaml};

/// The route header the filter writes by default (`route_header`).
pub const ROUTE_HEADER: &str = "x-split-cluster";

/// The module's placeholder image, as in examples/istio/wasmplugin.yaml.
const IMAGE: &str = "oci://ghcr.io/split-mirror/split-mirror:0.1.0";

pub fn json(config: &OutConfig) -> String {
    let mut text = serde_json::to_string_pretty(config).unwrap_or_default();
    text.push('\n');
    text
}

/// The `configuration` of Envoy's wasm filter (`envoy.extensions.filters.http.wasm.v3.Wasm`
/// `config`, and the network filter's): the JSON as a `StringValue`.
pub fn envoy(config: &OutConfig) -> String {
    let value = serde_json::to_string(config).unwrap_or_default();
    let block = serde_json::json!({"configuration": {
        "@type": "type.googleapis.com/google.protobuf.StringValue",
        "value": value,
    }});
    serde_yaml_ng::to_string(&block).unwrap_or_default()
}

fn map(pairs: Vec<(&str, Yaml)>) -> Yaml {
    let mut mapping = Mapping::new();
    for (key, value) in pairs {
        mapping.insert(Yaml::String(key.into()), value);
    }
    Yaml::Mapping(mapping)
}

fn text(value: &str) -> Yaml {
    Yaml::String(value.to_string())
}

/// A WasmPlugin carrying `config` (HTTP, or the network filter with `split-mirror-tcp`), on
/// the listeners of `ports` when there are some.
fn wasm_plugin(name: &str, namespace: &str, tcp: bool, config: Yaml, ports: &[u16]) -> Yaml {
    let (plugin_name, kind) = if tcp {
        ("split-mirror-tcp", "NETWORK")
    } else {
        ("split-mirror", "HTTP")
    };
    let mut spec = vec![
        ("url", text(IMAGE)),
        ("imagePullPolicy", text("IfNotPresent")),
        ("pluginName", text(plugin_name)),
        ("type", text(kind)),
        ("phase", text("STATS")),
    ];
    if !ports.is_empty() {
        let numbers = ports
            .iter()
            .map(|&p| map(vec![("number", Yaml::Number(p.into()))]))
            .collect();
        spec.push((
            "match",
            Yaml::Sequence(vec![map(vec![("ports", Yaml::Sequence(numbers))])]),
        ));
    }
    spec.push(("failStrategy", text("FAIL_OPEN")));
    spec.push(("pluginConfig", config));
    map(vec![
        ("apiVersion", text("extensions.istio.io/v1alpha1")),
        ("kind", text("WasmPlugin")),
        (
            "metadata",
            map(vec![("name", text(name)), ("namespace", text(namespace))]),
        ),
        ("spec", map(spec)),
    ])
}

/// `--wasmplugin NAME`: the WasmPlugin `NAME` for the HTTP routes, `NAME-tls` (the network
/// filter) for the tcp routes, and for each imported VirtualService the same one with, before
/// each imported entry, one entry per backend that matches the route header's value.
pub fn wasm_plugins(imported: &Imported, name: &str, namespace: &str) -> (String, Vec<String>) {
    let mut documents = Vec::new();
    let mut notes = Vec::new();
    let config = &imported.config;
    let to_yaml = |value: &OutConfig| serde_yaml_ng::to_value(value).unwrap_or(Yaml::Null);
    if !config.routes.is_empty() {
        let http = OutConfig {
            routes: config.routes.clone(),
            tcp_routes: Vec::new(),
        };
        documents.push(wasm_plugin(name, namespace, false, to_yaml(&http), &[]));
    }
    if !config.tcp_routes.is_empty() {
        let tcp = OutConfig {
            routes: Vec::new(),
            tcp_routes: config.tcp_routes.clone(),
        };
        // On the routes' ports only when every route has some (else: on every listener).
        let mut ports: Vec<u16> = Vec::new();
        if config.tcp_routes.iter().all(|r| !r.ports.is_empty()) {
            for port in config.tcp_routes.iter().flat_map(|r| &r.ports) {
                if !ports.contains(port) {
                    ports.push(*port);
                }
            }
        }
        let tls_name = format!("{name}-tls");
        documents.push(wasm_plugin(
            &tls_name,
            namespace,
            true,
            to_yaml(&tcp),
            &ports,
        ));
    }
    for (index, resource) in imported.resources.iter().enumerate() {
        let routes: Vec<_> = config
            .routes
            .iter()
            .filter(|r| r.origin.is_some_and(|(v, _)| v == index))
            .collect();
        if routes.is_empty() {
            let routes_http = matches!(resource.kind.as_str(), "TrafficSplit" | "HTTPRoute")
                || (resource.kind == "Service" && resource.group() == "serving.knative.dev");
            if routes_http {
                notes.push(format!(
                    "note: {}: no VirtualService printed: route each backend by the {ROUTE_HEADER} header yourself (see examples/istio/virtualservice.yaml)",
                    resource.label()
                ));
            }
            continue;
        }
        documents.push(header_routes(&resource.yaml, &routes));
    }
    let text = documents
        .iter()
        .map(|d| quote_start(&serde_yaml_ng::to_string(d).unwrap_or_default()))
        .collect::<Vec<_>>()
        .join("---\n");
    (text, notes)
}

fn destination_yaml(destination: &Destination) -> Yaml {
    let mut pairs = vec![("host", text(&destination.host))];
    if let Some(subset) = &destination.subset {
        pairs.push(("subset", text(subset)));
    }
    if let Some(port) = destination.port {
        pairs.push(("port", map(vec![("number", Yaml::Number(port.into()))])));
    }
    map(pairs)
}

/// The VirtualService with, before each imported `http[]` entry, one entry per backend that
/// matches `x-split-cluster: <cluster>` (and the entry's own path matches) and sends to that
/// backend's destination, with the entry's other fields. The original entries stay after
/// them: they serve requests the filter did not route (no route matched, or it failed open).
fn header_routes(original: &Yaml, routes: &[&super::model::OutRoute]) -> Yaml {
    let mut document = original.clone();
    let key = |k: &str| Yaml::String(k.into());
    let Some(spec) = document.get_mut("spec").and_then(Yaml::as_mapping_mut) else {
        return document;
    };
    let Some(Yaml::Sequence(http)) = spec.get(key("http")).cloned() else {
        return document;
    };
    let mut rewritten = Vec::new();
    for (entry_index, entry) in http.into_iter().enumerate() {
        let mut clusters_done: Vec<String> = Vec::new();
        for route in routes
            .iter()
            .filter(|r| r.origin.map(|(_, e)| e) == Some(entry_index))
        {
            for backend in &route.backends {
                if clusters_done.contains(&backend.cluster) {
                    continue;
                }
                clusters_done.push(backend.cluster.clone());
                let mut copy = entry.as_mapping().cloned().unwrap_or_default();
                for field in [
                    "route",
                    "mirror",
                    "mirrorPercentage",
                    "mirrorPercent",
                    "mirrors",
                    "match",
                    "name",
                ] {
                    copy.remove(key(field));
                }
                let header = map(vec![(
                    ROUTE_HEADER,
                    map(vec![("exact", text(&backend.cluster))]),
                )]);
                let matches: Vec<Yaml> = match entry.get("match").and_then(Yaml::as_sequence) {
                    Some(list) if !list.is_empty() => list
                        .iter()
                        .map(|m| {
                            let mut m = m.as_mapping().cloned().unwrap_or_default();
                            m.insert(key("headers"), header.clone());
                            Yaml::Mapping(m)
                        })
                        .collect(),
                    _ => vec![map(vec![("headers", header.clone())])],
                };
                let mut new_entry = Mapping::new();
                let base = entry
                    .get("name")
                    .and_then(Yaml::as_str)
                    .map_or_else(|| format!("split-{entry_index}"), str::to_string);
                new_entry.insert(
                    key("name"),
                    text(&format!("{base}-{}", clusters_done.len())),
                );
                new_entry.insert(key("match"), Yaml::Sequence(matches));
                new_entry.insert(
                    key("route"),
                    Yaml::Sequence(vec![map(vec![(
                        "destination",
                        destination_yaml(&backend.destination),
                    )])]),
                );
                for (k, v) in copy {
                    new_entry.insert(k, v);
                }
                rewritten.push(Yaml::Mapping(new_entry));
            }
        }
        rewritten.push(entry);
    }
    spec.insert(key("http"), Yaml::Sequence(rewritten));
    document
}

/// A rollout's `start` quoted: unquoted, a YAML 1.1 reader (PyYAML, older tools) reads an RFC
/// 3339 time as a timestamp instead of the string the filter expects.
fn quote_start(text: &str) -> String {
    text.lines()
        .map(|line| {
            let trimmed = line.trim_start();
            match trimmed.strip_prefix("start: ") {
                Some(value) if value.starts_with(|c: char| c.is_ascii_digit()) => {
                    let indent = line.len() - trimmed.len();
                    format!("{}start: \"{value}\"\n", " ".repeat(indent))
                }
                _ => format!("{line}\n"),
            }
        })
        .collect()
}
