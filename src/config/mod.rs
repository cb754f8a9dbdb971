//! Configuration: parsed and validated once in `on_configure`, then shared read-only by every
//! request. The JSON format is documented in README.md ("Configuration reference").

mod error;
mod mirror;
pub mod raw;
mod release;
mod rollout;
mod tcp;
mod tcp_rollout;
mod values;

pub use error::ConfigError;
pub use tcp::{FilterKind, TcpRoute, TCP_ROOT_ID};
pub use tcp_rollout::TcpRollout;

use crate::hosts::HostPattern;
use crate::keys::{KeySource, ValueMatch};
use crate::mirror::Mirror;
use crate::rollout::Rollout;
use crate::route_index::{RouteHosts, RouteIndex};
use crate::weights::WeightTable;
use error::{in_route, route_label};
use raw::{RawConfig, RawRoute};
use std::collections::HashMap;

pub const DEFAULT_ROUTE_HEADER: &str = "x-split-cluster";
pub const DEFAULT_HOST_SUFFIX: &str = "-shadow";
pub const DEFAULT_MIRROR_TIMEOUT_MS: u32 = 1000;
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
pub const DEFAULT_MAX_SHADOWS_IN_FLIGHT: usize = 1000;

/// The validated, compiled configuration.
#[derive(Debug)]
pub struct Config {
    /// Lower-case request header that carries the chosen cluster to Envoy's `cluster_header`.
    pub route_header: String,
    /// Response header naming the chosen backend, for debugging; off unless configured.
    pub response_header: Option<String>,
    /// Per worker: beyond this many shadows in flight, mirroring skips and counts.
    pub max_shadows_in_flight: usize,
    /// In config order: the first matching route wins.
    pub routes: Vec<Route>,
    /// Some route matches on hosts: the adapter must fetch `:authority`.
    pub needs_authority: bool,
    /// Some route has a path prefix other than `/`: the adapter must fetch `:path`.
    pub needs_path: bool,
    /// Finds the first matching route without reading every route.
    pub index: RouteIndex,
    /// The network filter's routes, in config order: the first matching route wins.
    pub tcp_routes: Vec<TcpRoute>,
}

#[derive(Debug)]
pub struct Route {
    pub name: String,
    /// Empty means any host.
    pub hosts: Vec<HostPattern>,
    pub path_prefix: String,
    pub backends: Vec<Backend>,
    /// Cumulative weights of `backends`, same order.
    pub split: WeightTable,
    pub mirrors: Vec<Mirror>,
    /// Checked in order before the weights.
    pub overrides: Vec<Override>,
    /// `(tag, backend index)`.
    pub tags: Vec<(String, usize)>,
    /// `(<tag>-<host>` lower-case, backend index)`, from the exact entries of `hosts`.
    pub tagged_hosts: Vec<(String, usize)>,
    /// Lower-case header whose value names a tag.
    pub tag_header: Option<String>,
    pub sticky: Option<Sticky>,
    /// Steps from the clock and the guard; `None` for a plain split.
    pub rollout: Option<Rollout>,
}

/// A header or cookie value that sends the request to one backend whatever the weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    pub source: KeySource,
    pub value: ValueMatch,
    pub backend: usize,
}

/// Where the sticky key is read, and whether to mint a cookie when it is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sticky {
    pub source: KeySource,
    pub set_cookie: bool,
}

#[derive(Debug)]
pub struct Backend {
    pub cluster: String,
    pub weight: u32,
    pub tag: Option<String>,
}

impl Config {
    /// Parses and validates the plugin configuration (Envoy `configuration`, Istio
    /// `pluginConfig`). The error names the route and the field.
    ///
    /// Its steps are kept out of line (`#[inline(never)]` on parse and compile): inlined into
    /// one function they made a 20 KB wasm function, and V8 compiling it cost every Envoy
    /// process ~7 MB of resident memory (measured with the earlier hand-written parser: +30 MB
    /// over native Envoy inlined, +24 MB out of line, against +21 MB for an empty filter).
    pub fn from_json(json: &[u8]) -> Result<Config, ConfigError> {
        compile(parse(json)?)
    }
}

/// serde_json with the path of the failing field (serde_path_to_error). Nesting is bounded by
/// serde_json's recursion limit (128 levels): hostile input cannot overflow the stack.
#[inline(never)]
pub fn parse(json: &[u8]) -> Result<RawConfig, ConfigError> {
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let values::Object(raw) = serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|e| error::from_serde(json, e))?;
    deserializer.end().map_err(|e| error::invalid_json(&e))?;
    Ok(raw)
}

// Out of line: see `Config::from_json` (V8 compile memory).
#[inline(never)]
fn compile(raw: RawConfig) -> Result<Config, ConfigError> {
    let route_header = match raw.route_header {
        Some(name) => {
            check_header_name(&name).map_err(|m| ConfigError(format!("route_header: {m}")))?
        }
        None => DEFAULT_ROUTE_HEADER.to_string(),
    };
    let raw_routes = match raw.routes {
        Some(routes) if routes.is_empty() => {
            return Err(ConfigError(
                "routes: expected at least one route, got an empty list".into(),
            ))
        }
        Some(routes) => routes,
        None if raw.tcp_routes.is_none() => {
            return Err(ConfigError(
                "missing field `routes`: give `routes` (the HTTP filter), `tcp_routes` (the \
                 network filter), or both"
                    .into(),
            ))
        }
        None => Vec::new(),
    };
    let mut tcp_routes = match raw.tcp_routes {
        Some(raw_tcp) => tcp::compile_tcp_routes(raw_tcp)?,
        None => Vec::new(),
    };
    let mut routes: Vec<Route> = Vec::with_capacity(raw_routes.len());
    let mut names = UniqueNames::new("routes", raw_routes.len());
    for (index, values::Object(raw_route)) in raw_routes.into_iter().enumerate() {
        let label = route_label(Some(&raw_route.name), index);
        check_label(&raw_route.name, "string")
            .map_err(|m| in_route(&route_label(None, index), "name", m))?;
        names.add(&raw_route.name, index, &label)?;
        routes.push(compile_route(raw_route, &label)?);
    }
    tcp_rollout::resolve_follows(&mut tcp_routes, &routes)?;
    let response_header = raw
        .response_header
        .map(|name| check_header_name(&name))
        .transpose()
        .map_err(|m| ConfigError(format!("response_header: {m}")))?;
    for (index, route) in routes.iter().enumerate() {
        if let Some(i) = route
            .mirrors
            .iter()
            .position(|m| m.cluster_header.as_deref() == Some(route_header.as_str()))
        {
            return Err(in_route(
                &route_label(Some(&route.name), index),
                &format!("mirrors[{i}].cluster_header"),
                "is the route_header: choose another name",
            ));
        }
    }
    let max_shadows_in_flight = raw
        .max_shadows_in_flight
        .map_or(DEFAULT_MAX_SHADOWS_IN_FLIGHT, |n| n.0 as usize);
    Ok(Config {
        route_header,
        response_header,
        max_shadows_in_flight,
        needs_authority: routes.iter().any(|r| !r.hosts.is_empty()),
        needs_path: routes.iter().any(|r| r.path_prefix != "/"),
        index: RouteIndex::new(routes.iter().map(|route| RouteHosts {
            hosts: &route.hosts,
            tagged_hosts: &route.tagged_hosts,
        })),
        tcp_routes,
        routes,
    })
}

// Out of line: see `Config::from_json` (V8 compile memory).
#[inline(never)]
fn compile_route(raw: RawRoute, label: &str) -> Result<Route, ConfigError> {
    let mut hosts = Vec::new();
    for (i, entry) in raw.hosts.unwrap_or_default().iter().enumerate() {
        hosts.push(
            HostPattern::parse(entry).map_err(|m| in_route(label, &format!("hosts[{i}]"), m))?,
        );
    }
    let path_prefix = raw.path_prefix.unwrap_or_else(|| "/".to_string());
    if !path_prefix.starts_with('/') {
        return Err(in_route(
            label,
            "path_prefix",
            format!("expected a path starting with `/`, got \"{path_prefix}\""),
        ));
    }
    require_backends(raw.backends.len(), label)?;
    let mut backends: Vec<Backend> = Vec::with_capacity(raw.backends.len());
    for (i, values::Object(backend)) in raw.backends.into_iter().enumerate() {
        let earlier = backends.iter().map(|b: &Backend| b.cluster.as_str());
        check_backend_cluster(&backend.cluster, earlier, label, i)?;
        let tag = match backend.tag {
            Some(tag) => Some(
                release::check_tag(&tag, &backends)
                    .map_err(|m| in_route(label, &format!("backends[{i}].tag"), m))?,
            ),
            None => None,
        };
        backends.push(Backend {
            tag,
            cluster: backend.cluster,
            // At most MAX_WEIGHT: the cast cannot truncate.
            weight: backend.weight.map_or(1, |w| w.0 as u32),
        });
    }
    let weights: Vec<u32> = backends.iter().map(|b| b.weight).collect();
    let split = weight_table(&weights, label)?;
    let mut mirrors: Vec<Mirror> = Vec::new();
    for (i, values::Object(raw_mirror)) in raw.mirrors.unwrap_or_default().into_iter().enumerate() {
        let mirror = mirror::compile_mirror(raw_mirror, label, i)?;
        if let Some(first) = mirrors.iter().position(|m| m.cluster == mirror.cluster) {
            return Err(in_route(
                label,
                &format!("mirrors[{i}].cluster"),
                format!("\"{}\" is already mirrors[{first}]", mirror.cluster),
            ));
        }
        let header = mirror.cluster_header.as_ref();
        if let Some(first) = mirrors
            .iter()
            .position(|m| header.is_some() && m.cluster_header.as_ref() == header)
        {
            return Err(in_route(
                label,
                &format!("mirrors[{i}].cluster_header"),
                format!(
                    "already the header of mirrors[{first}]: Envoy mirrors one cluster per header"
                ),
            ));
        }
        mirrors.push(mirror);
    }
    let rollout = raw
        .rollout
        .map(|values::Object(r)| rollout::compile(r, &backends, &raw.name, label))
        .transpose()?;
    let release = release::compile(
        raw.overrides.unwrap_or_default(),
        raw.tag_header,
        raw.sticky.map(|values::Object(sticky)| sticky),
        &backends,
        &hosts,
        label,
    )?;
    Ok(Route {
        name: raw.name,
        hosts,
        path_prefix,
        backends,
        split,
        mirrors,
        overrides: release.overrides,
        tags: release.tags,
        tagged_hosts: release.tagged_hosts,
        tag_header: release.tag_header,
        sticky: release.sticky,
        rollout,
    })
}

/// A route's `backends` list (HTTP or TCP) must not be empty.
pub(crate) fn require_backends(count: usize, label: &str) -> Result<(), ConfigError> {
    if count == 0 {
        return Err(in_route(
            label,
            "backends",
            "expected at least one backend, got an empty list",
        ));
    }
    Ok(())
}

/// `backends[i].cluster`: a name that can label metrics, not one of the `earlier` backends'.
pub(crate) fn check_backend_cluster<'a>(
    cluster: &str,
    mut earlier: impl Iterator<Item = &'a str>,
    label: &str,
    i: usize,
) -> Result<(), ConfigError> {
    let field = format!("backends[{i}].cluster");
    check_label(cluster, "cluster name").map_err(|m| in_route(label, &field, m))?;
    if let Some(first) = earlier.position(|c| c == cluster) {
        return Err(in_route(
            label,
            &field,
            format!("\"{cluster}\" is already backends[{first}]"),
        ));
    }
    Ok(())
}

/// The cumulative table of a route's backend weights; they must not all be 0.
pub(crate) fn weight_table(weights: &[u32], label: &str) -> Result<WeightTable, ConfigError> {
    WeightTable::new(weights).ok_or_else(|| {
        in_route(
            label,
            "backends",
            "the weights sum to 0; give at least one backend a weight above 0",
        )
    })
}

/// The names of one list of routes, to refuse a repeated one. A gateway may hold thousands of
/// routes: a map, where a linear search was quadratic (344 ms for 10,000 routes, now 32 ms).
pub(crate) struct UniqueNames {
    list: &'static str,
    first: HashMap<String, usize>,
}

impl UniqueNames {
    pub(crate) fn new(list: &'static str, capacity: usize) -> Self {
        UniqueNames {
            list,
            first: HashMap::with_capacity(capacity),
        }
    }

    /// `name` at `index` (labelled `label` in errors), unless an earlier entry has it.
    pub(crate) fn add(&mut self, name: &str, index: usize, label: &str) -> Result<(), ConfigError> {
        if let Some(&first) = self.first.get(name) {
            let list = self.list;
            return Err(in_route(
                label,
                "name",
                format!("duplicate route name ({list}[{first}] and {list}[{index}])"),
            ));
        }
        self.first.insert(name.to_string(), index);
        Ok(())
    }
}

/// Route names and cluster names label metrics (`;route=NAME;`), so they must be non-empty and
/// free of `;`, `=` and whitespace. `what` names the expected thing in the message.
pub(crate) fn check_label(value: &str, what: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("expected a non-empty {what}"));
    }
    if value
        .chars()
        .any(|c| c == ';' || c == '=' || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "\"{value}\" contains `;`, `=` or whitespace, which cannot label metrics"
        ));
    }
    Ok(())
}

/// A header name we may write and that Envoy will route on: an HTTP token, stored lower-case.
/// Pseudo-headers and `host` are refused: overwriting them would misroute every request.
pub(crate) fn check_header_name(name: &str) -> Result<String, String> {
    let is_token_char = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(is_token_char) {
        return Err(format!("expected an HTTP header name, got \"{name}\""));
    }
    let lower = name.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "host" | "content-length" | "transfer-encoding" | "connection"
    ) {
        return Err(format!(
            "\"{name}\" is a header Envoy needs; choose another name"
        ));
    }
    Ok(lower)
}

#[cfg(test)]
mod tests;
