//! `split-mirror import`: the routing users already describe in an SMI `TrafficSplit`, an
//! Istio `VirtualService`, a Gateway API `HTTPRoute` or `TLSRoute`, a Knative `Service` or an
//! Argo Rollouts `Rollout`, as one filter configuration. What the filter cannot express is
//! refused or listed ("not carried: ..."), never dropped silently. `promote` and `resume` edit
//! a rollout in a configuration file. Native only: nothing here enters the wasm module.

pub mod cli;
pub mod documents;
pub mod emit;
pub mod model;
pub mod naming;
pub mod promote;

mod argo;
mod gateway;
mod istio;
mod json_spans;
mod knative;
mod smi;
mod yaml_edit;

#[cfg(test)]
mod tests;

use documents::Resource;
use model::OutConfig;
use naming::{Clusters, Destination};
use serde_json::Value;

/// The command line's choices.
#[derive(Debug, Clone)]
pub struct Options {
    /// `None`: Istio's names for Istio, Argo and Knative input, plain names otherwise.
    pub clusters: Option<Clusters>,
    /// The port of destinations that do not give one (Istio cluster names need it).
    pub port: Option<u16>,
    /// The namespace of resources without `metadata.namespace`.
    pub namespace: String,
    /// Knative's domain (`<service>.<namespace>.<domain>`).
    pub domain: String,
    /// RFC 3339: when an imported Argo Rollout's first step begins.
    pub start: String,
}

/// What an import produced.
#[derive(Debug)]
pub struct Imported {
    pub config: OutConfig,
    /// One line each: "not carried: <resource>/<name>: <path>: <why>".
    pub not_carried: Vec<String>,
    pub resources: Vec<Resource>,
    pub clusters: Clusters,
}

/// What every reader shares: the options, the naming in force, and the list of what was not
/// carried.
pub(crate) struct Ctx<'a> {
    pub options: &'a Options,
    pub clusters: Clusters,
    pub notes: Vec<String>,
}

impl Ctx<'_> {
    pub fn note(&mut self, resource: &Resource, path: &str, why: &str) {
        self.notes
            .push(format!("not carried: {}: {path}: {why}", resource.label()));
    }

    pub fn namespace(&self, resource: &Resource) -> String {
        resource
            .namespace
            .clone()
            .unwrap_or_else(|| self.options.namespace.clone())
    }

    /// The Envoy cluster of `destination`, or the error naming `field` when Istio's name needs
    /// a port that neither the resource nor `--port` gives.
    pub fn cluster(
        &self,
        resource: &Resource,
        destination: &Destination,
        field: &str,
    ) -> Result<String, String> {
        destination
            .cluster(self.clusters, self.options.port)
            .ok_or_else(|| {
                format!(
                    "{}: {field}: no port for {}; Istio's cluster name \
                     outbound|PORT|SUBSET|FQDN needs one: give it in the resource or with --port \
                     (or use --clusters plain)",
                    resource.label(),
                    destination.host
                )
            })
    }
}

/// An error naming the resource and the field.
pub(crate) fn error(resource: &Resource, field: &str, message: &str) -> String {
    format!("{}: {field}: {message}", resource.label())
}

/// A string field, or an error naming it.
pub(crate) fn text<'a>(
    resource: &Resource,
    value: &'a Value,
    key: &str,
    path: &str,
) -> Result<&'a str, String> {
    match value.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::Null) | None => Err(error(resource, &format!("{path}.{key}"), "missing")),
        Some(other) => Err(error(
            resource,
            &format!("{path}.{key}"),
            &format!("expected a non-empty string, got {other}"),
        )),
    }
}

/// A list field: missing is empty; anything but a list is an error naming it.
pub(crate) fn list<'a>(
    resource: &Resource,
    value: &'a Value,
    key: &str,
    path: &str,
) -> Result<&'a [Value], String> {
    match value.get(key) {
        Some(Value::Array(items)) => Ok(items),
        Some(Value::Null) | None => Ok(&[]),
        Some(other) => Err(error(
            resource,
            &format!("{path}.{key}"),
            &format!("expected a list, got {other}"),
        )),
    }
}

/// A whole-number field within `0..=max`, `None` when absent.
pub(crate) fn number(
    resource: &Resource,
    value: &Value,
    key: &str,
    path: &str,
    max: u64,
) -> Result<Option<u64>, String> {
    match value.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n <= max) => Ok(n.as_u64()),
        Some(other) => Err(error(
            resource,
            &format!("{path}.{key}"),
            &format!("expected a whole number 0..={max}, got {other}"),
        )),
    }
}

/// A port field (`port: 8000` or `port: {number: 8000}`).
pub(crate) fn port(resource: &Resource, value: &Value, path: &str) -> Result<Option<u16>, String> {
    let field = match value.get("port") {
        Some(Value::Object(port)) => port.get("number"),
        other => other,
    };
    match field {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .filter(|&n| n > 0)
            .map(Some)
            .ok_or_else(|| error(resource, &format!("{path}.port"), "expected 1..=65535")),
        Some(other) => Err(error(
            resource,
            &format!("{path}.port"),
            &format!("expected a port number, got {other}"),
        )),
    }
}

/// What a kind of resource is to the import.
enum Known {
    Read(
        fn(&mut Ctx, &[Resource], usize, &mut OutConfig) -> Result<(), String>,
        Clusters,
    ),
    /// Read by another resource (a VirtualService an Argo Rollout names is read as one).
    Passive,
    /// A resource that routes nothing split-mirror reads: listed, left as it is.
    Ignored(&'static str),
}

/// The supported kinds: (API group, kind, versions).
const KINDS: &[(&str, &str, &[&str])] = &[
    (
        "split.smi-spec.io",
        "TrafficSplit",
        &["v1alpha1", "v1alpha2", "v1alpha3", "v1alpha4"],
    ),
    (
        "networking.istio.io",
        "VirtualService",
        &["v1alpha3", "v1beta1", "v1"],
    ),
    ("gateway.networking.k8s.io", "HTTPRoute", &["v1", "v1beta1"]),
    (
        "gateway.networking.k8s.io",
        "TLSRoute",
        &["v1alpha2", "v1alpha3", "v1"],
    ),
    ("serving.knative.dev", "Service", &["v1"]),
    ("argoproj.io", "Rollout", &["v1alpha1"]),
];

/// Kinds that often sit beside the routing resources and route nothing the filter reads.
const IGNORED: &[(&str, &str)] = &[
    ("", "Service"),
    ("apps", "Deployment"),
    ("networking.istio.io", "DestinationRule"),
    ("networking.istio.io", "Gateway"),
    ("gateway.networking.k8s.io", "Gateway"),
    ("extensions.istio.io", "WasmPlugin"),
    ("argoproj.io", "AnalysisTemplate"),
];

fn known(resource: &Resource) -> Result<Known, String> {
    let (group, kind) = (resource.group(), resource.kind.as_str());
    if let Some((_, _, versions)) = KINDS.iter().find(|(g, k, _)| *g == group && *k == kind) {
        if !versions.contains(&resource.version()) {
            return Err(error(
                resource,
                "apiVersion",
                &format!(
                    "{} is not a version this import reads ({group}: {})",
                    resource.api_version,
                    versions.join(", ")
                ),
            ));
        }
        return Ok(match kind {
            "TrafficSplit" => Known::Read(smi::import, Clusters::Plain),
            "VirtualService" => Known::Read(istio::import, Clusters::Istio),
            "HTTPRoute" => Known::Read(gateway::import_http, Clusters::Plain),
            "TLSRoute" => Known::Read(gateway::import_tls, Clusters::Plain),
            "Service" => Known::Read(knative::import, Clusters::Istio),
            _ => Known::Passive,
        });
    }
    if IGNORED.iter().any(|(g, k)| *g == group && *k == kind) {
        return Ok(Known::Ignored(
            "not a routing resource split-mirror reads; it stays as it is",
        ));
    }
    Err(error(
        resource,
        "kind",
        &format!(
            "unknown kind {kind} ({}); import reads TrafficSplit, VirtualService, HTTPRoute, \
             TLSRoute, Knative Service and Argo Rollout",
            resource.api_version
        ),
    ))
}

/// Imports every resource of `inputs` ((file name, text) pairs) into one configuration.
pub fn import(inputs: &[(String, String)], options: &Options) -> Result<Imported, String> {
    let mut resources = Vec::new();
    for (file, text) in inputs {
        resources.extend(documents::read(file, text)?);
    }
    let kinds: Vec<Known> = resources.iter().map(known).collect::<Result<_, _>>()?;
    let has_rollout = resources.iter().any(|r| r.kind == "Rollout");
    let clusters = options.clusters.unwrap_or_else(|| {
        let istio = has_rollout
            || kinds
                .iter()
                .any(|k| matches!(k, Known::Read(_, Clusters::Istio)));
        if istio {
            Clusters::Istio
        } else {
            Clusters::Plain
        }
    });
    let mut ctx = Ctx {
        options,
        clusters,
        notes: Vec::new(),
    };
    let mut config = OutConfig::default();
    for (index, kind) in kinds.iter().enumerate() {
        match kind {
            Known::Read(read, _) => read(&mut ctx, &resources, index, &mut config)?,
            Known::Passive => {}
            Known::Ignored(why) => ctx.note(&resources[index], "(resource)", why),
        }
    }
    for index in (0..resources.len()).filter(|&i| resources[i].kind == "Rollout") {
        argo::import(&mut ctx, &resources, index, &mut config)?;
    }
    if config.routes.is_empty() && config.tcp_routes.is_empty() {
        return Err(
            "no route imported: the input has no resource with a route the filter can carry".into(),
        );
    }
    check_unique_names(&config)?;
    let json = serde_json::to_string(&config).map_err(|e| e.to_string())?;
    crate::config::Config::from_json(json.as_bytes())
        .map_err(|e| format!("the imported configuration is refused by the filter: {e}"))?;
    Ok(Imported {
        config,
        not_carried: ctx.notes,
        resources,
        clusters,
    })
}

fn check_unique_names(config: &OutConfig) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for name in config.routes.iter().map(|r| &r.name) {
        if !seen.insert(name) {
            return Err(format!(
                "two routes are named \"{name}\": import resources whose names differ, or one at a time"
            ));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for name in config.tcp_routes.iter().map(|r| &r.name) {
        if !seen.insert(name) {
            return Err(format!(
                "two tcp routes are named \"{name}\": import resources whose names differ, or one at a time"
            ));
        }
    }
    Ok(())
}
