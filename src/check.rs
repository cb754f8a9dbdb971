//! `split-mirror check`: the filter's own validation (`Config::from_json`, the code Envoy runs
//! in `on_configure`) on configuration files, without an Envoy, for GitOps pipelines; and
//! `split-mirror schema`: the published JSON Schema, generated from the types the filter reads.
//! Native only: nothing here enters the wasm module.

use crate::config::raw::RawConfig;
use crate::config::{Config, FilterKind};
use crate::keys::{KeySource, ValueMatch};
use crate::rollout::guard::{Guard, SILENT_ANSWERS};
use crate::rollout::time::format_rfc3339;
use crate::rollout::Rollout;
use serde::Deserialize;
use serde_json::Value;
use std::fmt::Write as _;

/// Where the published schema lives in the repository, and its `$id`.
pub const SCHEMA_PATH: &str = "schema/split-mirror.schema.json";
pub const SCHEMA_ID: &str =
    "https://raw.githubusercontent.com/split-mirror/split-mirror/main/schema/split-mirror.schema.json";

/// The JSON Schema (draft 2020-12) of the configuration, as shipped at [`SCHEMA_PATH`].
pub fn schema() -> String {
    let mut schema = schemars::schema_for!(RawConfig);
    schema.insert("$id".into(), Value::String(SCHEMA_ID.into()));
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

/// One configuration found in a file: where it is (`""` for the whole file, else e.g.
/// `WasmPlugin httpbin-split` or `steps[2].config`) and its JSON text.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub place: String,
    pub json: String,
    /// The filter kind the place loads it as (`root_id` / `pluginName` `split-mirror-tcp`: the
    /// network filter); `None` for a bare JSON file, which either kind may load.
    pub kind: Option<FilterKind>,
}

/// The filter's validation of one configuration: `Config::from_json`, then what its kind
/// needs (`routes` for the HTTP filter, `tcp_routes` for the network filter).
pub fn validate(found: &Found) -> Result<Config, crate::config::ConfigError> {
    let config = Config::from_json(found.json.as_bytes())?;
    if let Some(kind) = found.kind {
        config.check_kind(kind)?;
    }
    Ok(config)
}

/// The configurations in a file. `.json`: the file itself, or each `steps[].config` of a
/// harness scenario. `.yaml`/`.yml`: the `pluginConfig` of every WasmPlugin, and the
/// `configuration` string of every Envoy wasm filter (`StringValue`). The error says why the
/// file could not be read.
pub fn configurations(name: &str, text: &str) -> Result<Vec<Found>, String> {
    if name.ends_with(".yaml") || name.ends_with(".yml") {
        let mut found = Vec::new();
        for (index, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
            let value = serde_yaml_ng::Value::deserialize(document)
                .map_err(|e| format!("invalid YAML: {e}"))?;
            let value: Value = serde_json::to_value(value)
                .map_err(|e| format!("YAML document {index}: not JSON-compatible: {e}"))?;
            from_yaml_document(&value, index, &mut found);
        }
        if found.is_empty() {
            return Err(
                "no WasmPlugin pluginConfig and no Envoy wasm `configuration` found".into(),
            );
        }
        return Ok(found);
    }
    let value: Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    match value.get("steps").and_then(Value::as_array) {
        Some(steps) if value.get("routes").is_none() => Ok(steps
            .iter()
            .enumerate()
            .filter_map(|(i, step)| {
                Some(Found {
                    place: format!("steps[{i}].config"),
                    json: step.get("config")?.to_string(),
                    kind: None,
                })
            })
            .collect()),
        // The file's own bytes, so errors and numbers are exactly what Envoy would see.
        _ => Ok(vec![Found {
            place: String::new(),
            json: text.to_string(),
            kind: None,
        }]),
    }
}

fn from_yaml_document(document: &Value, index: usize, found: &mut Vec<Found>) {
    if document.get("kind").and_then(Value::as_str) == Some("WasmPlugin") {
        let name = document
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("(unnamed)");
        let plugin_name = document.pointer("/spec/pluginName").and_then(Value::as_str);
        if let Some(config) = document.pointer("/spec/pluginConfig") {
            found.push(Found {
                place: format!("WasmPlugin {name}"),
                json: config.to_string(),
                kind: Some(FilterKind::from_root_id(
                    plugin_name.unwrap_or_default().as_bytes(),
                )),
            });
        }
        return;
    }
    let mut path = format!("document {index}");
    envoy_configurations(document, &mut path, found);
}

/// Every `configuration: {"@type": ...StringValue, value: "..."}` below `value`: the plugin
/// configuration of an Envoy wasm filter.
fn envoy_configurations(value: &Value, path: &mut String, found: &mut Vec<Found>) {
    match value {
        Value::Object(map) => {
            if let Some(text) = map
                .get("configuration")
                .filter(|c| {
                    c.get("@type").and_then(Value::as_str)
                        == Some("type.googleapis.com/google.protobuf.StringValue")
                })
                .and_then(|c| c.get("value"))
                .and_then(Value::as_str)
            {
                let filter = map
                    .get("name")
                    .or_else(|| map.get("root_id"))
                    .and_then(Value::as_str)
                    .unwrap_or("wasm filter");
                let root_id = map.get("root_id").and_then(Value::as_str);
                found.push(Found {
                    place: format!("{path}: {filter}"),
                    json: text.to_string(),
                    kind: Some(FilterKind::from_root_id(
                        root_id.unwrap_or_default().as_bytes(),
                    )),
                });
            }
            for (key, child) in map {
                let len = path.len();
                let _ = write!(path, ".{key}");
                envoy_configurations(child, path, found);
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                let len = path.len();
                let _ = write!(path, "[{i}]");
                envoy_configurations(child, path, found);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// What the filter will do with a valid configuration, route by route.
pub fn summary(config: &Config) -> String {
    let mut out = String::new();
    if !config.routes.is_empty() {
        let _ = writeln!(out, "route header: {}", config.route_header);
    }
    for route in &config.routes {
        let hosts: Vec<String> = route.hosts.iter().map(ToString::to_string).collect();
        let hosts = if hosts.is_empty() {
            "any host".to_string()
        } else {
            hosts.join(", ")
        };
        let _ = writeln!(
            out,
            "route \"{}\": {hosts}; path prefix {}",
            route.name, route.path_prefix
        );
        let total = route.split.total() as f64;
        let backends: Vec<String> = route
            .backends
            .iter()
            .map(|b| {
                let share = f64::from(b.weight) * 100.0 / total;
                match &b.tag {
                    Some(tag) => format!("{} {share:.2} % (tag {tag})", b.cluster),
                    None => format!("{} {share:.2} %", b.cluster),
                }
            })
            .collect();
        let _ = writeln!(out, "  backends: {}", backends.join(", "));
        let cluster = |index: usize| route.backends[index].cluster.as_str();
        if !route.tagged_hosts.is_empty() {
            let tagged: Vec<String> = route
                .tagged_hosts
                .iter()
                .map(|(host, backend)| format!("{host} -> {}", cluster(*backend)))
                .collect();
            let _ = writeln!(out, "  tagged hosts: {}", tagged.join(", "));
        }
        if let Some(header) = &route.tag_header {
            let _ = writeln!(out, "  tag header: {header}");
        }
        for rule in &route.overrides {
            let condition = match &rule.value {
                ValueMatch::Exact(v) => format!("= \"{}\"", String::from_utf8_lossy(v)),
                ValueMatch::Prefix(v) => format!("starts with \"{}\"", String::from_utf8_lossy(v)),
                ValueMatch::Present => "present".to_string(),
            };
            let _ = writeln!(
                out,
                "  override: {} {condition} -> {}",
                source_text(&rule.source),
                cluster(rule.backend)
            );
        }
        if let Some(sticky) = &route.sticky {
            let minted = if sticky.set_cookie {
                " (minted when missing)"
            } else {
                ""
            };
            let _ = writeln!(out, "  sticky: {}{minted}", source_text(&sticky.source));
        }
        if let Some(rollout) = &route.rollout {
            describe_rollout(&mut out, rollout, cluster(rollout.canary));
        }
        for mirror in &route.mirrors {
            let percent = f64::from(mirror.per_million) / 10_000.0;
            let sender = match &mirror.cluster_header {
                Some(header) => format!("sent by Envoy through {header}"),
                None => format!("timeout {} ms", mirror.timeout_ms),
            };
            let methods = mirror
                .methods
                .as_ref()
                .map_or(String::new(), |m| format!(", {}", m.join(" ")));
            let _ = writeln!(
                out,
                "  mirror: {} {percent} % ({sender}{methods})",
                mirror.cluster
            );
        }
    }
    tcp_summary(config, &mut out);
    out
}

/// The rollout's schedule and guard, in words.
fn describe_rollout(out: &mut String, rollout: &Rollout, canary: &str) {
    match rollout.start_ms {
        Some(start) => {
            let _ = writeln!(
                out,
                "  rollout: canary {canary}, from {}",
                format_rfc3339(start)
            );
        }
        None => {
            let _ = writeln!(out, "  rollout: canary {canary}, weights as configured");
        }
    }
    let last = rollout.steps.len();
    for (index, step) in rollout.steps.iter().enumerate() {
        let share = f64::from(step.share) / 100.0;
        let holds = match (step.hold_ms, step.begins_ms) {
            (_, None) => "never reached: an earlier step holds".to_string(),
            (_, Some(_)) if index + 1 == last => "holds for good".to_string(),
            (Some(hold), Some(_)) => format!("for {} s", hold / 1000),
            (None, Some(_)) => "until the configuration changes".to_string(),
        };
        let begins = step
            .begins_ms
            .map_or(String::new(), |b| format!(" from {}", format_rfc3339(b)));
        let _ = writeln!(out, "    step {}: {share} %{begins}, {holds}", index + 1);
    }
    if let Some(guard) = &rollout.guard {
        describe_guard(out, guard, canary);
    }
}

/// The guard's rule in words: what it aborts on, how fast, and how rarely by mistake.
fn describe_guard(out: &mut String, guard: &Guard, canary: &str) {
    let test = &guard.errors;
    let _ = writeln!(
        out,
        "  guard: abort when {canary}'s 5xx share is above {} %, judged by a CUSUM after every \
         answer (built to catch {}× = {} %; a hard-down canary is aborted at its {}th answer, one \
         at {} % in under {} % of days at 1,000 answers/s), from its {}th answer, and only if it \
         fails more than the other backends over the same answers (judged alone after {} s and \
         {SILENT_ANSWERS} of its answers without theirs)",
        guard.max_error_rate * 100.0,
        guard.sensitivity,
        test.bad * 100.0,
        test.failures_to_threshold().max(guard.min_requests),
        test.limit * 50.0,
        guard.false_abort_rate * 100.0,
        guard.min_requests,
        guard.window_s,
    );
    if let Some(latency) = &guard.latency {
        let _ = writeln!(
            out,
            "  latency guard: abort when more than {} % of {canary}'s answers take over {} ms \
             (response headers after request headers; Envoy's 504 counts), by the same test",
            latency.max_slow_rate * 100.0,
            latency.max_latency_ms
        );
    }
}

/// The network filter's routes, for [`summary`].
fn tcp_summary(config: &Config, out: &mut String) {
    for route in &config.tcp_routes {
        let hosts: Vec<String> = route.sni_hosts.iter().map(ToString::to_string).collect();
        let hosts = if hosts.is_empty() {
            "any connection".to_string()
        } else {
            format!("SNI {}", hosts.join(", "))
        };
        let _ = writeln!(out, "tcp_route \"{}\": {hosts}", route.name);
        let total = route.split.total() as f64;
        let mut previous = 0;
        let backends: Vec<String> = route
            .clusters
            .iter()
            .zip(route.split.cumulative())
            .map(|(cluster, &end)| {
                let share = (end - previous) as f64 * 100.0 / total;
                previous = end;
                format!("{cluster} {share:.2} %")
            })
            .collect();
        let _ = writeln!(out, "  backends: {}", backends.join(", "));
        if route.sticky_source_address {
            let _ = writeln!(out, "  sticky: source address");
        }
        if let Some(rollout) = &route.rollout {
            let canary = route
                .clusters
                .get(rollout.schedule.canary)
                .map_or("", String::as_str);
            describe_rollout(out, &rollout.schedule, canary);
            if let Some(followed) = rollout.follow.and_then(|i| config.routes.get(i)) {
                let _ = writeln!(
                    out,
                    "  follows route \"{}\": its guard's abort stops new connections to {canary}",
                    followed.name
                );
            }
        }
    }
}

fn source_text(source: &KeySource) -> String {
    match source {
        KeySource::Header(name) => format!("header {name}"),
        KeySource::Cookie(name) => format!("cookie {name}"),
    }
}

#[cfg(test)]
mod tests;
