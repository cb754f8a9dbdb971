//! Compiling `tcp_routes` (the network filter's routes), and which filter kind a configuration
//! is loaded as. Errors name the route as `tcp_route "NAME"` (or `tcp_routes[i]` before its
//! name is known) and the field, like HTTP routes: `tcp_route "tls": backends[0].weight: ...`.

use super::error::{in_route, tcp_route_label};
use super::raw::{RawTcpRoute, RawTcpSticky};
use super::tcp_rollout::{self, TcpRollout};
use super::{
    check_backend_cluster, check_label, require_backends, values, weight_table, Config,
    ConfigError, UniqueNames,
};
use crate::hosts::HostPattern;
use crate::weights::WeightTable;

/// The `root_id` (Istio `pluginName`) that loads the module as the network filter.
pub const TCP_ROOT_ID: &str = "split-mirror-tcp";

/// How Envoy loaded the module: decided by the root id, once per configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterKind {
    /// `envoy.filters.http.wasm`: splits requests with `routes`.
    Http,
    /// `envoy.filters.network.wasm` before `tcp_proxy`: splits connections with `tcp_routes`.
    Tcp,
}

impl FilterKind {
    /// `split-mirror-tcp` is the network filter; any other root id the HTTP filter.
    pub fn from_root_id(root_id: &[u8]) -> FilterKind {
        if root_id == TCP_ROOT_ID.as_bytes() {
            FilterKind::Tcp
        } else {
            FilterKind::Http
        }
    }
}

/// One compiled `tcp_routes` entry.
#[derive(Debug)]
pub struct TcpRoute {
    pub name: String,
    /// Empty means any connection, with or without SNI.
    pub sni_hosts: Vec<HostPattern>,
    /// Cluster names, in config order.
    pub clusters: Vec<String>,
    /// Cumulative weights of `clusters`, same order.
    pub split: WeightTable,
    /// The backend is chosen by the client's IP address.
    pub sticky_source_address: bool,
    /// Steps by the clock, and the HTTP route whose abort this canary follows.
    pub rollout: Option<TcpRollout>,
}

impl Config {
    /// Refuses a configuration the filter kind cannot use: the network filter needs
    /// `tcp_routes`, the HTTP filter `routes`.
    pub fn check_kind(&self, kind: FilterKind) -> Result<(), ConfigError> {
        match kind {
            FilterKind::Http if self.routes.is_empty() => Err(ConfigError(format!(
                "routes: missing: the HTTP filter needs `routes` (this configuration has only \
                 `tcp_routes`, which the network filter reads: root_id \"{TCP_ROOT_ID}\")"
            ))),
            FilterKind::Tcp if self.tcp_routes.is_empty() => Err(ConfigError(format!(
                "tcp_routes: missing: loaded as the network filter (root_id \"{TCP_ROOT_ID}\"), \
                 the configuration needs `tcp_routes` (`routes` are for the HTTP filter)"
            ))),
            _ => Ok(()),
        }
    }
}

// Out of line: see `Config::from_json` (V8 compile memory).
#[inline(never)]
pub(super) fn compile_tcp_routes(
    raw: Vec<values::Object<RawTcpRoute>>,
) -> Result<Vec<TcpRoute>, ConfigError> {
    if raw.is_empty() {
        return Err(ConfigError(
            "tcp_routes: expected at least one route, got an empty list".into(),
        ));
    }
    let mut routes = Vec::with_capacity(raw.len());
    let mut names = UniqueNames::new("tcp_routes", raw.len());
    for (index, values::Object(route)) in raw.into_iter().enumerate() {
        check_label(&route.name, "string")
            .map_err(|m| in_route(&tcp_route_label(None, index), "name", m))?;
        let label = tcp_route_label(Some(&route.name), index);
        names.add(&route.name, index, &label)?;
        routes.push(compile_tcp_route(route, &label)?);
    }
    Ok(routes)
}

fn compile_tcp_route(raw: RawTcpRoute, label: &str) -> Result<TcpRoute, ConfigError> {
    let mut sni_hosts = Vec::new();
    if let Some(entries) = raw.sni_hosts {
        if entries.is_empty() {
            return Err(in_route(
                label,
                "sni_hosts",
                "expected at least one host, got an empty list (omit `sni_hosts` to take every connection)",
            ));
        }
        for (i, entry) in entries.iter().enumerate() {
            sni_hosts.push(
                HostPattern::parse(entry)
                    .map_err(|m| in_route(label, &format!("sni_hosts[{i}]"), m))?,
            );
        }
    }
    require_backends(raw.backends.len(), label)?;
    let mut clusters: Vec<String> = Vec::with_capacity(raw.backends.len());
    let mut weights: Vec<u32> = Vec::with_capacity(raw.backends.len());
    for (i, values::Object(backend)) in raw.backends.into_iter().enumerate() {
        check_backend_cluster(
            &backend.cluster,
            clusters.iter().map(String::as_str),
            label,
            i,
        )?;
        clusters.push(backend.cluster);
        // At most MAX_WEIGHT: the cast cannot truncate.
        weights.push(backend.weight.map_or(1, |w| w.0 as u32));
    }
    let split = weight_table(&weights, label)?;
    let sticky_source_address = matches!(
        raw.sticky,
        Some(values::Object(RawTcpSticky {
            source_address: true
        }))
    );
    let rollout = match raw.rollout {
        Some(values::Object(rollout)) => Some(tcp_rollout::compile(
            rollout, &clusters, &weights, &raw.name, label,
        )?),
        None => None,
    };
    Ok(TcpRoute {
        name: raw.name,
        sni_hosts,
        clusters,
        split,
        sticky_source_address,
        rollout,
    })
}
